"""The project's package (``reweighting_study``) is imported from its folder, as its tools do, and
the repository root is on the path, as ``tools/train.py`` puts it, for the configs that load a
project module by ``custom_imports`` (``projects.reweighting_study.reweighting_study....``)."""
import os
import sys

_PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [_PROJECT, os.path.dirname(os.path.dirname(_PROJECT))]
