"""The repository's command-line tools as modules, so tests can call their ``main()`` in-process
(``tools/`` holds scripts, not a package)."""
import importlib.util
from pathlib import Path
from types import ModuleType


def load_tool(path: Path) -> ModuleType:
    """Execute the script at ``path`` as a fresh module named after its file and return it."""
    spec = importlib.util.spec_from_file_location(Path(path).stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
