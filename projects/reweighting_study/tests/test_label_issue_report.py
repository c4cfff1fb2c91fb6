"""The label-issue section of the study report, from hand-made run results and comparisons."""
import json

import pytest

from reweighting_study.label_issue_report import (README_BEGIN, README_END, comparison_table,
                                                  readme_block, report_section, round_table)
from reweighting_study.report import aggregate


def _result(method, condition, seed, mAP, rounds=None):
    metrics = dict(mAP=mAP, AP50=mAP, rare_AP=mAP)
    return dict(method=method, condition=condition, source='mnist', seed=seed, best=metrics,
                last=metrics, label_issues=None if rounds is None else dict(rounds=rounds))


def _round(it, auc, precision, recall, flagged=10):
    return dict(iter=it, flagged=flagged, annotations=100, truth=dict(
        auc=auc, flagged_precision=precision, flagged_recall=recall,
        clean_flagged_fraction=0.05, suggestion_accuracy=0.8))


RESULTS = [
    _result('focal', 'clean', 0, 0.82), _result('focal', 'clean', 1, 0.84),
    _result('focal', 'uniform40', 0, 0.73), _result('focal', 'uniform40', 1, 0.75),
    _result('label_issues', 'uniform40', 0, 0.81, [_round(600, 0.90, 0.9, 0.5),
                                                    _round(1200, 0.96, 0.95, 0.8)]),
    _result('label_issues', 'uniform40', 1, 0.83, [_round(600, 0.92, 0.9, 0.6),
                                                    _round(1200, 0.98, 0.95, 0.9)]),
]
COMPARISONS = [dict(source='mnist', condition='uniform40', seed=s, folds=2, iters=1000, metrics={
    name: dict(auc=auc + 0.01 * s, precision_at_k=0.5)
    for name, auc in dict(ours=0.95, ours_self_confidence=0.9, cleanlab=0.6,
                          cleanlab_p50=0.7).items()}) for s in range(2)]


def test_round_table_averages_each_scoring_point_over_seeds():
    rounds = round_table(RESULTS)
    assert set(rounds) == {('mnist', 'uniform40', 'label_issues')}
    point = rounds[('mnist', 'uniform40', 'label_issues')]
    assert sorted(point) == [600, 1200]
    assert point[1200]['seeds'] == 2
    assert point[1200]['auc'][0] == pytest.approx(0.97)
    assert point[600]['flagged_recall'][0] == pytest.approx(0.55)
    assert point[600]['flagged_fraction'][0] == pytest.approx(0.1)


def test_readme_block_puts_the_recipe_next_to_focal_and_the_finders():
    table = aggregate(RESULTS)
    cmp = comparison_table(COMPARISONS)
    assert cmp[('mnist', 'uniform40')]['cleanlab']['auc'][0] == pytest.approx(0.605)
    assert cmp[('mnist', 'uniform40')]['cleanlab_p50']['auc'][0] == pytest.approx(0.705)
    (header, _, row) = readme_block(table, round_table(RESULTS), cmp).splitlines()
    cells = [c.strip() for c in row.strip('|').split('|')]
    assert cells[:2] == ['mnist', 'uniform40']
    assert cells[2] == '0.955 / 0.705'  # K-fold AUC: ours / cleanlab at its better setting
    assert cells[3] == '0.97, 0.95, 0.85'  # in the loop, last scoring point
    assert cells[4] == '0.740 / – / –'  # focal / DD / oracle
    assert cells[5].startswith('0.820')
    # +8.0 points over focal, beyond 2σ (2 x 0.014); recovers (0.82 - 0.74) / (0.83 - 0.74)
    assert cells[6].startswith('**+8.0**')
    assert cells[7] == f'{100 * 0.08 / 0.09:.0f}%'


def test_report_section_reads_the_comparison_records(tmp_path):
    for c in COMPARISONS:
        (tmp_path / f'mnist-uniform40-s{c["seed"]}.json').write_text(json.dumps(c))
    lines, blocks = report_section(RESULTS, aggregate(RESULTS), str(tmp_path))
    text = '\n'.join(lines)
    assert '| mnist | uniform40 | 2 | 0.955 ± 0.007 |' in text
    assert list(blocks) == [(README_BEGIN, README_END)]
    assert report_section([], {}, str(tmp_path / 'none')) == ([], {})
