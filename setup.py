"""Build hook: ship configs/ and tools/ inside the package as ``mmreweight/.mim``.

``mim train mmreweight <config>`` locates the installed package through pkg_resources and runs
``<pkg>/.mim/tools/train.py``, searching ``<pkg>/.mim/configs`` for configs given by bare name; mmdet's
own setup.py does the same. The copies are made in the build folder only, never in the source tree.
"""
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


class BuildPyWithMim(build_py):

    def run(self):
        super().run()
        mim_dir = Path(self.build_lib) / 'mmreweight' / '.mim'
        for name in ('configs', 'tools'):
            target = mim_dir / name
            if target.exists():
                shutil.rmtree(target)
            shutil.copytree(ROOT / name, target,
                            ignore=shutil.ignore_patterns('__pycache__', '*.pyc'))


setup(cmdclass={'build_py': BuildPyWithMim})
