"""Study planning: the grid, run ids, --only filters, dependencies, cfg-options, resume."""
import json
from pathlib import Path

import pytest
from mmengine.config import Config

from reweighting_study import plan
from reweighting_study.execute import parse_cfg_options
from reweighting_study.plan import Run, StudySettings

REPO = Path(__file__).resolve().parents[3]
CONFIGS = REPO / 'configs'
VARIANT_CONFIGS = REPO / 'projects' / 'reweighting_study' / 'configs'


def test_grid_is_the_full_product_with_unique_ids():
    runs = plan.grid()
    assert len(runs) == len(plan.STUDY_METHODS) * 5 * 2 * 3 == 9 * 5 * 2 * 3
    assert len({r.run_id for r in runs}) == len(runs)
    assert runs[0].seed == 0 and runs[-1].seed == 2  # seed-major
    for run in runs:
        assert Run.from_id(run.run_id) == run


def test_run_id_and_benchmark():
    run = Run('l2rw', 'uniform40', 'fashion_mnist', 2)
    assert run.run_id == 'fashion_mnist-uniform40-l2rw-s2'
    assert run.config == 'configs/retinanet_l2rw.py'
    assert run.benchmark() == dict(source='fashion_mnist', seed=2, noise_type='uniform',
                                   noise_rate=0.4, imbalance_ratio=1.0)
    assert Run('focal', 'lt100', 'mnist', 0).benchmark(dict(train_images=16)) == dict(
        source='mnist', seed=0, noise_type='none', noise_rate=0.0, imbalance_ratio=100.0,
        train_images=16)
    assert Run('focal', 'pairflip40', 'mnist', 0).benchmark()['noise_type'] == 'pairflip'


@pytest.mark.parametrize('bad', [dict(method='sgd'), dict(condition='noisy'),
                                 dict(source='cifar'), dict(seed=-1)])
def test_bad_runs_are_refused(bad):
    args = dict(dict(method='focal', condition='clean', source='mnist', seed=0), **bad)
    with pytest.raises(ValueError):
        Run(**args)


def test_parse_only():
    assert plan.parse_only('method=focal,method=ghm,condition=clean') == dict(
        method={'focal', 'ghm'}, condition={'clean'})
    assert plan.parse_only('method=focal|l2rw, seed=1') == dict(
        method={'focal', 'l2rw'}, seed={'1'})
    for bad in ('methods=focal', 'method=sgd', 'seed=x', 'method', ''):
        with pytest.raises(ValueError):
            plan.parse_only(bad)


def test_select_unions_specs_and_adds_dependencies_first():
    runs = plan.grid(seeds=[0])
    picked = plan.select(runs, ['method=ghm,condition=clean,source=mnist',
                                'method=mentornet_dd,condition=lt50,source=mnist'])
    assert [r.run_id for r in picked] == ['mnist-clean-ghm-s0', 'mnist-lt50-focal-s0',
                                          'mnist-lt50-mentornet_dd-s0']
    assert plan.select(runs) == plan.with_dependencies(runs)
    # a dependency already in the list is not repeated and comes first
    both = plan.with_dependencies([Run('mentornet_dd', 'clean', 'mnist', 0),
                                   Run('focal', 'clean', 'mnist', 0)])
    assert [r.method for r in both] == ['focal', 'mentornet_dd']
    assert Run('mentornet_dd_fg', 'clean', 'mnist', 1).dependencies == (
        Run('focal', 'clean', 'mnist', 1), )
    assert Run('label_issues_retrain', 'pairflip40', 'fashion_mnist', 2).dependencies == (
        Run('label_issues_margin', 'pairflip40', 'fashion_mnist', 2), )


def test_pilot_selection():
    runs = plan.select(plan.grid(sources=['mnist'], seeds=[0]), [
        'method=focal|ghm|cb_focal|l2rw|mwnet|mentornet_pd,condition=clean|uniform40',
        'method=focal|cb_focal,condition=lt50'])
    assert len(runs) == 14


def test_format_option_round_trips_through_dict_action():
    items = dict(a=0.4, b='none', c='uniform', d=[450, 540], e=False, f=50.0, g='coco/bbox_mAP')
    parsed = parse_cfg_options([plan.format_option(k, v) for k, v in items.items()])
    assert parsed == items
    for bad in ('a,b', 'True', 'None', '12'):
        with pytest.raises(ValueError):
            plan.format_option('k', bad)


def _effective(run, settings, mentor=None, flags_from=None):
    cfg = Config.fromfile(str(REPO / run.config))
    options = plan.run_cfg_options(run, cfg.to_dict(), settings, mentor, flags_from)
    cfg.merge_from_dict(parse_cfg_options(options))
    return cfg


@pytest.mark.parametrize('method', plan.METHODS)
def test_cfg_options_set_one_benchmark_everywhere(method, tmp_path):
    run = Run(method, 'pairflip40', 'fashion_mnist', 1)
    settings = StudySettings(iters=600, benchmark_overrides=dict(train_images=16))
    cfg = _effective(run, settings, tmp_path / 'mentor.pth', tmp_path / 'finder')
    paths = plan.find_key_paths(cfg.to_dict(), 'benchmark')
    assert {'train_dataloader.dataset', 'val_dataloader.dataset',
            'test_dataloader.dataset'} <= set(paths)
    if method in ('l2rw', 'l2rw_ann', 'l2rw_head', 'l2rw_head_ema', 'mwnet',
                  'mwnet_all', 'mwnet_no_decay', 'mwnet_late'):
        assert 'custom_hooks.0.clean_dataloader.dataset' in paths
    for path in paths:
        node = cfg
        for part in filter(None, path.split('.')):
            node = node[int(part)] if part.isdigit() else node[part]
        assert dict(node['benchmark']) == run.benchmark(settings.benchmark_overrides), path
    assert cfg.randomness.seed == 1
    for loader in ['train_dataloader', 'val_dataloader', 'test_dataloader']:
        assert cfg[loader].num_workers == 0 and cfg[loader].persistent_workers is False
    for hook in cfg.get('custom_hooks', []):
        if 'clean_dataloader' in hook:
            assert hook.clean_dataloader.num_workers == 0
    if method in plan.MENTOR_DD_METHODS:
        assert cfg.custom_hooks[0].weighter.mentor_checkpoint == str(tmp_path / 'mentor.pth')
    if method in plan.FLAGS_SOURCE_METHODS:
        assert cfg.custom_hooks[0].flags_from == str(tmp_path / 'finder')


def test_cfg_options_schedule():
    cfg = _effective(Run('focal', 'clean', 'mnist', 0), StudySettings(iters=600, val_evals=4))
    assert cfg.train_cfg.max_iters == 600 and cfg.train_cfg.val_interval == 150
    warmup, steps = cfg.param_scheduler
    assert warmup.end == 100  # warm-up kept
    assert steps.end == 600 and steps.milestones == [450, 540]  # 0.75 and 0.9 of the run
    ckpt = cfg.default_hooks.checkpoint
    assert (ckpt.interval, ckpt.max_keep_ckpts, ckpt.save_best, ckpt.rule) == (
        300, 2, 'coco/bbox_mAP', 'greater')
    tiny = _effective(Run('focal', 'clean', 'mnist', 0), StudySettings(iters=2, val_evals=4))
    assert tiny.param_scheduler[0].end == 2  # a warm-up longer than the run is clamped
    assert tiny.train_cfg.val_interval == 1 and tiny.default_hooks.checkpoint.interval == 1


def test_cfg_options_rescale_a_hooks_begin():
    base = Config.fromfile(str(VARIANT_CONFIGS / 'retinanet_mwnet_late.py'))
    assert base.custom_hooks[0].begin * 2 == base.train_cfg.max_iters
    cfg = _effective(Run('mwnet_late', 'uniform40', 'mnist', 0), StudySettings(iters=3000))
    assert cfg.custom_hooks[0].begin == 1500  # the same half of the run
    mwnet = plan.schedule_options(Config.fromfile(str(CONFIGS / 'retinanet_mwnet.py')).to_dict(),
                                  3000, 4)
    assert not any('begin' in opt for opt in mwnet)  # a hook from iteration 0: untouched


def test_mentornet_dd_needs_its_mentor():
    cfg = Config.fromfile(str(CONFIGS / 'retinanet_mentornet_dd.py')).to_dict()
    with pytest.raises(ValueError, match='mentor'):
        plan.run_cfg_options(Run('mentornet_dd', 'clean', 'mnist', 0), cfg, StudySettings(10))


def test_a_retrain_needs_its_finders_flags():
    cfg = Config.fromfile(str(CONFIGS / 'retinanet_label_issues_retrain.py')).to_dict()
    with pytest.raises(ValueError, match='flags_from'):
        plan.run_cfg_options(Run('label_issues_retrain', 'uniform40', 'mnist', 0), cfg,
                             StudySettings(10))


def test_resume_skips_runs_with_a_result(tmp_path):
    runs = plan.grid(methods=['focal', 'ghm'], conditions=['clean'], sources=['mnist'],
                     seeds=[0])
    assert plan.pending(str(tmp_path), runs) == runs
    done = Path(plan.result_path(str(tmp_path), runs[0]))
    done.parent.mkdir(parents=True)
    done.write_text('{}')
    assert plan.is_done(str(tmp_path), runs[0])
    assert plan.pending(str(tmp_path), runs) == runs[1:]


def test_study_settings_are_recorded_and_checked(tmp_path):
    settings = StudySettings(iters=600)
    plan.check_study_settings(str(tmp_path), settings)
    stored = json.loads((tmp_path / plan.STUDY_FILE).read_text())['settings']
    assert stored['iters'] == 600
    plan.check_study_settings(str(tmp_path), StudySettings(iters=600))  # same: fine
    with pytest.raises(ValueError, match='iters'):
        plan.check_study_settings(str(tmp_path), StudySettings(iters=1000))
    with pytest.raises(ValueError):
        StudySettings(iters=0)


def test_ghm_wide_mu_differs_from_ghm_paper_only_in_ghmr_mu():
    paper, wide = (Config.fromfile(str(REPO / plan.METHOD_CONFIGS[m])).to_dict()
                   for m in ('ghm_paper', 'ghm_wide_mu'))
    assert (paper['model']['bbox_head']['loss_bbox']['mu'],
            wide['model']['bbox_head']['loss_bbox']['mu']) == (0.02, 0.2)
    wide['model']['bbox_head']['loss_bbox']['mu'] = 0.02
    assert wide == paper


def test_ghm_paper_is_the_papers_recipe_and_ghm_its_warmed_up_version():
    """ghm_paper builds exactly the losses of mmdet's configs/ghm (from the first iteration),
    called level by level; ghm_per_level differs from it in the warm-up, mu='auto' and GHM-R's
    loss weight only, ghm_joint from ghm_per_level in the one call over all levels only, ghm_box4
    from ghm_joint in GHM-C's alpha only, and ghm from ghm_box4 in GHM-R's loss weight only
    (mmdet's 10, as ghm_paper's)."""
    # `ghm` walks down the chain: ghm_box4, then ghm_joint, then ghm_per_level
    paper, configured, ghm, ghm_joint, ghm_per_level = (
        Config.fromfile(str(REPO / plan.METHOD_CONFIGS[m])).to_dict()
        for m in ('ghm_paper', 'ghm', 'ghm_box4', 'ghm_joint', 'ghm_per_level'))
    assert (configured['model']['bbox_head']['loss_bbox']['loss_weight'],
            ghm['model']['bbox_head']['loss_bbox']['loss_weight'],
            paper['model']['bbox_head']['loss_bbox']['loss_weight']) == (10.0, 4.0, 10.0)
    configured['model']['bbox_head']['loss_bbox']['loss_weight'] = 4.0
    assert configured == ghm
    assert (ghm['model']['bbox_head']['loss_cls']['alpha'],
            ghm_joint['model']['bbox_head']['loss_cls']['alpha']) == (0.25, None)
    ghm['model']['bbox_head']['loss_cls']['alpha'] = None
    assert ghm == ghm_joint
    ghm = ghm_joint
    assert (ghm['model']['bbox_head']['type'], ghm_per_level['model']['bbox_head']['type'],
            paper['model']['bbox_head']['type']) == ('JointLevelRetinaHead',
                                                     'LevelAwareRetinaHead',
                                                     'LevelAwareRetinaHead')
    for loss in ('loss_cls', 'loss_bbox'):
        assert (ghm['model']['bbox_head'][loss]['num_levels'],
                ghm_per_level['model']['bbox_head'][loss]['num_levels']) == (1, 5)
        ghm['model']['bbox_head'][loss]['num_levels'] = 5
    ghm['model']['bbox_head']['type'] = 'LevelAwareRetinaHead'
    assert ghm == ghm_per_level
    ghm = ghm_per_level
    cls, box = paper['model']['bbox_head']['loss_cls'], paper['model']['bbox_head']['loss_bbox']
    assert (cls['bins'], cls['momentum'], cls['loss_weight'], cls['paper_exact']) == \
        (30, 0.75, 1.0, True)
    assert (box['mu'], box['bins'], box['momentum'], box['loss_weight'], box['paper_exact']) == \
        (0.02, 10, 0.7, 10.0, True)
    assert ghm['model']['bbox_head']['loss_bbox']['mu'] == 'auto'
    for loss in ('loss_cls', 'loss_bbox'):
        for key in ('paper_exact', 'mu', 'loss_weight', 'mu_calibration_iters', 'warmup_iters',
                    'num_levels'):  # the paper's GHM-R: the default, 5
            paper['model']['bbox_head'][loss].pop(key, None)
            ghm['model']['bbox_head'][loss].pop(key, None)
    assert paper == ghm


@pytest.mark.parametrize('variant,scale', [('ghm_half', 0.5), ('ghm_double', 2.0)])
def test_ghm_scale_variants_differ_from_ghm_joint_in_the_loss_weights_only(variant, scale):
    ghm, scaled = (Config.fromfile(str(REPO / plan.METHOD_CONFIGS[m])).to_dict()
                   for m in ('ghm_joint', variant))
    for loss in ('loss_cls', 'loss_bbox'):
        weight = ghm['model']['bbox_head'][loss]['loss_weight']
        assert scaled['model']['bbox_head'][loss]['loss_weight'] == scale * weight
        scaled['model']['bbox_head'][loss]['loss_weight'] = weight
    assert scaled == ghm


def test_noise_oracle_is_focal_plus_the_oracle_weighter():
    assert 'noise_oracle' in plan.VARIANTS and 'noise_oracle' in plan.ORACLES
    assert 'noise_oracle' not in plan.STUDY_METHODS
    focal, oracle = (Config.fromfile(str(REPO / plan.METHOD_CONFIGS[m])).to_dict()
                     for m in ('focal', 'noise_oracle'))
    (hook, ) = oracle.pop('custom_hooks')
    assert hook['weighter']['type'] == 'mmreweight.NoiseOracleWeighter'
    assert oracle['model']['bbox_head'].pop('type') == 'mmreweight.ReweightRetinaHead'
    assert focal['model']['bbox_head'].pop('type') == 'RetinaHead'
    focal.pop('custom_hooks', None)
    assert oracle == focal


@pytest.mark.parametrize('method, options', [
    ('noise_oracle_burn_in', dict(burn_in=0.18)),
    ('noise_oracle_soft', dict(burn_in=0.18, noisy_weight=0.25)),
])
def test_noise_oracle_variants_differ_only_in_their_options(method, options):
    assert method in plan.ORACLES and method in plan.VARIANTS
    plain, variant = (Config.fromfile(str(REPO / plan.METHOD_CONFIGS[m])).to_dict()
                      for m in ('noise_oracle', method))
    mentor = Config.fromfile(str(REPO / plan.METHOD_CONFIGS['mentornet_dd_fg']))
    weighter = variant['custom_hooks'][0]['weighter']
    assert {k: weighter.pop(k) for k in options} == options
    assert options['burn_in'] == mentor.custom_hooks[0]['weighter']['burn_in']  # MentorNet's
    assert variant == plain


@pytest.mark.parametrize('method, options', [
    ('mentornet_dd_hard', dict(threshold=0.5)), ('mentornet_dd_mono', dict(monotone=True)),
    ('mentornet_dd_mono_hard', dict(monotone=True, threshold=0.5))])
def test_mentornet_dd_variants_are_dd_foreground_with_their_options(method, options):
    assert method in plan.MENTOR_DD_METHODS and method in plan.VARIANTS
    plain, variant = (Config.fromfile(str(REPO / plan.METHOD_CONFIGS[m])).to_dict()
                      for m in ('mentornet_dd_fg', method))
    weighter = variant['custom_hooks'][0]['weighter']
    assert {k: weighter.pop(k) for k in options} == options
    assert variant == plain
    run = Run(method, 'uniform40', 'mnist', 1)
    assert run.dependencies == (Run('focal', 'uniform40', 'mnist', 1), )  # its mentor's source


def test_converged_methods_are_the_grid_the_converged_note_runs():
    """The README takes a converged cell once these methods have every seed: they must be the
    methods the converged study's reproduce command plans."""
    note = (REPO / 'docs' / 'study' / 'converged' / 'note.md').read_text()
    first = note[note.index('tools/study.py'):]
    methods = first[first.index('--methods') + len('--methods'):first.index('--conditions')]
    assert tuple(methods.replace('\\', ' ').split()) == plan.CONVERGED_METHODS
