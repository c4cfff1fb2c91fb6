"""A study run's record, copied out of its study directory and made compact
(:mod:`.records`): what the report needs, without the checkpoints, the test outputs and the full
logs. About 5 kB a run, plus the few dumps and mentors the figures draw, so a study's records can
be committed (``projects/reweighting_study/records``) and its report regenerated from them,
figures included, elsewhere."""
import json
import os
import shutil
from typing import List, Optional

from .plan import STUDY_FILE
from .records import LOG_DIGEST, write_log_digest

#: files of a run directory, relative to it, copied as they are (its training log is digested)
RUN_FILES = ('result.json', 'timings.json', LOG_DIGEST, 'mentor.pth')
#: files of each diagnostics directory the run's result names (tools/diagnose.py's outputs)
DIAGNOSTICS_FILES = ('summary.json', 'diagnostics.npz', 'ghmr_profile.json')


def record_files(run_dir: str) -> List[str]:
    """The record's files of a finished run (one with a result.json), relative to ``run_dir``."""
    with open(os.path.join(run_dir, 'result.json')) as f:
        result = json.load(f)
    names = list(RUN_FILES)
    for rel in (result.get('diagnostics') or {}).values():
        if rel and not rel.startswith('failed'):
            names += [os.path.join(rel, name) for name in DIAGNOSTICS_FILES]
    return [n for n in names if os.path.isfile(os.path.join(run_dir, n))]


#: what a rerun must reproduce before its files may fill an existing record
SAME_RUN_KEYS = ('best', 'last', 'val_curve')


def _check_same_metrics(run_dir: str, record_dir: str) -> None:
    """Refuse to fill a record from a run whose metrics differ from the record's: its dump or
    mentor would then describe another training than the record's numbers."""
    results = []
    for d in (run_dir, record_dir):
        with open(os.path.join(d, 'result.json')) as f:
            results.append(json.load(f))
    differ = [k for k in SAME_RUN_KEYS if results[0].get(k) != results[1].get(k)]
    if differ:
        raise ValueError(f'cannot fill the record {record_dir} from {run_dir}: the rerun\'s '
                         f'{", ".join(differ)} differ from the record\'s (not the same training)')


def archive_run(run_dir: str, dest_root: str, overwrite: bool = False,
                fill: bool = False) -> Optional[str]:
    """Copy the record of ``run_dir`` to ``dest_root/<run id>``; returns that path, or None when
    the run has no result.json (not finished) or its record is there and neither ``overwrite``
    (replace it) nor ``fill`` (add the files it lacks, e.g. the dump of an older record, from a
    rerun of the same run: runs repeat exactly on the same CPU, not on every CPU, so a rerun
    whose metrics differ from the record's is a ValueError) applies."""
    if not os.path.isfile(os.path.join(run_dir, 'result.json')):
        return None
    dest = os.path.join(dest_root, os.path.basename(os.path.normpath(run_dir)))
    names = record_files(run_dir)
    if os.path.exists(dest):
        if overwrite:
            shutil.rmtree(dest)
        elif fill:
            _check_same_metrics(run_dir, dest)
            names = [n for n in names if not os.path.exists(os.path.join(dest, n))]
            if not names:
                return None
        else:
            return None
    for name in names:
        os.makedirs(os.path.dirname(os.path.join(dest, name)), exist_ok=True)
        shutil.copy2(os.path.join(run_dir, name), os.path.join(dest, name))
    if not os.path.isfile(os.path.join(dest, LOG_DIGEST)):
        write_log_digest(run_dir, dest)
    return dest


def archive_study(study_dir: str, dest_root: str, overwrite: bool = False,
                  fill: bool = False) -> List[str]:
    """Archive every finished run of ``study_dir`` (and its settings file, if ``dest_root`` has
    none); returns the records written or filled (see :func:`archive_run`). The records keep every
    dump and mentor; :func:`~.records.compact_records` then drops those no figure reads."""
    os.makedirs(dest_root, exist_ok=True)
    settings = os.path.join(study_dir, STUDY_FILE)
    if os.path.isfile(settings) and not os.path.exists(os.path.join(dest_root, STUDY_FILE)):
        shutil.copy2(settings, dest_root)
    written = []
    for name in sorted(os.listdir(study_dir)):
        path = os.path.join(study_dir, name)
        if os.path.isdir(path):
            dest = archive_run(path, dest_root, overwrite, fill)
            if dest is not None:
                written.append(dest)
    return written


__all__ = ['RUN_FILES', 'DIAGNOSTICS_FILES', 'record_files', 'archive_run', 'archive_study']
