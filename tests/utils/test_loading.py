"""Wrapped JSON / torch loading: every failure names the file, what it should be and the fix;
the MentorNet and embedded-benchmark call sites go through it."""
import logging
import os
import re
import shutil
from pathlib import Path

import pytest
import torch
from mmengine.logging.history_buffer import HistoryBuffer

from mmreweight.utils.loading import load_json, load_torch_file

FIX = 'regenerate it'


@pytest.mark.parametrize('content, message', [
    (b'{"images": [1, 2', r'is not valid JSON \(line 1 col 17\): Expecting'),
    (b'', r'is empty \(0 bytes\)'),
    (b'\xff\xfe{}', r'is not UTF-8 text \(byte 0\)'),
])
def test_bad_json_names_the_file_and_the_fix(tmp_path, content, message):
    path = tmp_path / 'ann.json'
    path.write_bytes(content)
    with pytest.raises(ValueError, match=rf'^annotation file {path} {message}.*; {FIX}$'):
        load_json(str(path), 'annotation file', FIX)


def test_missing_json_names_the_file_and_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match=rf'annotation file .*nope.json does not exist; '
                       rf'{FIX}$'):
        load_json(str(tmp_path / 'nope.json'), 'annotation file', FIX)
    (tmp_path / 'ok.json').write_text('{"a": [1]}')
    assert load_json(str(tmp_path / 'ok.json')) == dict(a=[1])


def detector_checkpoint(path):
    """What mmengine writes: tensors plus a MessageHub state holding HistoryBuffer objects."""
    torch.save(dict(meta=dict(hub=HistoryBuffer([1.0, 2.0], [1, 1])),
                    state_dict=dict(w=torch.zeros(2))), path)
    return path


@pytest.mark.parametrize('damage, message', [
    ('empty', r'MentorNet file \S+ is empty \(0 bytes\)'),
    ('truncated', r'MentorNet file \S+ is truncated or corrupt \('),
    ('text', r'MentorNet file \S+ is truncated or corrupt \('),
    ('detector', r'\S+ is not a MentorNet file: it holds Python objects beyond tensors'),
])
def test_bad_torch_file_names_the_file_and_the_fix(tmp_path, damage, message):
    path = str(tmp_path / 'mentor.pth')
    torch.save(dict(format='x', w=torch.arange(1000.0)), path)
    if damage == 'empty':
        open(path, 'wb').close()
    elif damage == 'truncated':
        data = open(path, 'rb').read()
        open(path, 'wb').write(data[:len(data) // 2])
    elif damage == 'text':
        open(path, 'w').write('not a mentor\n')
    else:
        detector_checkpoint(path)
    with pytest.raises(ValueError, match=rf'^{message}.*; {FIX}$'):
        load_torch_file(path, 'MentorNet file', FIX)


@pytest.mark.parametrize('damage, message', [
    ('empty', r'MentorNet file \S+ is empty \(0 bytes\); use a file from '
              r'tools/train_mentornet_dd.py'),
    ('detector', r'is not a MentorNet file: it holds Python objects'),
    ('other', r'is not a MentorNet file \(expected format'),
])
def test_load_mentor_reports_what_the_file_is(tmp_path, damage, message):
    from mmreweight.weighting.mentornet.dd import load_mentor
    path = str(tmp_path / 'mentor.pth')
    if damage == 'empty':
        open(path, 'wb').close()
    elif damage == 'detector':
        detector_checkpoint(path)
    else:  # loads safely, but is not a mentor: the format check answers
        torch.save(dict(state_dict=dict(w=torch.zeros(2))), path)
    with pytest.raises(ValueError, match=message):
        load_mentor(path)


# --------------------------------------------------------------------------- benchmark cache
SMALL = dict(train_images=12, val_images=8, test_images=8, meta_images=8)


@pytest.fixture(scope='module')
def bench(tmp_path_factory):
    from mmreweight.datasets import make_benchmark
    return make_benchmark(str(tmp_path_factory.mktemp('bench') / 'set'), **SMALL)['root']


def test_truncated_benchmark_json_says_to_delete_the_folder(bench, tmp_path):
    from mmreweight.datasets import load_benchmark_info
    root = shutil.copytree(bench, tmp_path / 'set')
    info = root / 'benchmark.json'
    info.write_text(info.read_text()[:50])
    with pytest.raises(ValueError, match=rf'embedded benchmark info {info} is not valid JSON '
                       rf'\(line \d+ col \d+\).*; delete the folder {root} '):
        load_benchmark_info(str(root))


@pytest.mark.parametrize('damage, problem', [
    ('truncated info', r'benchmark.json is not valid JSON'),
    ('no info', r'benchmark.json is missing'),
    ('truncated annotations', r'train.json has 100 bytes, \d+ were written'),
    ('missing image', r'train holds 11 images, 12 were written'),
])
def test_half_written_benchmark_is_rebuilt_with_a_warning(bench, tmp_path, monkeypatch, damage,
                                                          problem):
    from mmreweight.datasets import benchmark
    root = shutil.copytree(bench, tmp_path / 'set')
    if damage == 'truncated info':
        (root / 'benchmark.json').write_text('{"version": ')
    elif damage == 'no info':
        (root / 'benchmark.json').unlink()
    elif damage == 'truncated annotations':
        ann = root / 'annotations' / 'train.json'
        ann.write_bytes(ann.read_bytes()[:100])
    else:
        os.remove(sorted((root / 'train').iterdir())[0])
    logged = []
    monkeypatch.setattr(benchmark, 'print_log', lambda msg, **kw: logged.append((msg, kw)))
    info = benchmark.ensure_benchmark(SMALL, str(root))
    assert len(logged) == 1 and logged[0][1]['level'] == logging.WARNING
    assert re.search(rf'^{root} is a half-written embedded benchmark \(.*{problem}.*\); '
                     'generating it again$', logged[0][0]), logged[0][0]
    assert info['root'] == str(root) and benchmark.incomplete_benchmark(str(root)) is None
    for part in ('benchmark.json', 'annotations/train.json'):
        assert (root / part).read_bytes() == (Path(bench) / part).read_bytes()
    assert sorted(os.listdir(root / 'train')) == sorted(os.listdir(Path(bench) / 'train'))
    assert sorted(os.listdir(tmp_path)) == ['set']  # no staging or trash folder left


def test_a_folder_holding_other_files_is_never_rebuilt(bench, tmp_path):
    from mmreweight.datasets import benchmark
    root = shutil.copytree(bench, tmp_path / 'set')
    (root / 'benchmark.json').unlink()
    (root / 'notes.txt').write_text('mine')
    assert benchmark.incomplete_benchmark(str(root)) is None
    with pytest.raises(FileExistsError, match='is not an embedded benchmark'):
        benchmark.ensure_benchmark(SMALL, str(root))
