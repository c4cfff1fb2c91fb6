"""Archiving a study's run records: what is copied, what is left, what the report can redo."""
import json

import numpy as np
import pytest

from mmreweight.study import report
from mmreweight.study.archive import archive_study


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


def test_records_keep_what_the_report_reads_and_drop_checkpoints(tmp_path):
    study, dest = tmp_path / 'study', tmp_path / 'runs'
    (study).mkdir()
    (study / 'study.json').write_text('{"settings": {"iters": 30}}')
    files = {'timings.json': '{}', 'logs/train.log': 'log', 'logs/test_last.log': 'test',
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
                      dd + 'diagnostics/summary.json', dd + 'logs/mentor.log',
                      dd + 'logs/train.log', dd + 'mentor.pth',
                      dd + 'result.json', dd + 'timings.json', 'study.json']
    # the report's dump reader finds the archived dump where the study's was
    runs = {r['run_id']: r for r in report.load_results(str(dest))}
    assert report._dump(runs[dd[:-1]])['loss'].tolist() == [1.0, 1.0, 1.0]
    assert not report._dump_lost(runs[dd[:-1]])

    # a record already there is kept unless overwrite; fill adds only what it lacks
    (run / 'logs' / 'train.log').write_text('rerun')
    assert archive_study(str(study), str(dest)) == []
    assert (dest / dd / 'logs' / 'train.log').read_text() == 'log'
    (dest / dd / 'mentor.pth').unlink()
    assert [p.split('/')[-1] for p in archive_study(str(study), str(dest), fill=True)] == [dd[:-1]]
    assert (dest / dd / 'mentor.pth').read_text() == 'mentor'
    assert (dest / dd / 'logs' / 'train.log').read_text() == 'log'
    assert archive_study(str(study), str(dest), fill=True) == []
    assert len(archive_study(str(study), str(dest), overwrite=True)) == 2
    assert (dest / dd / 'logs' / 'train.log').read_text() == 'rerun'


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
