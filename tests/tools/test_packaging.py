"""The working tree installs as a package (`pip install --no-deps --no-build-isolation`) into a
fresh environment, and `mim train mmreweight <config>` then finds the config inside it.

The fresh environment is a venv whose own site-packages receives mmreweight and which reads
torch/mmcv/mmdet/mim from the environment running the tests (a ``.pth`` line), so that nothing is
downloaded and the installed copy, not the one under test's working tree, is what runs.
"""
import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tool_testing import run as _run, tiny_options

REPO = Path(__file__).resolve().parents[2]
#: what the build reads (pyproject's readme and license, setup.py's .mim copies, the package)
SOURCES = ('pyproject.toml', 'setup.py', 'README.md', 'LICENSE', 'mmreweight', 'configs', 'tools')

pytestmark = pytest.mark.slow


@pytest.fixture(scope='module')
def fresh_env(tmp_path_factory):
    """(python of a fresh venv with the working tree installed, its environment variables)."""
    tmp = tmp_path_factory.mktemp('packaging')
    if importlib.util.find_spec('mim') is None:
        pytest.skip('mim is not installed in this environment')
    # a copy, so that the build's build/ and *.egg-info never land in the working tree
    src = tmp / 'src'
    for name in SOURCES:
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns('__pycache__', '*.pyc'))
        else:
            src.mkdir(exist_ok=True)
            shutil.copy2(path, src / name)
    venv = tmp / 'venv'
    subprocess.run([sys.executable, '-m', 'venv', '--without-pip', str(venv)], check=True)
    python = venv / 'bin' / 'python'
    purelib = Path(subprocess.run(
        [str(python), '-c', 'import sysconfig; print(sysconfig.get_paths()["purelib"])'],
        check=True, capture_output=True, text=True).stdout.strip())
    # after the venv's own site-packages: the installed mmreweight shadows the tested env's one
    (purelib / 'tested_env.pth').write_text(sysconfig.get_paths()['purelib'] + '\n')
    env = dict(os.environ, PYTHONWARNINGS='ignore', PIP_NO_INDEX='1',
               MMREWEIGHT_DATA_ROOT=str(tmp / 'data'))
    env.pop('PYTHONPATH', None)
    _run([python, '-m', 'pip', 'install', '--no-deps', '--no-build-isolation', '--no-index',
          str(src)], cwd=tmp, env=env, timeout=300)
    return python, purelib, env


def test_pip_install_ships_the_package_configs_tools_and_license(fresh_env, tmp_path):
    python, purelib, env = fresh_env
    where = _run([python, '-c', 'import mmreweight, mmreweight.weighting.mentornet as m, '
                  'mmreweight.testing; print(mmreweight.__file__)'], cwd=tmp_path, env=env)
    assert Path(where.strip().splitlines()[-1]).is_relative_to(purelib)
    installed = purelib / 'mmreweight'
    assert (installed / '.mim' / 'configs' / 'retinanet_focal.py').is_file()
    assert (installed / '.mim' / 'tools' / 'train.py').is_file()
    dist_info = next(purelib.glob('mmreweight-*.dist-info'))
    licenses = [p for p in dist_info.rglob('LICENSE*') if p.is_file()]
    assert licenses and 'Apache License' in licenses[0].read_text()


def test_mim_train_finds_the_installed_config(fresh_env, tmp_path):
    python, _, env = fresh_env
    work = tmp_path / 'work'
    # the smallest benchmark whose splits hold every class (as test_entrypoints.py)
    opts = tiny_options(1, batch_size=2)
    # config by bare name, from a folder without it: only the installed .mim/configs has it
    _run([python, '-m', 'mim', 'train', 'mmreweight', 'retinanet_focal.py', '--work-dir', work,
          '--cfg-options', *opts], cwd=tmp_path, env=env, timeout=180)
    assert (work / 'last_checkpoint').read_text().strip().endswith('iter_1.pth')
