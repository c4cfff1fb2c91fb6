"""docs/bad_input.md is generated from the bad-input tests and must be regenerated with them."""
from pathlib import Path

from mmreweight.testing.tools import load_tool

REPO = Path(__file__).resolve().parents[2]


def _tool():
    return load_tool(REPO / 'tools' / 'bad_input_catalogue.py')


def test_catalogue_is_up_to_date():
    tool = _tool()
    assert (REPO / 'docs' / 'bad_input.md').read_text() == tool.catalogue(), (
        'docs/bad_input.md is out of date: run python tools/bad_input_catalogue.py')


def test_catalogue_lists_every_error_test_of_its_files():
    tool = _tool()
    text = tool.catalogue()
    for path in tool.TEST_FILES:
        source = (REPO / path).read_text()
        for name in [line.split('(')[0][len('def test_'):] for line in source.splitlines()
                     if line.startswith('def test_')]:
            body = source.split(f'def test_{name}(')[1].split('\ndef ')[0]
            if 'pytest.raises(' in body or 'pytest.warns(' in body:
                assert f'| {name.replace("_", " ")}' in text, (path, name)
