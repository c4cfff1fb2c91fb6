"""Archiving a study's run records: what is copied, what is left, what the report can redo."""
import json

import numpy as np
import pytest

from reweighting_study import records, report
from reweighting_study.archive import archive_study


def _run(study, run_id, diagnostics, files):
    run_dir = study / run_id
    run_dir.mkdir(parents=True)
    for name, text in files.items():
        (run_dir / name).parent.mkdir(parents=True, exist_ok=True)
        (run_dir / name).write_text(text)
    method, seed = run_id.split('-')[2], int(run_id[-1])
    result = dict(run_id=run_id, method=method, condition='uniform40', source='mnist',
                  seed=seed, diagnostics=diagnostics)
    (run_dir / 'result.json').write_text(json.dumps(result))
    return run_dir


#: two training lines of an mmengine log: what the log digest keeps of them
LOG = ('CPU capability usage: AVX2\n'
       'Iter(train) [10/30]  lr: 1.0000e-02  loss: 0.9000  meta_w_clean: 0.9500\n'
       'Iter(train) [30/30]  lr: 1.0000e-02  loss: 0.5000  meta_w_clean: 0.8000\n'
       'Iter(val) [4/4]    coco/bbox_mAP: 0.4200  coco/bbox_mAP_50: 0.8000\n')


def test_records_keep_what_the_report_reads_and_drop_checkpoints(tmp_path):
    study, dest = tmp_path / 'study', tmp_path / 'runs'
    (study).mkdir()
    (study / 'study.json').write_text('{"settings": {"iters": 30}}')
    files = {'timings.json': '{}', 'logs/train.log': LOG, 'logs/test_last.log': 'test',
             'logs/mentor.log': 'fit', 'mentor.pth': 'mentor', 'work/iter_30.pth': 'checkpoint',
             'config.py': 'cfg', 'diagnostics/summary.json': '{}',
             'diagnostics/weight_vs_loss.png': 'png'}
    run = _run(study, 'mnist-uniform40-mentornet_dd-s0',
               dict(last='diagnostics', init='failed: rc 1'), files)
    np.savez(run / 'diagnostics' / 'diagnostics.npz', loss=np.ones(3))
    _run(study, 'mnist-uniform40-focal-s0', dict(last='diagnostics'), {})
    (study / 'mnist-uniform40-focal-s1').mkdir()  # unfinished: no result.json

    written = archive_study(str(study), str(dest))
    assert [p.split('/')[-1] for p in written] == ['mnist-uniform40-focal-s0',
                                                   'mnist-uniform40-mentornet_dd-s0']
    copied = sorted(str(p.relative_to(dest)) for p in dest.rglob('*') if p.is_file())
    dd = 'mnist-uniform40-mentornet_dd-s0/'
    assert copied == ['mnist-uniform40-focal-s0/result.json', dd + 'diagnostics/diagnostics.npz',
                      dd + 'diagnostics/summary.json', dd + 'logs/train_log.json',
                      dd + 'mentor.pth', dd + 'result.json', dd + 'timings.json', 'study.json']
    # the training log survives as its digest, read as the log itself would be
    assert records.log_digest(str(dest / dd)) == records.log_digest(str(run))
    assert records.logged_scalars(str(dest / dd))['meta_w_clean'] == [(10, 0.95), (30, 0.8)]
    assert records.log_digest(str(dest / dd))['val_curve'] == [[30, 0.42]]
    assert records.log_digest(str(dest / dd))['cpu_capability'] == 'AVX2'
    # the report's dump reader finds the archived dump where the study's was
    runs = {r['run_id']: r for r in report.load_results(str(dest))}
    assert report._dump(runs[dd[:-1]])['loss'].tolist() == [1.0, 1.0, 1.0]
    assert not report._dump_lost(runs[dd[:-1]])

    # a record already there is kept unless overwrite; fill adds only what it lacks
    (run / 'logs' / 'train.log').write_text(LOG.replace('0.4200', '0.4300'))
    assert archive_study(str(study), str(dest)) == []
    assert records.log_digest(str(dest / dd))['val_curve'] == [[30, 0.42]]
    (dest / dd / 'mentor.pth').unlink()
    assert [p.split('/')[-1] for p in archive_study(str(study), str(dest), fill=True)] == [dd[:-1]]
    assert (dest / dd / 'mentor.pth').read_text() == 'mentor'
    assert records.log_digest(str(dest / dd))['val_curve'] == [[30, 0.42]]
    assert archive_study(str(study), str(dest), fill=True) == []
    assert len(archive_study(str(study), str(dest), overwrite=True)) == 2
    assert records.log_digest(str(dest / dd))['val_curve'] == [[30, 0.43]]


def test_compact_records_keep_only_the_dumps_the_figures_read(tmp_path):
    dest = tmp_path / 'runs'
    kept, dropped = (dest / f'mnist-uniform40-focal-s{s}' for s in (0, 1))
    for run_dir in (kept, dropped):
        _run(dest, run_dir.name, dict(last='diagnostics'),
             {'logs/train.log': LOG, 'diagnostics/summary.json': '{}'})
        np.savez(run_dir / 'diagnostics' / 'diagnostics.npz', loss=np.ones(3))
    counts = records.compact_records(str(dest),
                                     keep={str(kept / 'diagnostics' / 'diagnostics.npz')})
    assert counts == dict(runs=2, logs_digested=2, figure_inputs_dropped=1)
    assert (kept / 'diagnostics' / 'diagnostics.npz').is_file()
    assert not (dropped / 'diagnostics' / 'diagnostics.npz').exists()
    assert not (kept / 'logs' / 'train.log').exists()
    assert records.logged_scalars(str(kept))['meta_w_clean'] == [(10, 0.95), (30, 0.8)]


def test_fill_refuses_a_rerun_with_other_metrics(tmp_path):
    study, dest = tmp_path / 'study', tmp_path / 'runs'
    run = _run(study, 'mnist-uniform40-focal-s0', dict(last='diagnostics'),
               {'diagnostics/summary.json': '{}'})
    result = json.loads((run / 'result.json').read_text())
    result.update(best=dict(mAP=0.5), last=dict(mAP=0.5), val_curve=[[30, 0.5]])
    (run / 'result.json').write_text(json.dumps(result))
    archive_study(str(study), str(dest))
    (dest / run.name / 'diagnostics' / 'summary.json').unlink()

    result['val_curve'] = [[30, 0.6]]  # another training: its dump must not fill the record
    (run / 'result.json').write_text(json.dumps(result))
    with pytest.raises(ValueError, match='val_curve differ'):
        archive_study(str(study), str(dest), fill=True)
    assert not (dest / run.name / 'diagnostics' / 'summary.json').exists()
