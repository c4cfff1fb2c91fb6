"""Make the embedded real-image detection benchmark (COCO format) and print a per-split summary.

    python tools/make_benchmark.py --out data/mnist_clean
    python tools/make_benchmark.py --source fashion_mnist --noise-type uniform --noise-rate 0.4
    python tools/make_benchmark.py --source idx --idx-images train-images-idx3-ubyte.gz \
        --idx-labels train-labels-idx1-ubyte.gz --imbalance-ratio 100

Without --out the set goes where mmreweight.EmbeddedDetectionDataset looks for it:
$MMREWEIGHT_DATA_ROOT/<name>, else ~/.cache/mmreweight/benchmarks/<name>.
"""
import argparse
import os
import sys
import time

# Run from a checkout, use the checkout's mmreweight (not an older installed copy); the copy that
# `mim` runs from <site-packages>/mmreweight/.mim/tools has no package beside it and skips this.
_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if os.path.isfile(os.path.join(_REPO, 'mmreweight', '__init__.py')):
    sys.path.insert(0, _REPO)

from mmreweight.datasets import BenchmarkConfig, format_summary, make_benchmark
from mmreweight.datasets.benchmark_config import NOISE_TYPES
from mmreweight.datasets.object_sources import SOURCES

_DEFAULTS = BenchmarkConfig()


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument('--out', help='output folder (default: the dataset cache folder)')
    p.add_argument('--source', choices=SOURCES, default=_DEFAULTS.source)
    p.add_argument('--seed', type=int, default=_DEFAULTS.seed)
    p.add_argument('--idx-images', help="IDX image file (--source idx)")
    p.add_argument('--idx-labels', help="IDX label file (--source idx)")
    p.add_argument('--class-names', nargs='+', help='class names for --source idx, in label order')
    for split in ('train', 'val', 'test', 'meta'):
        p.add_argument(f'--{split}-images', type=int, default=getattr(_DEFAULTS, f'{split}_images'),
                       help=f'images in the {split} split')
    p.add_argument('--min-objects', type=int, default=_DEFAULTS.min_objects)
    p.add_argument('--max-objects', type=int, default=_DEFAULTS.max_objects)
    p.add_argument('--min-size', type=int, default=_DEFAULTS.min_size,
                   help='smallest longer side of an object box, px')
    p.add_argument('--max-size', type=int, default=_DEFAULTS.max_size,
                   help='largest longer side of an object box, px')
    p.add_argument('--canvas-size', type=int, default=_DEFAULTS.canvas_size)
    p.add_argument('--min-gap', type=int, default=_DEFAULTS.min_gap,
                   help='background pixels between boxes')
    p.add_argument('--pixel-threshold', type=int, default=_DEFAULTS.pixel_threshold,
                   help='object pixels are brighter than this (0-255); boxes are tight on them')
    p.add_argument('--max-reuse', type=int, default=_DEFAULTS.max_reuse,
                   help='uses of one source object within its split')
    p.add_argument('--imbalance-ratio', type=float, default=_DEFAULTS.imbalance_ratio,
                   help='train only: largest/smallest class count (exponential profile)')
    p.add_argument('--noise-type', choices=NOISE_TYPES, default=_DEFAULTS.noise_type,
                   help='train only: label noise')
    p.add_argument('--noise-rate', type=float, default=_DEFAULTS.noise_rate,
                   help='train only: fraction of flipped labels, in [0, 1)')
    p.add_argument('--force', action='store_true', help='replace an existing benchmark at --out')
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    options = dict(
        train_images=args.train_images, val_images=args.val_images, test_images=args.test_images,
        meta_images=args.meta_images, min_objects=args.min_objects, max_objects=args.max_objects,
        min_size=args.min_size, max_size=args.max_size, canvas_size=args.canvas_size,
        min_gap=args.min_gap, pixel_threshold=args.pixel_threshold, max_reuse=args.max_reuse,
        imbalance_ratio=args.imbalance_ratio, noise_type=args.noise_type,
        noise_rate=args.noise_rate, idx_images=args.idx_images, idx_labels=args.idx_labels,
        class_names=args.class_names)
    start = time.perf_counter()
    try:
        info = make_benchmark(args.out, args.source, args.seed, force=args.force, **options)
    except (ValueError, FileNotFoundError, FileExistsError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    print(format_summary(info['root']))
    print(f'ready in {time.perf_counter() - start:.1f} s')
    return 0


if __name__ == '__main__':
    sys.exit(main())
