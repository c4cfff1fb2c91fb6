"""Copy the compact records of a study's finished runs into a folder that can be committed,
from which tools/study_report.py regenerates the report, figures included.

    python projects/reweighting_study/tools/study_archive.py work_dirs/study   # -> records/runs
    python projects/reweighting_study/tools/study_archive.py work_dirs/study --to /tmp/runs

A record is the run's result, timings, diagnostics summaries and the digest of its training log;
of the diagnostics dumps and MentorNet-DD mentors, the folder then keeps only those the report's
figures read (--keep-dumps keeps all).

A run already archived is kept unless --overwrite, or --fill adds the files its record lacks from
a rerun of the same run, settings and code, which must reproduce the record's metrics (it does on
the same CPU; other CPUs' floating-point kernels can differ).
"""
import argparse
import os
import sys

# The checkout's mmreweight and this project's reweighting_study, not installed copies.
_PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_REPO = os.path.dirname(os.path.dirname(_PROJECT))
sys.path[:0] = [_REPO, _PROJECT]

from reweighting_study.archive import archive_study  # noqa: E402
from reweighting_study.records import compact_records  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('study_dir')
    p.add_argument('--to', default=os.path.join(_PROJECT, 'records', 'runs'))
    p.add_argument('--keep-dumps', action='store_true',
                   help='keep every diagnostics dump and mentor, not only those the figures read')
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
    if written and not args.keep_dumps:
        counts = compact_records(args.to)
        print(f'{counts["figure_inputs_dropped"]} dump(s) and mentor(s) no figure reads dropped')
    return 0


if __name__ == '__main__':
    sys.exit(main())
