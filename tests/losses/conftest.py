import pytest

from loss_testing import make_cls_batch


@pytest.fixture
def cls_batch():
    return make_cls_batch()
