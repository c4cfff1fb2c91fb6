"""Copy the records of a study's finished runs (no checkpoints) into a folder that can be
committed, from which tools/study_report.py regenerates the report, figures included.

    python tools/study_archive.py work_dirs/study                    # -> docs/study/runs
    python tools/study_archive.py work_dirs/study --to /tmp/runs --overwrite

A run already archived is kept unless --overwrite, or --fill adds the files its record lacks from
a rerun of the same run, settings and code, which must reproduce the record's metrics (it does on
the same CPU; other CPUs' floating-point kernels can differ).
"""
import argparse
import os
import sys

# Run from a checkout, use the checkout's mmreweight (not an older installed copy).
_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if os.path.isfile(os.path.join(_REPO, 'mmreweight', '__init__.py')):
    sys.path.insert(0, _REPO)

from mmreweight.study.archive import archive_study  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('study_dir')
    p.add_argument('--to', default=os.path.join(_REPO, 'docs', 'study', 'runs'))
    p.add_argument('--overwrite', action='store_true', help='replace records already there')
    p.add_argument('--fill', action='store_true',
                   help='add to records already there the files they lack (an older record\'s '
                        'dump or mentor, from a rerun), keeping the rest; refused if the '
                        'rerun\'s metrics differ from the record\'s')
    args = p.parse_args(argv)
    if not os.path.isdir(args.study_dir):
        p.error(f'no study directory {args.study_dir!r}')
    written = archive_study(args.study_dir, args.to, args.overwrite, args.fill)
    for path in written:
        print(f'archived {path}')
    print(f'{len(written)} run record(s) written to {args.to}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
