"""A run record's provenance: the code's commit as git itself reports it, dirty or not."""
import json
import subprocess

import torch

from reweighting_study.provenance import code_version, machine_info


def _git(repo, *args):
    return subprocess.run(['git', *args], cwd=repo, capture_output=True, text=True,
                          check=True).stdout.strip()


def test_code_version_is_head_and_marks_changed_tracked_files(tmp_path):
    repo = tmp_path / 'repo'
    repo.mkdir()
    _git(repo, 'init', '-q')
    (repo / 'a.py').write_text('x = 1\n')
    _git(repo, 'add', 'a.py')
    _git(repo, '-c', 'user.name=t', '-c', 'user.email=t@t', 'commit', '-qm', 'first')
    head = _git(repo, 'log', '-1', '--format=%H')
    assert code_version(str(repo)) == head
    (repo / 'notes.txt').write_text('untracked files do not change what runs\n')
    assert code_version(str(repo)) == head
    (repo / 'a.py').write_text('x = 2\n')
    assert code_version(str(repo)) == head + '+dirty'


def test_code_version_outside_a_checkout_is_none(tmp_path, monkeypatch):
    # git must not find a checkout above tmp_path (e.g. a TMPDIR inside one)
    monkeypatch.setenv('GIT_CEILING_DIRECTORIES', str(tmp_path.parent))
    assert code_version(str(tmp_path)) is None


def test_machine_info_is_json_and_names_torchs_cpu_kernels(tmp_path, monkeypatch):
    monkeypatch.setenv('GIT_CEILING_DIRECTORIES', str(tmp_path.parent))
    info = json.loads(json.dumps(machine_info(str(tmp_path))))
    assert info['cpu_capability'] == torch.backends.cpu.get_cpu_capability()
    assert info['torch'] == torch.__version__ and info['cpu'] and info['commit'] is None
