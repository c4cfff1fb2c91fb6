"""check_disjoint: a clean subset that reaches training images by another path, or holds copies
of them under other names, is refused; a truly held-out one passes, saying how it was checked."""
import os
import shutil

import numpy as np
import pytest

from mmreweight.engine.meta_clean_split import check_disjoint


class Images:
    """The part of an mmengine dataset check_disjoint reads: each sample's ``img_path``."""

    def __init__(self, paths):
        self.paths = [str(p) for p in paths]

    def __len__(self):
        return len(self.paths)

    def get_data_info(self, i):
        return dict(img_path=self.paths[i], img_id=i)


@pytest.fixture
def images(tmp_path):
    """Five training and two held-out image files with distinct bytes, same size."""
    rng = np.random.default_rng(0)
    for split, n in (('train', 5), ('clean', 2)):
        (tmp_path / split).mkdir()
        for i in range(n):
            (tmp_path / split / f'{i}.png').write_bytes(rng.bytes(256))
    return tmp_path


def _train(root):
    return Images(sorted((root / 'train').glob('*.png')))


def test_held_out_images_pass_and_the_log_says_how(images):
    checked = check_disjoint(_train(images), Images(sorted((images / 'clean').glob('*.png'))))
    assert checked.clean_images == 2
    assert checked.how == 'by resolved path and by content (SHA-1 of same-size files)'


def test_a_symlinked_root_is_the_same_images(images):
    os.symlink(images / 'train', images / 'link')
    with pytest.raises(ValueError, match=r'overlaps the training set in 2 images'):
        check_disjoint(_train(images), Images([images / 'link' / '0.png',
                                               images / 'link' / '1.png']))


def test_relative_and_dotdot_paths_are_the_same_images(images, monkeypatch):
    monkeypatch.chdir(images / 'clean')
    clean = Images(['../train/3.png', str(images / 'clean' / '..' / 'train' / '4.png')])
    with pytest.raises(ValueError, match=r"overlaps the training set in 2 images \(e\.g\. "
                                         r"\['\.\./train/3\.png \(= .*train/3\.png\)'"):
        check_disjoint(_train(images), clean)


def test_a_renamed_copy_is_caught_by_content(images):
    shutil.copy(images / 'train' / '2.png', images / 'clean' / 'renamed.png')
    clean = Images([images / 'clean' / '0.png', images / 'clean' / 'renamed.png'])
    with pytest.raises(ValueError, match=r'holds 1 copies of training images under other names '
                                         r'\(e\.g\. .*renamed\.png is a copy of .*train/2\.png'):
        check_disjoint(_train(images), clean)


def test_datasets_without_files_compare_by_id():
    class Ids(Images):
        def get_data_info(self, i):
            return dict(img_id=self.paths[i])

    assert check_disjoint(Ids(['a', 'b']), Ids(['c'])).how == 'by image id or path'
    with pytest.raises(ValueError, match='overlaps the training set in 1 images'):
        check_disjoint(Ids(['a', 'b']), Ids(['b']))
