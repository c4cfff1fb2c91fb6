"""The committed run records: light, and enough to regenerate the committed study reports and the
README's results blocks."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[1]
REPO = PROJECT.parents[1]
RECORDS = PROJECT / 'records'
STUDY_DOCS = REPO / 'docs' / 'study'
#: the most the records may weigh, in bytes of file content: about 400 runs at 10-15 kB, plus one
#: diagnostics dump per cell that the figures draw (about 7.5 MiB), and the converged study's
#: about 50 runs with a dump per cell and method (about 4 MiB)
MAX_RECORD_BYTES = 12 * 2**20
#: the most one record file may weigh: a diagnostics dump is about 110 kB, a checkpoint megabytes
MAX_FILE_BYTES = 256 * 2**10


def test_records_stay_light():
    files = [p for p in RECORDS.rglob('*') if p.is_file()]
    assert len(files) > 1000  # the study's records are all here, not a stub
    assert sum(p.stat().st_size for p in files) <= MAX_RECORD_BYTES
    assert not [p for p in files if p.stat().st_size > MAX_FILE_BYTES]  # no checkpoint, no raw dump
    assert not [p for p in files if p.name == 'train.log']  # digested, not kept


CONVERGED_TITLE = 'The noisy cells at a converged schedule'
ONE_MACHINE_TITLE = 'Focal loss and GHM on one machine'
GHM_BOX_WEIGHT_TITLE = "GHM-R's loss weight against focal loss on one machine"
#: (records, report folder, its note, the figures it must redraw, extra study_report options)
REPORTS = {
    'study': (RECORDS / 'runs', STUDY_DOCS, 'note.md',
              {'map_by_method.png', 'val_map_curves.png', 'mentor_curves.png', 'ghmr_profile.png',
               'weights_during_training.png', 'memorisation.png'}, []),
    'converged': (RECORDS / 'converged', STUDY_DOCS / 'converged', 'note.md',
                  {'val_map_curves.png', 'memorisation.png'},
                  ['--finders', '', '--title', CONVERGED_TITLE,
                   '--early', str(RECORDS / 'runs')]),
    'one_machine': (RECORDS / 'one_machine', STUDY_DOCS / 'one_machine', 'note.md',
                    {'map_by_method.png', 'val_map_curves.png'},
                    ['--finders', '', '--title', ONE_MACHINE_TITLE]),
    'ghm_box_weight': (RECORDS / 'ghm_box_weight', STUDY_DOCS / 'ghm_box_weight', 'note.md',
                       {'map_by_method.png', 'val_map_curves.png'},
                       ['--finders', '', '--title', GHM_BOX_WEIGHT_TITLE]),
}


@pytest.mark.slow
@pytest.mark.parametrize('name', REPORTS)
def test_a_committed_study_report_regenerates_from_its_records(tmp_path, name):
    records, docs, note, figures, options = REPORTS[name]
    out = tmp_path / docs.relative_to(REPO)  # the repository's layout, for the README's links
    out.mkdir(parents=True)
    # the figures drawn from dumps that some older records never held are kept from the
    # committed report, as in the docs folder itself
    for png in docs.glob('*.png'):
        shutil.copy2(png, out)
    drawn_before = {p.name: p.stat().st_mtime_ns for p in out.glob('*.png')}
    if name == 'study':  # the study also writes the README's results blocks
        shutil.copy2(REPO / 'README.md', tmp_path)
        options = ['--readme', str(tmp_path / 'README.md'), '--converged',
                   str(RECORDS / 'converged'), '--converged-report', str(out / 'converged')]
    subprocess.run([sys.executable, str(PROJECT / 'tools' / 'study_report.py'), str(records),
                    '--out', str(out), '--note-file', str(docs / note), *options],
                   check=True, capture_output=True, cwd=REPO)
    assert (out / 'README.md').read_text() == (docs / 'README.md').read_text()
    if name == 'study':
        assert (tmp_path / 'README.md').read_text() == (REPO / 'README.md').read_text()
    redrawn = {p.name for p in out.glob('*.png')
               if p.stat().st_mtime_ns != drawn_before.get(p.name)}
    assert figures <= redrawn
