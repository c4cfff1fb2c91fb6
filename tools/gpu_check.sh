#!/usr/bin/env bash
# The checks that need a CUDA device, in under 8 minutes: the tests parametrised over devices
# (marker needs_cuda, their cuda case; see mmreweight.testing.devices.cpu_and_cuda) and the loss
# benchmark on the GPU. Exits 2 at once, saying so, when torch sees no CUDA device.
#
#   bash tools/gpu_check.sh            # PYTHON=... to pick the interpreter
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}

if ! "$PYTHON" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
    echo "gpu_check: torch sees no CUDA device (torch $("$PYTHON" -c \
        'import torch; print(torch.__version__, "built for CUDA", torch.version.cuda)')," \
        "CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES-unset}); nothing was run" >&2
    exit 2
fi
"$PYTHON" -c 'import torch; print("gpu_check on", torch.cuda.get_device_name(0))'

echo "== tests with a cuda parameter"
# -rs lists skips: with a device present, none of these may be skipped
timeout 300 "$PYTHON" -m pytest -m needs_cuda -q -rs -p no:cacheprovider tests

echo "== loss benchmark on cuda"
timeout 150 "$PYTHON" tools/benchmark_losses.py --device cuda
echo "gpu_check: passed"
