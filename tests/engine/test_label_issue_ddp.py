"""Under DDP each rank of LabelIssueHook scores its shard of the training set and the gathered
scores are the single process's: two gloo ranks against one process, same weights."""
import json
import os
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from mmreweight.testing.distributed import free_port, gloo_process_group

REPO = Path(__file__).resolve().parents[2]
WORLD = 2
TINY = dict(train_images=10, val_images=8, test_images=8, meta_images=8, noise_type='uniform',
            noise_rate=0.4)

pytestmark = pytest.mark.slow


def _scores(out_path=None):
    """Every training annotation's score with a seeded, untrained detector (this process's
    shard when a process group is up), gathered as LabelIssueHook gathers them."""
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from mmengine.runner import Runner
    from mmreweight.analysis import label_issues as li
    from mmreweight.analysis.diagnostics import AnchorDiagnostics
    from mmreweight.engine.label_issue_hook import _gathered
    cfg = Config.fromfile(str(REPO / 'configs' / 'retinanet_focal.py'))
    cfg.train_dataloader.dataset.benchmark.update(TINY)
    cfg.train_dataloader.update(batch_size=3, num_workers=0, persistent_workers=False)
    diag = AnchorDiagnostics(cfg, 'init', seed=0, with_weighter=False)
    model = diag.model.eval()
    with DefaultScope.overwrite_default_scope('mmreweight'), torch.no_grad():
        loader = Runner.build_dataloader(li.sequential_loader_cfg(cfg.train_dataloader), seed=0)
        local = li.score_dataset(model, loader, li.load_coco(loader.dataset.ann_file))
        merged = _gathered(local)
    result = dict(local=len(local), scores={str(k): v['score'] for k, v in merged.items()})
    if out_path is not None:
        Path(out_path).write_text(json.dumps(result))
    return result


def _worker(rank, port, out_dir):
    with gloo_process_group(rank, WORLD, port):
        _scores(os.path.join(out_dir, f'rank{rank}.json'))


def test_ranks_score_their_shards_and_gather_the_single_process_scores(tmp_path, monkeypatch):
    monkeypatch.setenv('MMREWEIGHT_DATA_ROOT', str(tmp_path / 'data'))
    single = _scores()  # also builds the benchmark the ranks read
    mp.spawn(_worker, args=(free_port(), str(tmp_path)), nprocs=WORLD, join=True)
    ranks = [json.loads((tmp_path / f'rank{r}.json').read_text()) for r in range(WORLD)]
    for rank in ranks:
        assert rank['local'] < single['local']  # a shard each
        assert rank['scores'].keys() == single['scores'].keys()
        for ann_id, score in single['scores'].items():
            assert rank['scores'][ann_id] == pytest.approx(score, abs=1e-5)
