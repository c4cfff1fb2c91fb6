"""Package layering: ``mmreweight.models`` builds on ``mmreweight.weighting``, never the reverse.

Weighters see the head only through :class:`~mmreweight.weighting.base.AnchorLossContext` and the
layout helpers of :mod:`mmreweight.weighting.levels`, so every import in ``weighting`` is at
module level (a function-level import of an mmreweight module would be the sign of a cycle being
dodged) and none of them reaches ``mmreweight.models``.
"""
import ast
from pathlib import Path
from typing import Iterator, Tuple

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / 'mmreweight'
WEIGHTING = PACKAGE / 'weighting'
FORBIDDEN = 'mmreweight.models'


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix('').parts)
    return '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)


def _imported(node: ast.AST, package: str) -> Iterator[str]:
    """Absolute names an import statement in a module of ``package`` refers to."""
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom):
        if node.level:
            base = package.split('.')
            base = base[:len(base) - node.level + 1]
            module = '.'.join(base + ([node.module] if node.module else []))
        else:
            module = node.module or ''
        yield module
        # ``from mmreweight import models`` names the subpackage in the alias
        yield from (f'{module}.{alias.name}' for alias in node.names)


def import_problems(source: str, module: str, is_package: bool = False) -> Iterator[Tuple[int, str]]:
    """``(line, what)`` for every import of ``mmreweight.models`` and every function-level
    import of an mmreweight module in the module ``module`` whose text is ``source``."""
    package = module if is_package else module.rpartition('.')[0]
    tree = ast.parse(source)
    top_level = {id(n) for n in tree.body}
    for node in ast.walk(tree):
        if not isinstance(node, (ast.Import, ast.ImportFrom)):
            continue
        names = list(_imported(node, package))
        if any(n == FORBIDDEN or n.startswith(FORBIDDEN + '.') for n in names):
            yield node.lineno, f'imports {FORBIDDEN}'
        elif id(node) not in top_level and any(n.split('.')[0] == 'mmreweight' for n in names):
            yield node.lineno, f'imports {names[0]} inside a function or class'


def test_weighting_imports_neither_models_nor_lazily():
    problems = []
    for path in sorted(WEIGHTING.rglob('*.py')):
        for line, what in import_problems(path.read_text(), _module_name(path),
                                          path.name == '__init__.py'):
            problems.append(f'{path.relative_to(PACKAGE.parent)}:{line}: {what}')
    assert problems == []


@pytest.mark.parametrize('source, module, found', [
    ('from mmreweight.models.reweight_retina_head import x\n', 'mmreweight.weighting.a', 1),
    ('import mmreweight.models\n', 'mmreweight.weighting.a', 1),
    ('from mmreweight import models\n', 'mmreweight.weighting.a', 1),
    ('from ..models import x\n', 'mmreweight.weighting.a', 1),
    ('from ...models import x\n', 'mmreweight.weighting.mentornet.a', 1),
    ('def f():\n    from mmreweight.losses import y\n', 'mmreweight.weighting.a', 1),
    ('def f():\n    from .base import y\n', 'mmreweight.weighting.a', 1),
    ('def f():\n    from torch import nn\n', 'mmreweight.weighting.a', 0),
    ('from mmreweight.losses import y\nfrom .levels import z\n', 'mmreweight.weighting.a', 0),
    ('from ..losses import x\n', 'mmreweight.weighting.a', 0),
])
def test_the_scan_sees_offending_imports(source, module, found):
    assert len(list(import_problems(source, module))) == found


def test_the_scan_reads_the_package():
    names = {_module_name(p) for p in WEIGHTING.rglob('*.py')}
    assert {'mmreweight.weighting', 'mmreweight.weighting.alignment',
            'mmreweight.weighting.mentornet.weighter'} <= names
