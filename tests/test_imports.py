"""``import mmreweight`` stays light: plotting is an optional extra, loaded only by the tools and
functions that draw (mmdet itself may import matplotlib; mmreweight's own modules must not)."""
import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / 'mmreweight'
#: the one module that draws, imported lazily by its callers
PLOTTING = PACKAGE / 'analysis' / 'plots.py'


def _module_level_imports(path: Path):
    """Top-level module names imported outside any function or class body."""
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            yield from (alias.name.split('.')[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module.split('.')[0]


def test_no_module_but_plots_imports_matplotlib_at_import_time():
    offenders = [str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob('*.py')
                 if p != PLOTTING and 'matplotlib' in set(_module_level_imports(p))]
    assert offenders == []
    assert 'matplotlib' in set(_module_level_imports(PLOTTING))  # the scan sees real imports


def test_import_mmreweight_loads_neither_plots_nor_the_study():
    # the analysis modules a registered hook needs (LabelIssueHook's finder) may load; the one
    # that draws may not
    code = ('import sys, mmreweight; '
            'print(sorted(m for m in sys.modules if m.startswith(("mmreweight.analysis.plots", '
            '"reweighting_study"))))')
    out = subprocess.run([sys.executable, '-c', code], cwd=PACKAGE.parent, capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == '[]'
