"""The study grid: runs, their ids, their config overrides and their dependencies.

Pure Python: nothing here trains or imports torch, so the planning is unit-tested on its own.
A run is one (method, condition, source, seed); every run of a study shares one schedule
(:class:`StudySettings`), recorded in ``<study_dir>/study.json`` so that a resumed study cannot
silently mix schedules.
"""
import json
import os
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Set, Tuple

#: where this project keeps the variant and oracle configs, relative to the repository root
_VARIANT = 'projects/reweighting_study/configs/'
#: method -> its config, relative to the repository root: the product's configs/, or
#: this project's configs/ for the variants and oracles
METHOD_CONFIGS = {
    'focal': 'configs/retinanet_focal.py',
    'ghm': 'configs/retinanet_ghm.py',
    'ghm_paper': _VARIANT + 'retinanet_ghm_paper.py',
    'ghm_c': _VARIANT + 'retinanet_ghmc_l1.py',
    'ghm_wide_mu': _VARIANT + 'retinanet_ghm_wide_mu.py',
    'ghm_joint': _VARIANT + 'retinanet_ghm_joint.py',
    'ghm_per_level': _VARIANT + 'retinanet_ghm_per_level.py',
    'ghm_half': _VARIANT + 'retinanet_ghm_half.py',
    'ghm_double': _VARIANT + 'retinanet_ghm_double.py',
    'ghm_alpha10': _VARIANT + 'retinanet_ghm_alpha10.py',
    'ghm_alpha15': _VARIANT + 'retinanet_ghm_alpha15.py',
    'ghm_alpha35': _VARIANT + 'retinanet_ghm_alpha35.py',
    'ghm_warmup1000': _VARIANT + 'retinanet_ghm_warmup1000.py',
    'ghm_momentum95': _VARIANT + 'retinanet_ghm_momentum95.py',
    'ghm_l1': _VARIANT + 'retinanet_ghm_l1.py',
    'ghm_mu_track': _VARIANT + 'retinanet_ghm_mu_track.py',
    'ghm_box4': _VARIANT + 'retinanet_ghm_box4.py',
    'cb_focal': 'configs/retinanet_cb_focal.py',
    'l2rw': 'configs/retinanet_l2rw.py',
    'l2rw_ann': _VARIANT + 'retinanet_l2rw_annotation.py',
    'l2rw_head': _VARIANT + 'retinanet_l2rw_head.py',
    'l2rw_head_ema': _VARIANT + 'retinanet_l2rw_head_ema.py',
    'mwnet': 'configs/retinanet_mwnet.py',
    'mwnet_all': _VARIANT + 'retinanet_mwnet_all.py',
    'mwnet_no_decay': _VARIANT + 'retinanet_mwnet_no_decay.py',
    'mwnet_late': _VARIANT + 'retinanet_mwnet_late.py',
    'mentornet_pd': 'configs/retinanet_mentornet.py',
    'mentornet_pd_no_spcl': _VARIANT + 'retinanet_mentornet_no_spcl.py',
    'mentornet_pd_fg': _VARIANT + 'retinanet_mentornet_foreground.py',
    'mentornet_dd': 'configs/retinanet_mentornet_dd.py',
    # the same config; its mentor is fitted without the benchmark's noise (MENTOR_FIT_OPTIONS)
    'mentornet_dd_blind': 'configs/retinanet_mentornet_dd.py',
    'mentornet_dd_fg': _VARIANT + 'retinanet_mentornet_dd_foreground.py',
    'mentornet_dd_hard': _VARIANT + 'retinanet_mentornet_dd_hard.py',
    'mentornet_dd_mono': _VARIANT + 'retinanet_mentornet_dd_monotone.py',
    'mentornet_dd_mono_hard': _VARIANT + 'retinanet_mentornet_dd_monotone_hard.py',
    'label_issues': 'configs/retinanet_label_issues.py',
    'label_issues_retrain': 'configs/retinanet_label_issues_retrain.py',
    'label_issues_margin': _VARIANT + 'retinanet_label_issues_margin.py',
    'label_issues_relabel': _VARIANT + 'retinanet_label_issues_relabel.py',
    'label_issues_ignore': _VARIANT + 'retinanet_label_issues_ignore.py',
    'label_issues_neighbours_fpr10': _VARIANT + 'retinanet_label_issues_neighbours_fpr10.py',
    'label_issues_mixture': _VARIANT + 'retinanet_label_issues_mixture.py',
    'label_issues_clean_neighbours': _VARIANT + 'retinanet_label_issues_clean_neighbours.py',
    'label_issues_neighbours': _VARIANT + 'retinanet_label_issues_neighbours.py',
    'label_issues_relabel_sure': _VARIANT + 'retinanet_label_issues_relabel_sure.py',
    'noise_oracle': _VARIANT + 'retinanet_noise_oracle.py',
    'noise_oracle_burn_in': _VARIANT + 'retinanet_noise_oracle_burn_in.py',
    'noise_oracle_soft': _VARIANT + 'retinanet_noise_oracle_soft.py',
    'random_drop': _VARIANT + 'retinanet_random_drop.py',
    'random_drop_annotation': _VARIANT + 'retinanet_random_drop_annotation.py',
    'random_drop_cell': _VARIANT + 'retinanet_random_drop_cell.py',
}
METHODS = tuple(METHOD_CONFIGS)
#: the study's grid: every method but the variants below
VARIANTS = ('ghm_paper', 'ghm_c', 'ghm_wide_mu', 'ghm_joint', 'ghm_per_level', 'ghm_half',
            'ghm_double', 'ghm_alpha10', 'ghm_alpha15', 'ghm_alpha35',
            'ghm_warmup1000', 'ghm_momentum95', 'ghm_l1',
            'ghm_mu_track', 'ghm_box4',
            'l2rw_ann', 'l2rw_head', 'l2rw_head_ema', 'mwnet_all', 'mwnet_no_decay', 'mwnet_late',
            'mentornet_pd_no_spcl', 'mentornet_pd_fg',
            'mentornet_dd_fg', 'mentornet_dd_hard', 'mentornet_dd_mono', 'mentornet_dd_mono_hard',
            'mentornet_dd_blind', 'noise_oracle', 'noise_oracle_burn_in', 'noise_oracle_soft',
            'label_issues_margin', 'label_issues_relabel', 'label_issues_ignore',
            'label_issues_neighbours_fpr10', 'label_issues_mixture',
            'label_issues_clean_neighbours', 'label_issues_neighbours',
            'label_issues_relabel_sure', 'random_drop', 'random_drop_annotation',
            'random_drop_cell')
STUDY_METHODS = tuple(m for m in METHODS if m not in VARIANTS)
#: not methods but bounds the study reports next to them (they read the benchmark's noise flags):
#: never counted as beating focal
ORACLES = ('noise_oracle', 'noise_oracle_burn_in', 'noise_oracle_soft')
#: the methods of the converged schedule's noise cells (docs/study/converged): the README's
#: results table takes a noise cell from those records once each of these has every seed there
CONVERGED_METHODS = ('focal', 'label_issues', 'mentornet_dd_blind', 'l2rw', 'mwnet',
                     'noise_oracle')
#: the methods whose box loss is GHM-R (their GHM-R bins are profiled before and after training)
GHMR_METHODS = ('ghm', 'ghm_paper', 'ghm_wide_mu', 'ghm_joint', 'ghm_per_level', 'ghm_half',
                'ghm_double', 'ghm_alpha10', 'ghm_alpha15', 'ghm_alpha35', 'ghm_warmup1000',
                'ghm_momentum95', 'ghm_mu_track', 'ghm_box4')
#: condition -> the train-split corruption of the embedded benchmark
CONDITIONS = {
    'clean': dict(noise_type='none', noise_rate=0.0, imbalance_ratio=1.0),
    'uniform40': dict(noise_type='uniform', noise_rate=0.4, imbalance_ratio=1.0),
    'pairflip40': dict(noise_type='pairflip', noise_rate=0.4, imbalance_ratio=1.0),
    'lt50': dict(noise_type='none', noise_rate=0.0, imbalance_ratio=50.0),
    'lt100': dict(noise_type='none', noise_rate=0.0, imbalance_ratio=100.0),
}
SOURCES = ('mnist', 'fashion_mnist')
DEFAULT_NUM_SEEDS = 3
#: the methods with a data-driven mentor (MentorNet-DD), learned from a run of MENTOR_SOURCE_METHOD
MENTOR_DD_METHODS = ('mentornet_dd', 'mentornet_dd_fg', 'mentornet_dd_hard', 'mentornet_dd_mono',
                     'mentornet_dd_mono_hard', 'mentornet_dd_blind')
#: tools/train_mentornet_dd.py options of a method's mentor fit (default: the benchmark's noise
#: type and rate): the blind mentor is fitted on uniform noise at the rate the focal detector
#: estimates against the clean split
MENTOR_FIT_OPTIONS = {'mentornet_dd_blind': ('--noise-type', 'uniform', '--noise-rate', 'auto')}
#: MentorNet-DD's mentor is learned from this method's run of the same condition, source, seed
MENTOR_SOURCE_METHOD = 'focal'
#: clean and retrain: method -> the method whose run (same condition, source, seed) found the flags
FLAGS_SOURCE_METHODS = {'label_issues_retrain': 'label_issues_margin'}
FILTER_KEYS = ('method', 'condition', 'source', 'seed')
STUDY_FILE = 'study.json'
RESULT_FILE = 'result.json'


@dataclass(frozen=True)
class Run:
    """One cell of the grid."""
    method: str
    condition: str
    source: str
    seed: int

    def __post_init__(self) -> None:
        for name, value, known in (('method', self.method, METHODS),
                                   ('condition', self.condition, CONDITIONS),
                                   ('source', self.source, SOURCES)):
            if value not in known:
                raise ValueError(f'unknown {name} {value!r}; expected one of {", ".join(known)}')
        if int(self.seed) != self.seed or self.seed < 0:
            raise ValueError(f'seed must be a non-negative integer, got {self.seed!r}')

    @property
    def run_id(self) -> str:
        """Folder name, e.g. ``mnist-uniform40-l2rw-s0``."""
        return f'{self.source}-{self.condition}-{self.method}-s{self.seed}'

    @property
    def config(self) -> str:
        return METHOD_CONFIGS[self.method]

    def benchmark(self, overrides: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
        """The benchmark parameters of this run: source, seed and the condition's corruption.

        The study seed is both the benchmark's seed and the training seed, so the seed-to-seed
        spread covers data draws as well as initialisation and batch order.
        """
        bench = dict(source=self.source, seed=self.seed, **CONDITIONS[self.condition])
        bench.update(overrides or {})
        return bench

    @property
    def dependencies(self) -> Tuple['Run', ...]:
        """Runs whose outputs this one needs: MentorNet-DD needs a trained focal detector, a
        retrain the flags of its finder's run."""
        if self.method in MENTOR_DD_METHODS:
            return (Run(MENTOR_SOURCE_METHOD, self.condition, self.source, self.seed), )
        if self.method in FLAGS_SOURCE_METHODS:
            return (Run(FLAGS_SOURCE_METHODS[self.method], self.condition, self.source,
                        self.seed), )
        return ()

    @classmethod
    def from_id(cls, run_id: str) -> 'Run':
        source, condition, method, seed = run_id.rsplit('-', 3)
        if not seed.startswith('s'):
            raise ValueError(f'not a run id: {run_id!r}')
        return cls(method, condition, source, int(seed[1:]))


@dataclass
class StudySettings:
    """What every run of a study shares.

    Attributes:
        iters: training iterations per run.
        val_evals: validations per run (every ``iters // val_evals`` iterations); the best one
            (COCO mAP on val) picks the "best" checkpoint.
        benchmark_overrides: extra benchmark parameters for every run (e.g. smaller splits).
        diag_batches: training batches dumped by the diagnostics of each run (0: none).
        mentor_steps: optimiser steps of MentorNet-DD's mentor fit.
    """
    iters: int
    val_evals: int = 4
    benchmark_overrides: Dict[str, Any] = field(default_factory=dict)
    diag_batches: int = 4
    mentor_steps: int = 3000

    def __post_init__(self) -> None:
        if self.iters < 1:
            raise ValueError(f'iters must be >= 1, got {self.iters}')
        if self.val_evals < 1:
            raise ValueError(f'val_evals must be >= 1, got {self.val_evals}')

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


# ---------------------------------------------------------------------------------- the grid
def grid(methods: Sequence[str] = STUDY_METHODS, conditions: Sequence[str] = tuple(CONDITIONS),
         sources: Sequence[str] = SOURCES,
         seeds: Sequence[int] = tuple(range(DEFAULT_NUM_SEEDS))) -> List[Run]:
    """Every combination, seed-major: a partial study finishes whole seeds first."""
    return [Run(m, c, s, seed) for seed in seeds for s in sources for c in conditions
            for m in methods]


def parse_only(spec: str) -> Dict[str, Set[str]]:
    """``'method=focal,method=ghm,condition=clean'`` (or ``'method=focal|ghm,...'``) ->
    ``{'method': {'focal', 'ghm'}, 'condition': {'clean'}}``. Keys are ANDed, values ORed."""
    filters: Dict[str, Set[str]] = {}
    for item in filter(None, (part.strip() for part in spec.split(','))):
        key, sep, values = item.partition('=')
        key = key.strip()
        if not sep or key not in FILTER_KEYS:
            raise ValueError(f'bad --only item {item!r}: expected key=value with key in '
                             f'{", ".join(FILTER_KEYS)}')
        known = {'method': METHODS, 'condition': tuple(CONDITIONS), 'source': SOURCES}.get(key)
        for value in filter(None, (v.strip() for v in values.split('|'))):
            if known is not None and value not in known:
                raise ValueError(f'unknown {key} {value!r} in --only; expected one of '
                                 f'{", ".join(known)}')
            if key == 'seed' and not value.isdigit():
                raise ValueError(f'seed must be an integer in --only, got {value!r}')
            filters.setdefault(key, set()).add(value)
    if not filters:
        raise ValueError(f'empty --only filter {spec!r}')
    return filters


def matches(run: Run, filters: Mapping[str, Set[str]]) -> bool:
    return all(str(getattr(run, key)) in values for key, values in filters.items())


def select(runs: Iterable[Run], only: Sequence[str] = ()) -> List[Run]:
    """Runs matching any of the ``--only`` specs (all if none), dependencies added (even if
    outside the grid or the filters) and placed before the runs that need them."""
    runs = list(runs)
    if only:
        specs = [parse_only(s) for s in only]
        runs = [r for r in runs if any(matches(r, f) for f in specs)]
    return with_dependencies(runs)


def with_dependencies(runs: Iterable[Run]) -> List[Run]:
    """``runs`` with their dependencies, each once, every dependency before its dependants."""
    ordered: List[Run] = []
    seen: Set[Run] = set()

    def visit(run: Run) -> None:
        if run in seen:
            return
        seen.add(run)
        for dep in run.dependencies:
            visit(dep)
        ordered.append(run)

    for run in runs:
        visit(run)
    return ordered


# ---------------------------------------------------------------------------------- state on disk
def run_dir(study_dir: str, run: Run) -> str:
    return os.path.join(study_dir, run.run_id)


def result_path(study_dir: str, run: Run) -> str:
    return os.path.join(run_dir(study_dir, run), RESULT_FILE)


def is_done(study_dir: str, run: Run) -> bool:
    """A run is done when its result.json exists (it is written last, atomically)."""
    return os.path.isfile(result_path(study_dir, run))


def pending(study_dir: str, runs: Iterable[Run]) -> List[Run]:
    return [r for r in runs if not is_done(study_dir, r)]


def check_study_settings(study_dir: str, settings: StudySettings) -> None:
    """Record ``settings`` in a new study folder; refuse a folder made with other settings
    (results of two schedules must not be averaged together)."""
    path = os.path.join(study_dir, STUDY_FILE)
    wanted = settings.to_dict()
    if os.path.isfile(path):
        with open(path) as f:
            stored = json.load(f)['settings']
        differing = sorted(k for k in set(stored) | set(wanted) if stored.get(k) != wanted.get(k))
        if differing:
            details = ', '.join(f'{k}: {stored.get(k)!r} there, {wanted.get(k)!r} now'
                                for k in differing)
            raise ValueError(f'{study_dir} holds a study with other settings ({details}); '
                             'use another study folder or the same settings')
        return
    os.makedirs(study_dir, exist_ok=True)
    write_json_atomic(path, dict(settings=wanted))


def write_json_atomic(path: str, data: Any) -> None:
    """Write JSON to a temporary file and rename it into place (readers never see half)."""
    tmp = f'{path}.tmp{os.getpid()}'
    with open(tmp, 'w') as f:
        json.dump(data, f, indent=1)
    os.replace(tmp, path)


# ---------------------------------------------------------------------------------- cfg-options
def find_key_paths(node: Any, key: str, prefix: Tuple[str, ...] = ()) -> List[str]:
    """Dotted paths (list indices as numbers, root as '') of every dict in a config that holds
    ``key`` with a dict value, e.g. ``custom_hooks.0.clean_dataloader.dataset`` for
    ``'benchmark'``."""
    found = []
    if isinstance(node, Mapping):
        if isinstance(node.get(key), Mapping):
            found.append('.'.join(prefix))
        for k, v in node.items():
            found += find_key_paths(v, key, prefix + (str(k), ))
    elif isinstance(node, (list, tuple)):
        for i, v in enumerate(node):
            found += find_key_paths(v, key, prefix + (str(i), ))
    return found


def _dataloader_paths(cfg: Mapping) -> List[str]:
    paths = []

    def visit(node: Any, prefix: Tuple[str, ...]) -> None:
        if isinstance(node, Mapping):
            if 'num_workers' in node and 'dataset' in node:
                paths.append('.'.join(prefix))
            for k, v in node.items():
                visit(v, prefix + (str(k), ))
        elif isinstance(node, (list, tuple)):
            for i, v in enumerate(node):
                visit(v, prefix + (str(i), ))

    visit(cfg, ())
    return paths


def format_option(key: str, value: Any) -> str:
    """``key=value`` as mmengine's ``DictAction`` parses it back to ``value``."""
    if isinstance(value, (list, tuple)):
        text = '[' + ','.join(str(v) for v in value) + ']'
    elif isinstance(value, str):
        # DictAction turns 'true'/'false' (any case) into bools and 'None' into None
        if any(c in value for c in ',()[]"\'') or value.lower() in ('true', 'false') \
                or value == 'None':
            raise ValueError(f'{key}: {value!r} would not survive --cfg-options parsing')
        try:
            float(value)
        except ValueError:
            text = value
        else:
            raise ValueError(f'{key}: the string {value!r} would be parsed as a number')
    else:
        text = str(value)
    return f'{key}={text}'


def _join(prefix: str, key: str) -> str:
    return f'{prefix}.{key}' if prefix else key


def benchmark_options(cfg: Mapping, bench: Mapping[str, Any]) -> List[str]:
    """Set ``bench`` on every dataset of the config that has a ``benchmark`` (train, val, test,
    a meta hook's clean dataloader, ...), so that all of them describe the same benchmark."""
    paths = find_key_paths(cfg, 'benchmark')
    if not paths:
        raise ValueError('the config has no dataset with a `benchmark`')
    return [format_option(_join(_join(p, 'benchmark'), k), v) for p in paths
            for k, v in sorted(bench.items())]


def schedule_options(cfg: Mapping, iters: int, val_evals: int) -> List[str]:
    """A schedule of ``iters`` iterations: the config's step milestones and its custom hooks'
    ``begin`` iterations rescaled to it, warm-up kept (clamped to the run), ``val_evals``
    validations, regular checkpoints at the half and the end (two kept; MentorNet-DD's mentor
    reads them) and the best one by COCO mAP on val."""
    base_iters = int(cfg['train_cfg']['max_iters'])
    opts = [format_option('train_cfg.max_iters', iters),
            format_option('train_cfg.val_interval', max(iters // val_evals, 1))]
    schedulers = cfg.get('param_scheduler') or []
    if isinstance(schedulers, Mapping):
        schedulers = [schedulers]
        prefixes = ['param_scheduler']
    else:
        prefixes = [f'param_scheduler.{i}' for i in range(len(schedulers))]
    for prefix, sched in zip(prefixes, schedulers):
        if sched.get('by_epoch', True):
            continue
        end = sched.get('end')
        if end is not None and int(end) >= base_iters:  # spans the run: follows its length
            opts.append(format_option(f'{prefix}.end', iters))
        elif end is not None and int(end) > iters:  # a warm-up longer than the run
            opts.append(format_option(f'{prefix}.end', iters))
        if 'milestones' in sched:
            opts.append(format_option(f'{prefix}.milestones',
                                      [max(int(m * iters / base_iters), 1)
                                       for m in sched['milestones']]))
    # a hook that starts weighting part-way (MetaReweightHook's `begin`) starts at the same
    # fraction of the run, as the milestones do
    for i, hook in enumerate(cfg.get('custom_hooks') or []):
        if int(hook.get('begin', 0)) > 0:
            opts.append(format_option(f'custom_hooks.{i}.begin',
                                      int(hook['begin']) * iters // base_iters))
    opts += [format_option('default_hooks.checkpoint.interval', max(iters // 2, 1)),
             format_option('default_hooks.checkpoint.max_keep_ckpts', 2),
             format_option('default_hooks.checkpoint.save_best', 'coco/bbox_mAP'),
             format_option('default_hooks.checkpoint.rule', 'greater')]
    return opts


def worker_options(cfg: Mapping) -> List[str]:
    """No dataloader worker processes: one study job is one process on one core."""
    opts = []
    for path in _dataloader_paths(cfg):
        opts += [format_option(_join(path, 'num_workers'), 0),
                 format_option(_join(path, 'persistent_workers'), False)]
    return opts


def mentor_hook_index(cfg: Mapping) -> int:
    """Index in ``custom_hooks`` of the hook whose weighter takes a ``mentor_checkpoint``."""
    for i, hook in enumerate(cfg.get('custom_hooks') or []):
        if 'mentor_checkpoint' in (hook.get('weighter') or {}):
            return i
    raise ValueError('the config has no custom hook with weighter.mentor_checkpoint')


def flags_hook_index(cfg: Mapping) -> int:
    """Index in ``custom_hooks`` of the hook that takes ``flags_from`` (LabelIssueHook)."""
    for i, hook in enumerate(cfg.get('custom_hooks') or []):
        if 'flags_from' in hook:
            return i
    raise ValueError('the config has no custom hook with flags_from')


def run_cfg_options(run: Run, cfg: Mapping, settings: StudySettings,
                    mentor_checkpoint: Optional[str] = None,
                    flags_from: Optional[str] = None) -> List[str]:
    """Every ``--cfg-options`` item of a run (for tools/train.py, tools/test.py and
    tools/diagnose.py alike): its benchmark on every dataset, its seed, the study's schedule,
    no dataloader workers and, for MentorNet-DD, the mentor file, for a retrain the work dir of
    its finder's run."""
    opts = benchmark_options(cfg, run.benchmark(settings.benchmark_overrides))
    opts.append(format_option('randomness.seed', run.seed))
    opts += schedule_options(cfg, settings.iters, settings.val_evals)
    opts += worker_options(cfg)
    if run.method in MENTOR_DD_METHODS:
        if mentor_checkpoint is None:
            raise ValueError(f'{run.run_id} needs mentor_checkpoint')
        index = mentor_hook_index(cfg)
        opts.append(format_option(f'custom_hooks.{index}.weighter.mentor_checkpoint',
                                  os.path.abspath(mentor_checkpoint)))
    if run.method in FLAGS_SOURCE_METHODS:
        if flags_from is None:
            raise ValueError(f'{run.run_id} needs flags_from')
        opts.append(format_option(f'custom_hooks.{flags_hook_index(cfg)}.flags_from',
                                  os.path.abspath(flags_from)))
    return opts


__all__ = ['METHOD_CONFIGS', 'METHODS', 'STUDY_METHODS', 'VARIANTS', 'ORACLES', 'GHMR_METHODS',
           'MENTOR_DD_METHODS', 'MENTOR_FIT_OPTIONS', 'FLAGS_SOURCE_METHODS', 'CONDITIONS', 'SOURCES',
           'DEFAULT_NUM_SEEDS', 'Run',
           'StudySettings', 'grid', 'parse_only', 'matches', 'select', 'with_dependencies',
           'run_dir', 'result_path', 'is_done', 'pending', 'check_study_settings',
           'write_json_atomic', 'find_key_paths', 'format_option', 'benchmark_options',
           'schedule_options', 'worker_options', 'run_cfg_options']
