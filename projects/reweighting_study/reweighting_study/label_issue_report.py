"""The label-issue part of the study's report: how well the in-loop finder of the ``label_issues``
runs (``mmreweight.LabelIssueHook``) and the K-fold finders of ``tools/compare_finders.py`` rank
the benchmark's flipped labels, and what relabelling recovers, next to focal, MentorNet-DD and the
noise oracle."""
import glob
import json
import os
from collections import defaultdict
from typing import Any, Dict, List, Sequence, Tuple

from .finder_comparison import FINDERS
from .plan import CONDITIONS, SOURCES
from .report import (Key, NOISY, _order, compare_to_focal, fmt, gap_recovery, mean_std)

RECIPE = 'label_issues'
#: the methods the README's label-issue table puts next to the recipe
COMPARED = ('focal', 'mentornet_dd', 'noise_oracle')
#: cleanlab's settings in the K-fold records; the README shows the better of them per cell, so
#: that cleanlab is not judged by a default that suits a detector sure of its boxes
CLEANLAB_SETTINGS = ('cleanlab', 'cleanlab_p50')
#: the in-loop finder's statistics per scoring point (LabelIssueHook's ``truth``)
ROUND_METRICS = ('auc', 'flagged_precision', 'flagged_recall', 'clean_flagged_fraction',
                 'suggestion_accuracy')
#: README begin / end markers of the block :func:`readme_block` writes
README_BEGIN = ('<!-- label-issues:begin (written by projects/reweighting_study/tools/'
                'study_report.py --readme) -->')
README_END = '<!-- label-issues:end -->'


def _cells(keys) -> List[Tuple[str, str]]:
    return [(s, c) for s in _order({k[0] for k in keys}, SOURCES)
            for c in _order({k[1] for k in keys if k[0] == s}, CONDITIONS)]


def round_table(results: Sequence[Dict[str, Any]]) -> Dict[Key, Dict[int, Any]]:
    """(source, condition, method) -> scoring iteration -> metric -> (mean, std) over the seeds
    of the runs with a LabelIssueHook (the recipe and its variants), with ``flagged_fraction``
    (flagged / scored annotations)."""
    groups: Dict[Tuple[str, str, str, int], List[Dict[str, Any]]] = defaultdict(list)
    for r in results:
        for rnd in (r.get('label_issues') or {}).get('rounds', []):
            if 'truth' in rnd:
                row = dict(rnd['truth'], flagged_fraction=rnd['flagged'] / rnd['annotations'])
                groups[(r['source'], r['condition'], r['method'], rnd['iter'])].append(row)
    out: Dict[Key, Dict[int, Any]] = defaultdict(dict)
    for (source, condition, method, it), rows in groups.items():
        out[(source, condition, method)][it] = dict(
            seeds=len(rows), **{m: mean_std([r[m] for r in rows])
                                for m in ('flagged_fraction', ) + ROUND_METRICS})
    return dict(out)


def round_text(rounds) -> str:
    if not rounds:
        return ''
    md = ['| data | condition | method | iteration | seeds | flagged | AUC | precision | recall | '
          'clean flagged | right suggestion |', '|---' * 11 + '|']
    for source, condition in _cells(list(rounds)):
        for method in sorted(m for s, c, m in rounds if (s, c) == (source, condition)):
            for it, row in sorted(rounds[(source, condition, method)].items()):
                md.append('| ' + ' | '.join([source, condition, method, str(it),
                                             str(row['seeds'])] + [
                    fmt(row[m]) for m in ('flagged_fraction', ) + ROUND_METRICS]) + ' |')
    return '\n'.join(md)


def load_comparisons(finders_dir: str) -> List[Dict[str, Any]]:
    """The K-fold comparison records (``<cell>.json``) of ``finders_dir``."""
    out = []
    for path in sorted(glob.glob(os.path.join(finders_dir, '*.json'))):
        with open(path) as f:
            out.append(json.load(f))
    return out


def comparison_table(comparisons) -> Dict[Tuple[str, str], Dict[str, Any]]:
    """(source, condition) -> finder -> metric -> (mean, std) over seeds."""
    groups: Dict[Tuple[str, str], List[Dict[str, Any]]] = defaultdict(list)
    for c in comparisons:
        groups[(c['source'], c['condition'])].append(c)
    return {key: dict(seeds=len(cs), folds=cs[0]['folds'], iters=cs[0]['iters'], **{
        finder: {m: mean_std([c['metrics'][finder][m] for c in cs])
                 for m in ('auc', 'precision_at_k')}
        for finder in FINDERS if all(finder in c['metrics'] for c in cs)})
        for key, cs in groups.items()}


def comparison_text(table) -> str:
    if not table:
        return ''
    finders = [f for f in FINDERS if all(f in row for row in table.values())]
    md = ['| data | condition | seeds | ' + ' | '.join(
        f'{f} AUC | {f} P@k' for f in finders) + ' |', '|---' * (3 + 2 * len(finders)) + '|']
    for source, condition in _cells(list(table)):
        row = table[(source, condition)]
        md.append('| ' + ' | '.join([source, condition, str(row['seeds'])] + [
            fmt(row[f][m]) for f in finders for m in ('auc', 'precision_at_k')]) + ' |')
    return '\n'.join(md)


def _mean(table, key: Key, ckpt: str = 'best'):
    cell = table.get(key)
    return None if cell is None else cell[ckpt]['mAP'][0]


def best_cleanlab_auc(cmp_row: Dict[str, Any]) -> float:
    """The higher mean AUC of cleanlab's settings (:data:`CLEANLAB_SETTINGS`) in one cell of
    :func:`comparison_table`."""
    return max(cmp_row[name]['auc'][0] for name in CLEANLAB_SETTINGS if name in cmp_row)


def readme_block(table, rounds, comparisons) -> str:
    """The README's table: per noisy cell, the finders' AUC (K-fold: ours vs cleanlab at its
    better setting, :func:`best_cleanlab_auc`; in the loop at its last scoring point) and the recipe's test mAP against focal, MentorNet-DD and the
    noise oracle, with its difference to focal (2σ) and the share of the gap it recovers."""
    recovery = gap_recovery(table)
    verdicts = {(s, c): {r['method']: r for r in rows}
                for (s, c), rows in compare_to_focal(table, 'mAP', 'best').items()}
    md = ['| data | condition | finder AUC, K-fold: ours / cleanlab | in the loop: AUC, '
          'precision, recall | mAP: focal / DD / oracle | label_issues mAP | Δ focal (2σ) | '
          'gap recovered |', '|---|---|---|---|---|---|---|---|']
    keys = [k for k in table if k[2] == RECIPE and k[1] in NOISY]
    for source, condition in _cells(keys):
        cmp_row = comparisons.get((source, condition))
        finder = (f'{cmp_row["ours"]["auc"][0]:.3f} / {best_cleanlab_auc(cmp_row):.3f}'
                  if cmp_row else '–')
        last = rounds.get((source, condition, RECIPE))
        loop = '–'
        if last:
            row = last[max(last)]
            loop = ', '.join(f'{row[m][0]:.2f}' for m in
                             ('auc', 'flagged_precision', 'flagged_recall'))
        others = ' / '.join('–' if _mean(table, (source, condition, m)) is None else
                            f'{_mean(table, (source, condition, m)):.3f}' for m in COMPARED)
        verdict = verdicts.get((source, condition), {}).get(RECIPE)
        if verdict is None or verdict['threshold'] is None:
            diff = '–'
        else:
            bold = '**' if verdict['verdict'] == 'beats focal' else ''
            diff = f'{bold}{100 * verdict["diff"]:+.1f}{bold} ({100 * verdict["threshold"]:.1f})'
        share = recovery.get((source, condition), {}).get('methods', {}).get(RECIPE)
        md.append('| ' + ' | '.join([
            source, condition, finder, loop, others,
            fmt(table[(source, condition, RECIPE)]['best']['mAP']), diff,
            '–' if share is None else f'{100 * share:.0f}%']) + ' |')
    return '\n'.join(md)


def report_section(results, table, finders_dir: str
                   ) -> Tuple[List[str], Dict[Tuple[str, str], str]]:
    """The study report's label-issue section (markdown lines) and the README block, as
    :func:`~reweighting_study.report.write_report` takes its ``sections``."""
    rounds = round_table(results)
    comparisons = comparison_table(load_comparisons(finders_dir)) if finders_dir else {}
    if not rounds and not comparisons:
        return [], {}
    md = ['## Finding and fixing mislabelled boxes', '']
    if rounds:
        md += ['The runs with a `mmreweight.LabelIssueHook` (`label_issues`: '
               '`configs/retinanet_label_issues.py`, the vote of the clean subset\'s nearest '
               'annotations, flagged where the training scores\' mixture makes a label more '
               'likely wrong than right; its variants in `projects/reweighting_study/configs/`: '
               '`label_issues_neighbours` asks the training annotations and flags above a 20% '
               'clean false-positive rate, `label_issues_margin` scores with the detector\'s own '
               'margin): at each scoring point it scores every training annotation and flags '
               'those above the threshold set on the clean meta split. '
               '`label_issues_retrain` (`configs/retinanet_label_issues_retrain.py`) trains again '
               'from scratch with the last flags of the `label_issues_margin` run of the same '
               'seed acting from iteration 0 (its row 0). Against the benchmark\'s record of the '
               'flipped labels: the flagged share, the AUC of the score, the precision and '
               'recall of the flags, the share of clean annotations flagged, and the share of '
               'flagged flips whose suggestion is the true class (mean ± std over seeds).', '',
               round_text(rounds), '']
    if comparisons:
        some = next(iter(comparisons.values()))
        md += [f'Out-of-sample finders side by side ({some["folds"]}-fold: per fold a focal '
               f'RetinaNet trained {some["iters"]} iterations on the other folds\' images scores '
               'the held-out ones; `projects/reweighting_study/tools/compare_finders.py`). '
               '`ours`: the margin score; `ours_self_confidence`: 1 − p(given); '
               '`ours_neighbours`: the margin of the given labels of the 100 held-out '
               'annotations nearest in class probabilities (`neighbour_margin`); `cleanlab`: 1 − '
               'cleanlab 2.9\'s swap box score (`cleanlab.object_detection.rank.'
               'compute_swap_box_scores`, default parameters); `cleanlab_p50`: the same with '
               '`high_probability_threshold=0.5`. P@k: precision among the k highest scores, k = '
               'the number of flipped labels.', '', comparison_text(comparisons), '']
    return md, {(README_BEGIN, README_END): readme_block(table, rounds, comparisons)}


__all__ = ['RECIPE', 'CLEANLAB_SETTINGS', 'README_BEGIN', 'README_END', 'round_table',
           'round_text', 'load_comparisons', 'comparison_table', 'comparison_text',
           'best_cleanlab_auc', 'readme_block', 'report_section']
