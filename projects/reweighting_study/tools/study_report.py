"""Write the study's report (markdown + PNG figures) from its result.json files.

    python tools/study_report.py work_dirs/study                        # -> docs/study/
    python tools/study_report.py work_dirs/study_pilot --title "Pilot" --note "1 seed ..."
    python tools/study_report.py work_dirs/study --readme   # also the block in ./README.md
    python tools/study_report.py work_dirs/study --readme --converged   # its noise rows from the
                                                                # converged records where complete

Tables of mean ± std over seeds (mAP, AP50, rare-class AP on long-tailed conditions; best and
last checkpoint), which methods beat focal loss by more than twice the seed-to-seed std, the
measured cost, and figures: mAP per method and condition, learned weight vs loss on clean vs
noisy annotations (from the runs' diagnostics), GHM gradient density before and after training,
per-class class-balanced weights.
"""
import argparse
import functools
import os
import sys

# The checkout's mmreweight and this project's reweighting_study, not installed copies.
_PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_REPO = os.path.dirname(os.path.dirname(_PROJECT))
sys.path[:0] = [_REPO, _PROJECT]

from reweighting_study import label_issue_report  # noqa: E402
from reweighting_study.report import regime_section, write_report  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('study_dir')
    p.add_argument('--out', default=os.path.join(_REPO, 'docs', 'study'))
    p.add_argument('--title', default='Reweighting study')
    p.add_argument('--note', default='', help='a paragraph under the title (markdown)')
    p.add_argument('--note-file', help='markdown file whose text goes under the title')
    p.add_argument('--readme', nargs='?', const=os.path.join(_REPO, 'README.md'),
                   help='also refresh the study block of this README (default: the project\'s)')
    p.add_argument('--finders', default=os.path.join(_PROJECT, 'records', 'finders'),
                   help='records of tools/compare_finders.py (<cell>.json) for the label-issue '
                        'section')
    p.add_argument('--converged', nargs='?', const=os.path.join(_PROJECT, 'records', 'converged'),
                   help="with --readme: the noise cells this study directory at a longer schedule "
                        'holds complete replace the README rows (default: the converged records)')
    p.add_argument('--converged-report', help='the report folder of --converged (default: '
                   '<out>/converged)')
    p.add_argument('--early', help='a study directory at a shorter schedule, whose verdicts the '
                                   'report sets beside each noisy cell\'s (the regime table)')
    p.add_argument('--cost-iters', type=int, nargs='*', default=[],
                   help='also extrapolate the full study\'s cost to these schedules')
    args = p.parse_args(argv)
    if args.converged and not args.readme:
        p.error('--converged only changes the README\'s rows: add --readme')
    if args.converged_report and not args.converged:
        p.error('--converged-report names the report of --converged: add --converged')
    note = args.note
    if args.note_file:
        with open(args.note_file) as f:
            note = '\n\n'.join(filter(None, [note, f.read().strip()]))
    converged = None
    if args.converged:
        converged = (args.converged,
                     args.converged_report or os.path.join(args.out, 'converged'))
    sections = [functools.partial(label_issue_report.report_section, finders_dir=args.finders)]
    if args.early:
        sections.insert(0, functools.partial(regime_section, early_dir=args.early))
    path = write_report(args.study_dir, args.out, args.title, note, args.cost_iters, args.readme,
                        sections=sections, converged=converged)
    print(f'wrote {path}')


if __name__ == '__main__':
    main()
