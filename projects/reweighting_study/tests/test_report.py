"""The report from hand-made result.json files and diagnostics dumps (nothing trains)."""
import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest

from reweighting_study import report
from reweighting_study.plan import Run
from reweighting_study.records import run_machine

CLASSES = [str(i) for i in range(10)]


def _result(method, condition, seed, m_best, m_last, rare=0.1, iters=600):
    run = Run(method, condition, 'mnist', seed)

    def ckpt(m):
        return dict(mAP=m, AP50=m + 0.2, AP75=m, rare_AP=rare, empty=False,
                    per_class_AP={c: m for c in CLASSES})

    return dict(run_id=run.run_id, method=method, condition=condition, source='mnist',
                seed=seed, settings=dict(iters=iters, val_evals=4, diag_batches=4),
                classes=CLASSES, best=ckpt(m_best), last=ckpt(m_last),
                diagnostics=dict(last='diagnostics'), val_curve=[[300, m_best / 2], [600, m_best]],
                timings=dict(train=dict(wall_s=200.0, cpu_s=100.0),
                             test_last=dict(wall_s=10.0, cpu_s=8.0)),
                train_s_per_iter=0.25, wall_s=210.0, cpu_s=108.0)


def _dump(method_name, noisy_frac=0.3, seed=0):
    rng = np.random.default_rng(seed)
    n = 400
    pos = rng.random(n) < 0.2
    noisy = np.where(pos, (rng.random(n) < noisy_frac).astype(np.int8), -1).astype(np.int8)
    weight = np.where(noisy == 1, 0.2, 1.0).astype(np.float32)  # noisy positives down-weighted
    hist = rng.integers(0, 100, 30)
    return dict(method=method_name, loss=rng.random(n).astype(np.float32), weight=weight,
                label=np.where(pos, 3, 10).astype(np.int16), pos=pos, noisy=noisy,
                level=np.zeros(n, np.int8), neg_keep_frac=1.0, hist_all=hist,
                hist_target1=hist // 2, hist_target1_clean=hist // 3,
                hist_target1_noisy=hist // 6, hist_edges=np.arange(31) / 30,
                cb_class_weights=np.linspace(0.2, 3, 10), cb_class_counts=np.arange(10) + 1)


def _write(study, result, dumps=('diagnostics', )):
    from mmreweight.analysis.diagnostics import summarize
    run_dir = study / result['run_id']
    run_dir.mkdir(parents=True)
    for name in dumps:
        (run_dir / name).mkdir()
        dump = _dump('L2RWWeighter' if result['method'] == 'l2rw' else 'GHMC')
        np.savez(run_dir / name / 'diagnostics.npz', **dump)
        (run_dir / name / 'summary.json').write_text(json.dumps(
            dict(method=str(dump['method']), **summarize(dump))))
    result = dict(result, diagnostics={('last' if n == 'diagnostics' else 'init'): n
                                       for n in dumps})
    (run_dir / 'result.json').write_text(json.dumps(result))


@pytest.fixture
def study(tmp_path):
    study = tmp_path / 'study'
    for seed, (f, g, worse) in enumerate([(0.50, 0.60, 0.30), (0.52, 0.61, 0.31),
                                          (0.51, 0.62, 0.29)]):
        _write(study, _result('focal', 'uniform40', seed, f, f - 0.01))
        _write(study, _result('ghm', 'uniform40', seed, g, g), ('diagnostics', 'diag_init'))
        _write(study, _result('mwnet', 'uniform40', seed, f + 0.005, f))  # within noise
        _write(study, _result('cb_focal', 'uniform40', seed, worse, worse))
    _write(study, _result('l2rw', 'uniform40', 0, 0.9, 0.9))  # one seed: no verdict
    for seed, m in enumerate([0.60, 0.61, 0.62]):  # focal loses 0.10 mAP to the noise
        _write(study, _result('focal', 'clean', seed, m, m))
    # the meta hook's logged weights: clean positives 1.2 then 1.4, noisy 0.6 then 0.2
    (study / 'mnist-uniform40-l2rw-s0' / 'logs').mkdir()
    (study / 'mnist-uniform40-l2rw-s0' / 'logs' / 'train.log').write_text(
        'INFO - Iter(train) [ 50/600]  lr: 2.0000e-02  loss: 1.2  meta_w_pos: 1.0000  '
        'meta_w_noisy: 0.6000  meta_w_clean: 1.2000  meta_w_zero_frac: 0.0100\n'
        'INFO - Iter(val) [19/19]    coco/bbox_mAP: 0.0300  meta_w_noisy: 9.0\n'
        'INFO - Iter(train) [100/600]  lr: 2.0000e-02  loss: 1.1  meta_w_noisy: 0.2000  '
        'meta_w_clean: 1.4000\n')
    _write(study, _result('focal', 'lt50', 0, 0.4, 0.4, rare=0.05))
    _write(study, _result('cb_focal', 'lt50', 0, 0.41, 0.4, rare=0.2))
    # the GHM init dump is named like tools/study.py names it
    for seed in range(3):
        run_dir = study / f'mnist-uniform40-ghm-s{seed}'
        res = json.loads((run_dir / 'result.json').read_text())
        res['diagnostics'] = dict(last='diagnostics', init='diag_init')
        (run_dir / 'result.json').write_text(json.dumps(res))
        for name, top in (('diagnostics', 0.6), ('diag_init', 0.9)):  # tools/diagnose.py's
            (run_dir / name / 'ghmr_profile.json').write_text(json.dumps(dict(
                mu=0.02, bin_frac=[(1 - top) / 9] * 9 + [top], grad_ratio=[5.0] * 9 + [0.7])))
    (study / 'study.json').write_text(json.dumps(dict(settings=dict(
        iters=600, val_evals=4, diag_batches=4, benchmark_overrides={}))))
    return study


def test_aggregate_mean_and_sample_std(study):
    table = report.aggregate(report.load_results(str(study)))
    cell = table[('mnist', 'uniform40', 'focal')]
    assert cell['seeds'] == [0, 1, 2]
    mean, std = cell['best']['mAP']
    assert mean == pytest.approx(0.51) and std == pytest.approx(0.01)
    assert table[('mnist', 'uniform40', 'l2rw')]['best']['mAP'] == (pytest.approx(0.9), None)
    assert report.mean_std([1.0, float('nan'), 3.0]) == (2.0, pytest.approx(math.sqrt(2)))


def test_compare_to_focal_uses_twice_the_larger_std(study):
    table = report.aggregate(report.load_results(str(study)))
    rows = {r['method']: r for r in report.compare_to_focal(table)[('mnist', 'uniform40')]}
    assert rows['ghm']['verdict'] == 'beats focal'
    assert rows['ghm']['threshold'] == pytest.approx(0.02)
    assert rows['mwnet']['verdict'] == 'within noise'
    assert rows['cb_focal']['verdict'] == 'worse than focal'
    assert rows['l2rw']['verdict'] == 'no verdict (1 seed)'
    assert list(rows) == ['l2rw', 'ghm', 'mwnet', 'cb_focal']  # by difference


def test_cost_extrapolation_scales_the_training_loop_only(study):
    costs = report.cost_by_method(report.load_results(str(study)))
    # loop CPU: 0.25 s/iter * 600 iters * (100 CPU s / 200 wall s)
    assert costs['focal']['loop_cpu_s'] == pytest.approx(75.0)
    per_run, guessed = report.extrapolate(costs, 1200)
    assert per_run['focal'] == pytest.approx(108.0 - 75.0 + 150.0)
    assert 'mentornet_dd' not in per_run and guessed == []


def test_report_writes_markdown_and_figures(study, tmp_path):
    out = tmp_path / 'docs'
    path = report.write_report(str(study), str(out), 'Pilot', note='**1-seed pilot**',
                               study_iters=[1000])
    text = open(path).read()
    assert text.startswith('# Pilot') and '**1-seed pilot**' in text
    assert '| uniform40 | focal | 3 | 0.510 ± 0.010 |' in text
    assert '| lt50 | cb_focal | 1 | 0.410 | 0.400 | 0.610 | 0.600 | 0.200 | 0.200 |' in text
    assert 'beats focal by > 2σ: ghm. Below focal by > 2σ: cb_focal.' in text
    assert '1000 iterations' in text
    for name in ('map_by_method.png', 'val_map_curves.png', 'weight_vs_loss_mnist_uniform40.png',
                 'ghm_gradient_density.png', 'cb_class_weights.png',
                 'weights_during_training.png', 'ghmr_profile.png', 'memorisation.png'):
        assert (out / name).stat().st_size > 1000, name
        assert f']({name})' in text
    # the weights table: noisy positives down-weighted in the fake dumps
    assert '| mnist / uniform40 | l2rw (L2RWWeighter) |' in text
    # logged weights over the run: clean (1.2 + 1.4) / 2, noisy (0.6 + 0.2) / 2
    assert '| mnist / uniform40 | l2rw | 1 | 1.300 | 0.400 | 0.31 |' in text
    assert 'label noise costs focal 0.100 (clean 0.610 → 0.510)' in text


def test_ghmr_profile_draws_one_panel_per_method_from_its_first_cell(study):
    # a second GHM cell that comes first (clean before uniform40), its profile after training only
    _write(study, _result('ghm', 'clean', 0, 0.6, 0.6))
    (study / 'mnist-clean-ghm-s0' / 'diagnostics' / 'ghmr_profile.json').write_text(json.dumps(
        dict(mu=0.05, bin_frac=[0.1] * 10, grad_ratio=[1.0] * 10)))
    panels = report.ghmr_profile_panels(report.aggregate(report.load_results(str(study))))
    assert [(key, [label for label, _ in profiles]) for key, profiles in panels] == [
        (('mnist', 'clean', 'ghm'), ['after'])]
    # without it, the uniform40 cell's first seed, before and after training
    (study / 'mnist-clean-ghm-s0' / 'diagnostics' / 'ghmr_profile.json').unlink()
    panels = report.ghmr_profile_panels(report.aggregate(report.load_results(str(study))))
    assert [(key, [p['mu'] for _, p in profiles]) for key, profiles in panels] == [
        (('mnist', 'uniform40', 'ghm'), [0.02, 0.02])]


def test_curve_peak_by_hand():
    rising = report.curve_peak([(100, 0.2), (200, 0.5), (300, 0.6)])
    assert (rising['peak_iter'], rising['fall']) == (300, 0.0)
    # fitting the wrong labels: peak at 200, the last point 0.15 below; ties: the first peak
    falling = report.curve_peak([(100, 0.3), (200, 0.6), (300, 0.6), (400, 0.45), (500, 0.5)])
    assert (falling['peak_iter'], falling['peak'], falling['last_iter']) == (200, 0.6, 500)
    assert falling['trough'] == 0.45 and falling['fall'] == pytest.approx(0.1)
    assert rising['trough'] == 0.6  # nothing after the peak


def test_lr_milestones_from_the_runs_options():
    run = dict(cfg_options=['train_cfg.max_iters=600', 'param_scheduler.1.milestones=[450,540]'])
    assert report.lr_milestones(run) == [450, 540]
    assert report.lr_milestones(dict(cfg_options=['a=1'])) == []


def test_memorisation_table_summarises_focals_val_curves(study):
    table = report.aggregate(report.load_results(str(study)))
    rows = report.memorisation_table(table)
    # the fixture's curves rise to their last point: (300, m / 2), (600, m)
    assert set(rows) == {('mnist', 'uniform40'), ('mnist', 'clean'), ('mnist', 'lt50')}
    row = rows[('mnist', 'uniform40')]
    assert row['seeds'] == 3 and row['peak_iter'] == (600, 0.0)
    assert row['peak'][0] == pytest.approx(0.51) and row['fall'] == (0.0, 0.0)
    text = report.memorisation_text(rows)
    assert ('| mnist | uniform40 | 3 | 0.510 ± 0.010 | 600 | 0.510 ± 0.010 | 0.510 ± 0.010 | '
            '0.000 ± 0.000 |') in text


def test_memorisation_text_gives_the_range_of_peak_iterations_where_seeds_differ():
    curves = {0: [(300, 0.4), (600, 0.6)], 1: [(300, 0.5), (600, 0.4)]}
    runs = [dict(seed=s, val_curve=c) for s, c in curves.items()]
    rows = report.memorisation_table({('mnist', 'pairflip40', 'focal'): dict(runs=runs)})
    row = rows[('mnist', 'pairflip40')]
    assert row['peak_iter_range'] == (300, 600) and row['peak_iter'][0] == 450
    assert '| mnist | pairflip40 | 2 | 0.550 ± 0.071 | 300–600 |' in report.memorisation_text(rows)


def test_gap_recovery_is_the_share_of_focals_clean_vs_noisy_gap(study):
    table = report.aggregate(report.load_results(str(study)))
    rec = report.gap_recovery(table)[('mnist', 'uniform40')]
    assert rec['gap'] == pytest.approx(0.10)
    assert rec['methods']['ghm'] == pytest.approx((0.61 - 0.51) / 0.10)  # all of it
    assert rec['methods']['l2rw'] == pytest.approx((0.90 - 0.51) / 0.10)
    assert rec['methods']['cb_focal'] == pytest.approx((0.30 - 0.51) / 0.10)  # worse: negative
    assert 'focal' not in rec['methods']
    assert ('mnist', 'lt50') not in report.gap_recovery(table)  # not a noisy condition


def test_report_refreshes_the_readme_block(study, tmp_path):
    readme = tmp_path / 'README.md'
    readme.write_text(f'# Project\n\nbefore\n\n{report.README_BEGIN}\nold table\n'
                      f'{report.README_END}\n\nafter\n')
    report.write_report(str(study), str(tmp_path / 'docs' / 'study'), readme=str(readme))
    text = readme.read_text()
    assert 'old table' not in text and text.startswith('# Project\n\nbefore')
    assert text.rstrip().endswith('after')
    block = text[text.index(report.README_BEGIN):text.index(report.README_END)]
    # focal and the best method with at least two seeds (not l2rw's one 0.9 run), its lead in
    # points and twice the larger std, bold when beyond it
    assert '| mnist | uniform40 | 0.6k | 0.510 ± 0.010 | **ghm** (0.610) | +10.0 (2.0) |' in block
    assert '| mnist | clean | 0.6k | 0.610 ± 0.010 | – | – |' in block
    assert '| mnist | lt50 | 0.6k | 0.400 | – | – | 0.050 | – | – |' in block
    assert '](docs/study/README.md)' in block
    # refreshing twice gives the same file; a README without the block is an error
    report.write_report(str(study), str(tmp_path / 'docs' / 'study'), readme=str(readme))
    assert readme.read_text() == text
    (tmp_path / 'plain.md').write_text('# no block\n')
    with pytest.raises(ValueError, match='study-report:begin'):
        report.write_report(str(study), str(tmp_path / 'docs' / 'study'),
                            readme=str(tmp_path / 'plain.md'))


def test_readme_rows_from_a_longer_schedule_once_its_cell_is_complete(study, tmp_path):
    """A noise cell of the converged records replaces the README row once every converged
    method has every seed there, and the caption names the methods it ran and links its report."""
    longer = tmp_path / 'converged'
    means = dict(focal=0.70, label_issues=0.85, mentornet_dd_blind=0.72, l2rw=0.74, mwnet=0.69,
                 noise_oracle=0.88)
    for seed, jitter in enumerate((-0.01, 0.0, 0.01)):
        for method, m in means.items():
            if method == 'mwnet' and seed == 2:
                continue  # the cell is not complete yet
            _write(longer, _result(method, 'uniform40', seed, m + jitter, m, iters=2400))
    readme = tmp_path / 'README.md'
    readme.write_text(f'{report.README_BEGIN}\n{report.README_END}\n')

    def block():
        report.write_report(str(study), str(tmp_path / 'docs' / 'study'), readme=str(readme),
                            converged=(str(longer), str(tmp_path / 'docs' / 'study' / 'long')))
        return readme.read_text()

    text = block()
    assert '| mnist | uniform40 | 0.6k | 0.510 ± 0.010 | **ghm** (0.610) |' in text
    assert 'longer schedule' not in text
    _write(longer, _result('mwnet', 'uniform40', 2, 0.70, 0.69, iters=2400))
    text = block()
    # focal 0.70 ± 0.01 and the best study method among label_issues, l2rw, mwnet: label_issues
    # (0.85 ± 0.01), beyond 2σ = 2.0; the oracle and DD-blind are not candidates
    assert ('| mnist | uniform40 | 2.4k | 0.700 ± 0.010 | **label_issues** (0.850) | '
            '+15.0 (2.0) |') in text
    assert '| mnist | clean | 0.6k | 0.610 ± 0.010 |' in text  # not a cell of the longer study
    assert ('at the [longer schedule](docs/study/long/README.md) among those it ran '
            '(label_issues, l2rw, mwnet)') in text


def test_comparisons_across_machines_are_marked(study, tmp_path):
    """A cell whose method and focal runs come from different machines gets a ‡ in the README
    table; one machine, recorded or read from the log digest's ISA, gets none."""
    def set_machine(run_id, cpu=None, isa=None):
        run_dir = study / run_id
        res = json.loads((run_dir / 'result.json').read_text())
        res['machine'] = dict(cpu=cpu, cpu_capability=isa) if cpu else None
        (run_dir / 'result.json').write_text(json.dumps(res))
        if isa and not cpu:  # an older record: the ISA only, in its log digest
            (run_dir / 'logs').mkdir(exist_ok=True)
            (run_dir / 'logs' / 'train_log.json').write_text(json.dumps(
                dict(val_curve=[], scalars={}, cpu_capability=isa)))

    for seed in range(3):
        set_machine(f'mnist-uniform40-focal-s{seed}', isa='AVX2')
        set_machine(f'mnist-uniform40-mwnet-s{seed}', isa='AVX2')
        set_machine(f'mnist-uniform40-ghm-s{seed}', cpu='AMD EPYC', isa='AVX512')
    results = report.load_results(str(study))
    machines = {r['run_id']: run_machine(r) for r in results}
    assert machines['mnist-uniform40-focal-s0'] == 'unrecorded CPU (AVX2)'
    assert machines['mnist-uniform40-ghm-s0'] == 'AMD EPYC'
    rows = {r['method']: r for r in
            report.compare_to_focal(report.aggregate(results))[('mnist', 'uniform40')]}
    assert rows['ghm']['machines'] == ['AMD EPYC', 'unrecorded CPU (AVX2)']
    assert rows['mwnet']['machines'] == ['unrecorded CPU (AVX2)']
    table = report.aggregate(results)
    assert '| **ghm** (0.610) | +10.0 (2.0) ‡ |' in report.readme_table(table)
    for seed in range(3):  # ghm rerun on focal's machine: no mark
        set_machine(f'mnist-uniform40-ghm-s{seed}', isa='AVX2')
    table = report.aggregate(report.load_results(str(study)))
    assert '| **ghm** (0.610) | +10.0 (2.0) |' in report.readme_table(table)


def test_the_noise_oracle_is_reported_as_a_bound_not_a_winner(study):
    for seed, m in enumerate([0.58, 0.59, 0.60]):
        _write(study, _result('noise_oracle', 'uniform40', seed, m, m))
    table = report.aggregate(report.load_results(str(study)))
    rows = {r['method']: r for r in report.compare_to_focal(table)[('mnist', 'uniform40')]}
    assert rows['noise_oracle']['verdict'] == 'beats focal'  # by the numbers ...
    text = report.comparison_text(report.compare_to_focal(table), 'mAP', 'best')
    assert 'beats focal by > 2σ: ghm.' in text  # ... but not listed among the methods that do
    assert 'noise_oracle (oracle) +0.080' in text
    gaps = report.gap_text(report.gap_recovery(table))
    assert 'noise_oracle (oracle) +80%' in gaps


def test_archived_records_keep_the_dump_figures_of_an_earlier_report(study, tmp_path):
    """Run records without their dumps (archived): the dump figures an earlier report drew stay
    as they were and are listed as kept; none is redrawn from part of its runs."""
    out = tmp_path / 'docs'
    report.write_report(str(study), str(out))
    names = ('weight_vs_loss_mnist_uniform40.png', 'ghm_gradient_density.png',
             'cb_class_weights.png')
    before = {n: (out / n).read_bytes() for n in names}
    assert 'so kept as they are' not in (out / 'README.md').read_text()
    for npz in study.glob('*/*/diagnostics.npz'):
        if 'l2rw' not in str(npz):  # the l2rw run alone keeps its dump
            npz.unlink()
    text = open(report.write_report(str(study), str(out))).read()
    assert {n: (out / n).read_bytes() for n in names} == before  # not redrawn
    assert ('Drawn from diagnostics dumps that these run records do not hold, so kept as they are '
            'in the output folder: `ghm_gradient_density.png`, `cb_class_weights.png`, '
            '`weight_vs_loss_mnist_uniform40.png`.') in text
    for name in names:
        assert f']({name})' in text
    fresh = tmp_path / 'fresh'  # no earlier report: the figures are left out, not half drawn
    text = open(report.write_report(str(study), str(fresh))).read()
    assert not any((fresh / n).exists() for n in names) and 'Kept from' not in text


def test_mentor_curves_from_a_dd_runs_mentor_log_and_dump(study, tmp_path):
    import torch

    from mmreweight.weighting.mentornet.dd import save_mentor
    from mmreweight.weighting.mentornet.net import MentorNetwork
    # a lower-seed DD run whose mentor is gone (an archived record): the figure uses seed 1's
    _write(study, _result('mentornet_dd', 'uniform40', 0, 0.55, 0.55))
    _write(study, _result('mentornet_dd_mono', 'uniform40', 1, 0.55, 0.55))
    run_dir = study / 'mnist-uniform40-mentornet_dd_mono-s1'
    net = MentorNetwork(seed=2)
    save_mentor(str(run_dir / 'mentor.pth'), net)
    (run_dir / 'logs').mkdir()
    (run_dir / 'logs' / 'train.log').write_text(
        'INFO - Iter(train) [ 50/600]  lr: 2.0000e-02  mentornet_pct_ema_pos: 0.5000\n'
        'INFO - Iter(train) [100/600]  lr: 2.0000e-02  mentornet_pct_ema_pos: 0.2500\n')
    text = open(report.write_report(str(study), str(tmp_path / 'docs'))).read()
    assert (tmp_path / 'docs' / 'mentor_curves.png').stat().st_size > 1000
    assert '![mentor curves](mentor_curves.png)' in text
    table = report.aggregate(report.load_results(str(study)))
    run, mentor, lam, _ = report._mentor_run(table, 'mnist', 'uniform40')
    assert (run['method'], run['seed'], lam) == ('mentornet_dd_mono', 1, 0.25)
    # the curve: the mentor on [l, l - lambda, y = 1, epoch 99] (lambda: the last logged value)
    grid, v, envelope = report.mentor_curve_data(str(run_dir / 'mentor.pth'), 0.25, 2.0, 21)
    loss = torch.linspace(0, 2.0, 21)
    with torch.no_grad():
        expected = net.weights(torch.stack([loss, loss - 0.25, torch.ones(21),
                                            torch.full((21, ), 99.0)], 1))
    assert np.allclose(v, expected.numpy(), atol=1e-6)
    assert np.allclose(envelope, np.minimum.accumulate(expected.numpy()), atol=1e-6)


def test_label_issue_dumps_without_the_checkpoints_flags_are_left_out(study):
    from mmreweight.analysis.diagnostics import summarize
    dump = _dump('LabelIssueWeighter')
    # tools/diagnose.py records the flags it gave the batches; older dumps lack the keys
    for method, flags in (('label_issues', dict(label_issue_flags=120, label_issue_relabels=0)),
                          ('label_issues_margin', {})):
        _write(study, _result(method, 'uniform40', 0, 0.55, 0.55))
        folder = study / f'mnist-uniform40-{method}-s0' / 'diagnostics'
        np.savez(folder / 'diagnostics.npz', **dump)
        (folder / 'summary.json').write_text(json.dumps(
            dict(method='LabelIssueWeighter', **summarize(dump), **flags)))
    md = report.diagnostics_table(report.aggregate(report.load_results(str(study))))
    assert '| mnist / uniform40 | label_issues (LabelIssueWeighter) |' in md
    assert 'label_issues_margin' not in md and "without the checkpoint's flags" in md


def test_val_curves_are_the_mean_over_seeds_with_the_same_validations():
    runs = [dict(seed=s, val_curve=c) for s, c in
            ((2, [[300, 0.2], [600, 0.5]]), (0, [[300, 0.4], [600, 0.7]]),
             (1, [[250, 0.9], [600, 0.9]]))]  # seed 1 validated elsewhere: left out
    curve, seeds = report.mean_val_curve(dict(runs=runs))
    assert seeds == 2
    assert curve == [(300, pytest.approx(0.3)), (600, pytest.approx(0.6))]
    assert report.mean_val_curve(dict(runs=[dict(seed=0, val_curve=[])])) == ([], 0)


def test_val_curve_figure_leaves_the_variants_out_past_its_limit():
    table = {('mnist', 'uniform40', m): {} for m in ('focal', 'l2rw', 'noise_oracle', 'ghm_l1')}
    assert report.curve_methods(table) == ['focal', 'ghm_l1', 'l2rw', 'noise_oracle']  # the plan's order
    variants = [m for m in report.METHODS if m not in report.STUDY_METHODS][:12]
    table.update({('mnist', 'clean', m): {} for m in variants})
    kept = report.curve_methods(table)
    assert 'focal' in kept and 'noise_oracle' in kept and 'ghm_l1' not in kept
    assert set(kept) <= set(report.STUDY_METHODS) | set(report.ORACLES)


def test_regime_table_puts_each_verdict_beside_the_early_one(study, tmp_path):
    """The fixture's study is the early regime (600 iterations): ghm +10.0 (2σ 2.0), mwnet +0.5,
    focal's gap 0.10 (clean 0.61 -> 0.51). At the longer schedule focal falls to 0.40 and its
    clean run reaches 0.80; l2rw gains 0.08 on the best and 0.20 on the last checkpoints."""
    longer = tmp_path / 'longer'
    for seed, jitter in enumerate((-0.01, 0.0, 0.01)):
        _write(longer, _result('focal', 'uniform40', seed, 0.40 + jitter, 0.30 + jitter,
                               iters=2400))
        _write(longer, _result('l2rw', 'uniform40', seed, 0.48 + jitter, 0.50 + jitter,
                               iters=2400))
    _write(longer, _result('focal', 'clean', 0, 0.80, 0.80, iters=2400))
    _write(longer, _result('mwnet', 'uniform40', 0, 0.41, 0.41, iters=2400))
    long, early = (report.aggregate(report.load_results(str(d))) for d in (longer, study))
    text = report.regime_table(long, early)
    assert 'Δ best (2σ), 2,400 | Δ last (2σ), 2,400 | gap recovered, 2,400 | ' \
           'Δ best (2σ), 600 | gap recovered, 600 |' in text
    # l2rw: +8.0 (2σ 2.0) beyond, last +20.0, 20% of 0.40; early: one seed, 0.9 - 0.51
    assert '| mnist | uniform40 | l2rw | 3 / 1 | **+8.0** (2.0) | **+20.0** (2.0) | 20% | ' \
           '+39.0 (1 seed) | 390% |' in text
    assert '| mnist | uniform40 | mwnet | 1 / 3 | +1.0 (1 seed) | +11.0 (1 seed) | 2% | ' \
           '+0.5 (2.0) | 5% |' in text
    assert 'ghm' not in text and '| clean |' not in text  # not run longer; not a noisy cell
    lines, blocks = report.regime_section([], long, str(study))
    assert text in lines and not blocks


@pytest.mark.parametrize('args, match', [
    (['--converged'], '--converged only changes the README'),
    (['--readme', 'README.md', '--converged-report', 'docs'], 'add --converged'),
])
def test_report_tool_refuses_options_that_would_do_nothing(tmp_path, args, match, capsys):
    path = Path(__file__).resolve().parents[1] / 'tools' / 'study_report.py'
    spec = importlib.util.spec_from_file_location('study_report_tool', path)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    with pytest.raises(SystemExit) as exit_:
        tool.main([str(tmp_path), *args])
    assert exit_.value.code == 2 and match in capsys.readouterr().err
