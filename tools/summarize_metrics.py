"""Print a markdown table of COCO metrics from ``tools/test.py --metrics-out`` files.

    python tools/summarize_metrics.py work_dirs/demo/*/metrics.json [--per-class]
"""
import argparse
import json
import os.path as osp

COLUMNS = [('mAP', 'coco/bbox_mAP'), ('AP50', 'coco/bbox_mAP_50'), ('AP75', 'coco/bbox_mAP_75'),
           ('APs', 'coco/bbox_mAP_s'), ('APm', 'coco/bbox_mAP_m')]


def load(path: str) -> dict:
    with open(path) as f:
        return json.load(f)


def table(results: list, per_class: bool) -> str:
    class_keys = []
    if per_class:
        class_keys = sorted({k for r in results for k in r['metrics'] if k.endswith('_precision')})
    head = ['config'] + [name for name, _ in COLUMNS] + [
        k.split('/')[-1][:-len('_precision')] for k in class_keys]
    lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    for r in results:
        m = r['metrics']
        row = [osp.splitext(osp.basename(r['config']))[0]]
        row += [f"{m[key]:.3f}" if key in m else '-' for _, key in COLUMNS]
        row += [f"{m[key]:.3f}" if key in m else '-' for key in class_keys]
        lines.append('| ' + ' | '.join(row) + ' |')
    return '\n'.join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('files', nargs='+')
    parser.add_argument('--per-class', action='store_true', help='add one AP column per class')
    args = parser.parse_args()
    print(table([load(f) for f in args.files], args.per_class))


if __name__ == '__main__':
    main()
