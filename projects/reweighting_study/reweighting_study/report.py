"""The study's report: mean ± std over seeds of each run's result.json, which methods beat focal
loss clearly, the measured cost, and figures from the results and the diagnostics dumps."""
import glob
import json
import math
import os
import statistics
from collections import defaultdict
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .plan import (CONDITIONS, CONVERGED_METHODS, DEFAULT_NUM_SEEDS, GHMR_METHODS,
                   MENTOR_DD_METHODS, METHODS, ORACLES, SOURCES, STUDY_FILE, STUDY_METHODS)
from .records import log_digest, logged_scalars, run_machine

METRICS = ('mAP', 'AP50', 'rare_AP')
CHECKPOINTS = ('best', 'last')
#: conditions whose rare-class AP is reported (balanced sets have no rare classes)
LONG_TAIL = tuple(c for c, spec in CONDITIONS.items() if spec['imbalance_ratio'] > 1)
NOISY = tuple(c for c, spec in CONDITIONS.items() if spec['noise_type'] != 'none')
#: "clearly better": mean difference above this many seed-to-seed standard deviations
MARGIN_STDS = 2.0
Key = Tuple[str, str, str]  # source, condition, method


def load_results(study_dir: str) -> List[Dict[str, Any]]:
    results = []
    for path in sorted(glob.glob(os.path.join(study_dir, '*', 'result.json'))):
        with open(path) as f:
            result = json.load(f)
        result['_dir'] = os.path.dirname(path)
        results.append(result)
    return results


def load_settings(study_dir: str) -> Dict[str, Any]:
    path = os.path.join(study_dir, STUDY_FILE)
    if not os.path.isfile(path):
        return {}
    with open(path) as f:
        return json.load(f)['settings']


def mean_std(values: Sequence[float]) -> Tuple[float, Optional[float]]:
    """Mean and sample standard deviation (None with fewer than two values); NaNs dropped."""
    values = [v for v in values if v is not None and not math.isnan(v)]
    if not values:
        return float('nan'), None
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None


def aggregate(results: Sequence[Dict[str, Any]]) -> Dict[Key, Dict[str, Any]]:
    """(source, condition, method) -> seeds and (mean, std) of each checkpoint's metrics."""
    groups: Dict[Key, List[Dict[str, Any]]] = defaultdict(list)
    for r in results:
        groups[(r['source'], r['condition'], r['method'])].append(r)
    table = {}
    for key, runs in groups.items():
        cell: Dict[str, Any] = dict(seeds=sorted(r['seed'] for r in runs), runs=runs)
        for ckpt in CHECKPOINTS:
            cell[ckpt] = {m: mean_std([r[ckpt][m] for r in runs]) for m in METRICS}
        table[key] = cell
    return table


def _order(values, known) -> List[str]:
    return [v for v in known if v in values] + sorted(v for v in values if v not in known)


def fmt(stat: Tuple[float, Optional[float]]) -> str:
    mean, std = stat
    if math.isnan(mean):
        return '–'
    return f'{mean:.3f}' if std is None else f'{mean:.3f} ± {std:.3f}'


def results_table(table: Dict[Key, Dict[str, Any]], source: str) -> str:
    """One markdown table per source: a row per condition and method."""
    keys = [k for k in table if k[0] == source]
    conditions = _order({k[1] for k in keys}, CONDITIONS)
    methods = _order({k[2] for k in keys}, METHODS)
    show_rare = any(c in LONG_TAIL for c in conditions)
    head = ['condition', 'method', 'seeds', 'mAP (best)', 'mAP (last)', 'AP50 (best)',
            'AP50 (last)'] + (['rare-3 AP (best)', 'rare-3 AP (last)'] if show_rare else [])
    lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    for condition in conditions:
        for method in methods:
            cell = table.get((source, condition, method))
            if cell is None:
                continue
            row = [condition, method, str(len(cell['seeds']))]
            for metric in ('mAP', 'AP50'):
                row += [fmt(cell[ckpt][metric]) for ckpt in CHECKPOINTS]
            if show_rare:
                row += ([fmt(cell[ckpt]['rare_AP']) for ckpt in CHECKPOINTS]
                        if condition in LONG_TAIL else ['–', '–'])
            lines.append('| ' + ' | '.join(row) + ' |')
    return '\n'.join(lines)


def compare_to_focal(table: Dict[Key, Dict[str, Any]], metric: str = 'mAP',
                     ckpt: str = 'best', baseline: str = 'focal'
                     ) -> Dict[Tuple[str, str], List[Dict[str, Any]]]:
    """Per (source, condition): each method's mean difference to ``baseline`` and whether it is
    beyond ``MARGIN_STDS`` seed-to-seed standard deviations (the larger of the two methods'
    stds), and ``machines``, those the two methods' runs come from (:func:`run_machine`). With
    one seed there is no std and no verdict."""
    out: Dict[Tuple[str, str], List[Dict[str, Any]]] = {}
    for (source, condition, method), cell in table.items():
        base = table.get((source, condition, baseline))
        if method == baseline or base is None:
            continue
        (m, s), (mb, sb) = cell[ckpt][metric], base[ckpt][metric]
        if math.isnan(m) or math.isnan(mb):
            continue
        diff = m - mb
        if s is None or sb is None:
            verdict, threshold = 'no verdict (1 seed)', None
        else:
            threshold = MARGIN_STDS * max(s, sb)
            verdict = ('beats focal' if diff > threshold else
                       'worse than focal' if diff < -threshold else 'within noise')
        machines = sorted({run_machine(r) for r in (*cell['runs'], *base['runs'])})
        out.setdefault((source, condition), []).append(
            dict(method=method, diff=diff, threshold=threshold, verdict=verdict,
                 machines=machines))
    for rows in out.values():
        rows.sort(key=lambda r: -r['diff'])
    return out


def _named(method: str) -> str:
    """The method's name, marked when it is an oracle (a bound, not a contender)."""
    return f'{method} (oracle)' if method in ORACLES else method


def comparison_text(comparisons, metric: str, ckpt: str) -> str:
    lines = []
    for (source, condition) in sorted(comparisons, key=lambda k: (
            _order([k[0]], SOURCES), list(CONDITIONS).index(k[1]) if k[1] in CONDITIONS else 99)):
        rows = comparisons[(source, condition)]
        winners = [r['method'] for r in rows
                   if r['verdict'] == 'beats focal' and r['method'] not in ORACLES]
        detail = ', '.join(
            f"{_named(r['method'])} {r['diff']:+.3f}"
            + (f" (2σ = {r['threshold']:.3f})" if r['threshold'] is not None else '')
            for r in rows)
        verdict = (', '.join(winners) if winners else
                   'none (one seed: no std to compare with)' if rows and
                   rows[0]['threshold'] is None else 'none')
        losers = [r['method'] for r in rows if r['verdict'] == 'worse than focal']
        worse = f' Below focal by > {MARGIN_STDS:g}σ: {", ".join(losers)}.' if losers else ''
        lines.append(f'- **{source} / {condition}** ({metric}, {ckpt} checkpoint): beats focal '
                     f'by > {MARGIN_STDS:g}σ: {verdict}.{worse} Differences: {detail}.')
    return '\n'.join(lines)


def gap_recovery(table: Dict[Key, Dict[str, Any]], ckpt: str = 'best', baseline: str = 'focal'
                 ) -> Dict[Tuple[str, str], Dict[str, Any]]:
    """Per (source, noisy condition): what label noise costs ``baseline`` (its clean mean minus its
    noisy mean, mAP) and each method's share of that gap recovered, ``(m - b_noisy) / (b_clean -
    b_noisy)``: 1 = as good as the baseline on clean labels, 0 = no better than on noisy ones,
    negative = worse. Needs the baseline on both the clean and the noisy condition."""
    out: Dict[Tuple[str, str], Dict[str, Any]] = {}
    for (source, condition, method), cell in table.items():
        clean, noisy = table.get((source, 'clean', baseline)), table.get(
            (source, condition, baseline))
        if condition not in NOISY or method == baseline or clean is None or noisy is None:
            continue
        b_clean, b_noisy = clean[ckpt]['mAP'][0], noisy[ckpt]['mAP'][0]
        entry = out.setdefault((source, condition), dict(
            clean=b_clean, noisy=b_noisy, gap=b_clean - b_noisy, methods={}))
        if entry['gap'] > 0:
            entry['methods'][method] = (cell[ckpt]['mAP'][0] - b_noisy) / entry['gap']
    return out


def gap_text(recovery, ckpt: str = 'best') -> str:
    lines = []
    for (source, condition), e in sorted(recovery.items(), key=lambda kv: (
            _order([kv[0][0]], SOURCES), list(CONDITIONS).index(kv[0][1]))):
        shares = ', '.join(f'{_named(m)} {100 * r:+.0f}%' for m, r in sorted(
            e['methods'].items(), key=lambda kv: -kv[1])) or '–'
        lines.append(f'- **{source} / {condition}** (mAP, {ckpt} checkpoint): label noise costs '
                     f'focal {e["gap"]:.3f} (clean {e["clean"]:.3f} → {e["noisy"]:.3f}); share of '
                     f'that gap recovered: {shares}.')
    return '\n'.join(lines)


def _verdict_cell(row: Optional[Dict[str, Any]], bold: bool = True) -> str:
    """A :func:`compare_to_focal` row as a table cell: the difference in points (×100) with 2σ,
    bold beyond it (unless ``bold`` is False), ‡ when its runs come from more than one machine;
    '–' without a row."""
    if row is None:
        return '–'
    if row['threshold'] is None:
        return f'{row["diff"] * 100:+.1f} (1 seed)'
    mark = '**' if bold and row['verdict'] == 'beats focal' else ''
    across = ' ‡' if len(row['machines']) > 1 else ''
    return f'{mark}{row["diff"] * 100:+.1f}{mark} ({row["threshold"] * 100:.1f}){across}'


def regime_table(table, early) -> str:
    """Per noisy cell of ``table`` (a longer schedule), each method against focal beside the same
    at the ``early`` table's schedule: the difference in points with 2σ on the best and last
    checkpoints, and the share of focal's clean-vs-noisy gap recovered (best checkpoints)."""
    iters = {r['settings']['iters'] for c in table.values() for r in c['runs']}
    early_iters = {r['settings']['iters'] for c in early.values() for r in c['runs']}
    now, then = ('/'.join(f'{i:,}' for i in sorted(x)) for x in (iters, early_iters))
    md = [f'| data | condition | method | seeds, {now} / {then} | Δ best (2σ), {now} | '
          f'Δ last (2σ), {now} | gap recovered, {now} | Δ best (2σ), {then} | '
          f'gap recovered, {then} |',
          '|---|---|---|---|---|---|---|---|---|']
    rows = {}
    for name, t in (('best', table), ('last', table), ('early', early)):
        ckpt = 'last' if name == 'last' else 'best'
        rows[name] = {(*cell, r['method']): r
                      for cell, rs in compare_to_focal(t, 'mAP', ckpt).items() for r in rs}
    gaps = {name: {(*cell, m): share for cell, e in gap_recovery(t).items()
                   for m, share in e['methods'].items()}
            for name, t in (('now', table), ('early', early))}
    for source in _order({k[0] for k in table}, SOURCES):
        for condition in _order({k[1] for k in table if k[0] == source}, CONDITIONS):
            if condition not in NOISY:
                continue
            for method in _order({k[2] for k in table if k[:2] == (source, condition)},
                                 METHODS):
                key = (source, condition, method)
                if method == 'focal':
                    continue
                share = [f'{round(100 * g[key]) + 0}%' if key in g else '–'  # no '-0%'
                         for g in (gaps['now'], gaps['early'])]
                seeds = [len(t[key]['seeds']) if key in t else 0 for t in (table, early)]
                md.append(f'| {source} | {condition} | {_named(method)} | '
                          f'{seeds[0]} / {seeds[1]} | {_verdict_cell(rows["best"].get(key))} | '
                          f'{_verdict_cell(rows["last"].get(key))} | {share[0]} | '
                          f'{_verdict_cell(rows["early"].get(key))} | {share[1]} |')
    return '\n'.join(md)


def regime_section(results, table, early_dir: str) -> Tuple[List[str], Dict]:
    """A report section (see :data:`Section`): :func:`regime_table` against the study directory
    ``early_dir`` at the shorter schedule."""
    early = aggregate(load_results(early_dir))
    return ['## Against the early-learning regime', '',
            'Each method against focal loss at this schedule and, beside it, at the study\'s '
            'schedule (same cell and method, each schedule over its own seeds): the difference '
            'of test mAP in points (×100) with twice the larger seed-to-seed std, **bold** beyond '
            'it, ‡ when the runs come from more than one machine; the share of the clean-vs-noisy '
            'gap of focal recovered, on the best checkpoints.', '',
            regime_table(table, early), ''], {}


# ---------------------------------------------------------------------------------- cost
def cost_by_method(results: Sequence[Dict[str, Any]]) -> Dict[str, Dict[str, float]]:
    """Mean per-run wall and CPU seconds by method, and the CPU seconds of the training loop
    alone: mmengine's median logged seconds per iteration times the iterations, scaled by the
    training process's CPU / wall ratio (wall time counts waiting on a shared machine)."""
    groups: Dict[str, List[Dict[str, Any]]] = defaultdict(list)
    for r in results:
        groups[r['method']].append(r)
    out = {}
    for method, runs in groups.items():
        loop_cpu, per_iter = [], []
        for r in runs:
            train = r['timings'].get('train')
            if train and r.get('train_s_per_iter'):
                ratio = min(train['cpu_s'] / max(train['wall_s'], 1e-9), 1.0)
                loop_cpu.append(r['train_s_per_iter'] * r['settings']['iters'] * ratio)
                per_iter.append(r['train_s_per_iter'] * ratio)
        out[method] = dict(runs=len(runs), iters=runs[0]['settings']['iters'],
                           wall_s=statistics.fmean(r['wall_s'] for r in runs),
                           cpu_s=statistics.fmean(r['cpu_s'] for r in runs),
                           loop_cpu_s=statistics.fmean(loop_cpu) if loop_cpu else 0.0,
                           cpu_s_per_iter=statistics.median(per_iter) if per_iter else float('nan'))
    return out


def extrapolate(costs: Dict[str, Dict[str, float]], iters: int) -> Tuple[Dict[str, float],
                                                                         List[str]]:
    """Estimated CPU seconds per run of each method at ``iters`` iterations (the training loop
    scaled linearly, start-up, validation, tests and diagnostics as measured) and the methods
    estimated from another one."""
    per_run, guessed = {}, []
    for method in STUDY_METHODS:
        if method in costs:
            c = costs[method]
        elif method == 'mentornet_dd' and 'mentornet_pd' in costs:
            c = costs['mentornet_pd']  # the same training; its mentor fit is not counted
            guessed.append(method)
        else:
            continue
        fixed = c['cpu_s'] - c['loop_cpu_s']
        per_run[method] = fixed + c['loop_cpu_s'] * iters / c['iters']
    return per_run, guessed


def cost_text(results: Sequence[Dict[str, Any]], study_iters: Sequence[int]) -> str:
    costs = cost_by_method(results)
    if not costs:
        return ''
    lines = ['| method | runs | iterations | CPU s / iteration | training-loop CPU s | '
             'run CPU s | run wall s |', '|---|---|---|---|---|---|---|']
    for method in _order(costs, METHODS):
        c = costs[method]
        lines.append(f"| {method} | {c['runs']} | {c['iters']} | {c['cpu_s_per_iter']:.3f} | "
                     f"{c['loop_cpu_s']:.0f} | {c['cpu_s']:.0f} | {c['wall_s']:.0f} |")
    n = len(CONDITIONS) * len(SOURCES)
    lines.append('')
    for iters in study_iters:
        per_run, guessed = extrapolate(costs, iters)
        if not per_run:
            continue
        per_seed = sum(per_run.values()) * n
        missing = [m for m in STUDY_METHODS if m not in per_run]
        lines.append(
            f'- **{iters} iterations**: about {per_seed / 3600:.1f} core-hours per seed for the '
            f'{len(per_run)} methods x {len(CONDITIONS)} conditions x {len(SOURCES)} sources, '
            f'{3 * per_seed / 3600:.1f} core-hours for 3 seeds '
            f'({3 * per_seed / 3600 / 2:.1f} h with `--jobs 2` on two free cores)'
            + (f'; {", ".join(guessed)} estimated from mentornet_pd' if guessed else '')
            + (f'; not measured: {", ".join(missing)}' if missing else '') + '.')
    return '\n'.join(lines)


# ---------------------------------------------------------------------------------- figures
#: the dumps and mentor files the figures have read (what a compact record keeps of them)
FILES_READ: set = set()


def _dump(run: Dict[str, Any], which: str = 'last') -> Optional[Dict[str, np.ndarray]]:
    rel = (run.get('diagnostics') or {}).get(which)
    if not rel or rel.startswith('failed'):
        return None
    path = os.path.join(run['_dir'], rel, 'diagnostics.npz')
    if not os.path.isfile(path):
        return None
    FILES_READ.add(path)
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


def _dump_lost(run: Dict[str, Any], which: str = 'last') -> bool:
    """The run's result names a diagnostics dump that is not on disk: an archived run record
    (result, logs, summaries), whose dump stayed in the study directory it ran in."""
    rel = (run.get('diagnostics') or {}).get(which)
    return bool(rel) and not rel.startswith('failed') and not os.path.isfile(
        os.path.join(run['_dir'], rel, 'diagnostics.npz'))


def _first_seed(table, key) -> Optional[Dict[str, Any]]:
    cell = table.get(key)
    return min(cell['runs'], key=lambda r: r['seed']) if cell else None


def figure_map(table, out_dir: str) -> Optional[str]:
    from mmreweight.analysis import plots
    sources = _order({k[0] for k in table}, SOURCES)
    if not sources:
        return None
    fig, axes = plots.subplots(len(sources) * 2, ncols=2, size=(7.5, 3.6))
    for i, source in enumerate(sources):
        keys = [k for k in table if k[0] == source]
        conditions = _order({k[1] for k in keys}, CONDITIONS)
        methods = _order({k[2] for k in keys}, METHODS)
        for j, ckpt in enumerate(CHECKPOINTS):
            ax = axes[2 * i + j]
            means = {(k[1], k[2]): table[k][ckpt]['mAP'][0] for k in keys}
            stds = {(k[1], k[2]): table[k][ckpt]['mAP'][1] for k in keys}
            plots.grouped_bars(ax, conditions, methods, means, stds, 'test COCO mAP',
                               f'{source}: {ckpt} checkpoint (bars: mean, error: std over seeds)')
        axes[2 * i].legend(fontsize=7, ncol=2)
    return plots.save(fig, os.path.join(out_dir, 'map_by_method.png'))


def run_val_curve(run: Dict[str, Any]) -> List[Tuple[int, float]]:
    """The run's val mAP during training (from its result, else from its training log)."""
    curve = run.get('val_curve')
    if curve is None:
        curve = log_digest(run['_dir']).get('val_curve') or []
    return [tuple(p) for p in curve]


def mean_val_curve(cell) -> Tuple[List[Tuple[int, float]], int]:
    """A cell's val mAP curve averaged over its seeds whose validations fall at the same
    iterations as the first seed's (all of them in a finished study), and how many seeds that
    is; ([], 0) when no run has a curve."""
    curves = [run_val_curve(r) for r in sorted(cell['runs'], key=lambda r: r['seed'])]
    curves = [c for c in curves if c]
    if not curves:
        return [], 0
    iters = [it for it, _ in curves[0]]
    same = [c for c in curves if [it for it, _ in c] == iters]
    return [(it, statistics.fmean(c[i][1] for c in same)) for i, it in enumerate(iters)], len(same)


#: the most methods the val-curve figure draws; past it, the study's methods and the oracles only
MAX_CURVE_METHODS = 12


def curve_methods(table) -> List[str]:
    """The methods :func:`figure_val_curves` draws: all of them, or when there are more than
    :data:`MAX_CURVE_METHODS`, the study's methods and the oracles (not the variants)."""
    methods = _order({k[2] for k in table}, METHODS)
    if len(methods) > MAX_CURVE_METHODS:
        methods = [m for m in methods if m in STUDY_METHODS or m in ORACLES]
    return methods


def figure_val_curves(table, out_dir: str) -> Optional[str]:
    """Val mAP against iteration, one panel per (source, condition), a line per method of
    :func:`curve_methods` (the mean over its seeds; one colour per method, named in the last
    panel): whether the schedule is long enough for the methods to converge, and where they
    part."""
    from mmreweight.analysis import plots
    panels = sorted({k[:2] for k in table}, key=lambda k: (
        _order([k[0]], SOURCES), list(CONDITIONS).index(k[1]) if k[1] in CONDITIONS else 99))
    if not panels:
        return None
    methods = curve_methods(table)
    colours = plots.colours(methods)
    fig, axes = plots.subplots(len(panels) + 1, ncols=3)
    for ax, (source, condition) in zip(axes, panels):
        for method in methods:
            cell = table.get((source, condition, method))
            curve, _ = mean_val_curve(cell) if cell else ([], 0)
            if curve:
                ax.plot(*zip(*curve), marker='o', ms=3, color=colours[method])
        ax.set_xlabel('iteration')
        ax.set_ylabel('val COCO mAP')
        ax.set_title(f'{source} / {condition}', fontsize=9)
    key = axes[-1]
    key.axis('off')
    key.legend(handles=[key.plot([], [], marker='o', ms=3, color=colours[m], label=m)[0]
                        for m in methods], loc='center', fontsize=7,
               ncol=1 + len(methods) // 10, title='method', title_fontsize=8)
    return plots.save(fig, os.path.join(out_dir, 'val_map_curves.png'))


def curve_peak(curve: Sequence[Tuple[int, float]]) -> Dict[str, float]:
    """A val curve's peak (its first highest point), the lowest point after it (the peak itself
    when none follows), its last point and the fall from the peak to the last point."""
    peak_iter, peak = max(curve, key=lambda p: (p[1], -p[0]))
    last_iter, last = curve[-1]
    after = [m for it, m in curve if it > peak_iter]
    return dict(peak_iter=peak_iter, peak=peak, trough=min(after, default=peak),
                last_iter=last_iter, last=last, fall=peak - last)


def lr_milestones(run: Dict[str, Any]) -> List[int]:
    """The iterations at which the run's step schedule lowers the learning rate (its
    ``--cfg-options``; [] when they do not set them)."""
    for option in run.get('cfg_options', []):
        key, _, value = option.partition('=')
        if key.endswith('.milestones'):
            return [int(v) for v in value.strip('[]').split(',') if v]
    return []


#: the memorisation summary's method: the baseline whose fit of the wrong labels the study asks
#: about
MEMORISATION_METHOD = 'focal'


def memorisation_table(table, method: str = MEMORISATION_METHOD) -> Dict[Tuple[str, str],
                                                                           Dict[str, Any]]:
    """(source, condition) -> mean (± std over seeds) of ``method``'s val curve peak, its
    iteration, the last val mAP and the fall from the peak (:func:`curve_peak`); with the
    lowest and highest peak iteration over seeds (``peak_iter_range``), since seeds that peak
    far apart average to an iteration where none of them peaks."""
    out = {}
    for (source, condition, m), cell in table.items():
        peaks = [curve_peak(c) for c in map(run_val_curve, cell['runs']) if c]
        if m == method and peaks:
            peak_iters = [p['peak_iter'] for p in peaks]
            out[(source, condition)] = dict(
                seeds=len(peaks), peak_iter_range=(min(peak_iters), max(peak_iters)),
                **{k: mean_std([p[k] for p in peaks])
                   for k in ('peak', 'peak_iter', 'trough', 'last', 'fall')})
    return out


def memorisation_text(rows) -> str:
    if not rows:
        return ''
    md = ['| data | condition | seeds | val mAP peak | at iteration (seeds\' range) | '
          'lowest after the peak | last val mAP | fall from the peak to the last |',
          '|---' * 8 + '|']
    for source in _order({k[0] for k in rows}, SOURCES):
        for condition in _order({k[1] for k in rows if k[0] == source}, CONDITIONS):
            row = rows[(source, condition)]
            first, last = row['peak_iter_range']
            at = f'{first}' if first == last else f'{first}–{last}'
            md.append('| ' + ' | '.join([source, condition, str(row['seeds']), fmt(row['peak']),
                                         at, fmt(row['trough']),
                                         fmt(row['last']), fmt(row['fall'])]) + ' |')
    return '\n'.join(md)


def figure_memorisation(table, out_dir: str,
                        method: str = MEMORISATION_METHOD) -> Optional[str]:
    """``method``'s val mAP against iteration on clean and on noisy labels, one panel per source
    (first seed), each curve's peak and the learning-rate steps marked: whether the noisy run
    stops improving, or falls as it fits the wrong labels, within the schedule."""
    from mmreweight.analysis import plots
    sources = [s for s in _order({k[0] for k in table}, SOURCES)
               if any((s, c, method) in table for c in NOISY)]
    if not sources:
        return None
    fig, axes = plots.subplots(len(sources), ncols=2, size=(5.0, 3.6))
    for ax, source in zip(axes, sources):
        steps = set()
        for condition in _order({k[1] for k in table if k[0] == source}, CONDITIONS):
            run = _first_seed(table, (source, condition, method))
            curve = run_val_curve(run) if run else []
            if not curve:
                continue
            line, = ax.plot(*zip(*curve), marker='o', ms=3, label=condition)
            peak = curve_peak(curve)
            ax.plot([peak['peak_iter']], [peak['peak']], marker='*', ms=11,
                    color=line.get_color())
            steps.update(lr_milestones(run))
        for step in sorted(steps):
            ax.axvline(step, color='0.6', ls=':', lw=1)
        ax.set_xlabel('iteration')
        ax.set_ylabel('val COCO mAP')
        ax.set_title(f'{source}: {method} (star: peak; dotted: LR × 0.1)', fontsize=9)
        ax.legend(fontsize=7)
    return plots.save(fig, os.path.join(out_dir, 'memorisation.png'))


def _dumped_without_flags(summary: Dict[str, Any]) -> bool:
    """A label-issue run whose dump was taken without its checkpoint's flags (diagnostics that
    did not read them): every weight 1, as if nothing were flagged."""
    return summary.get('method') == 'LabelIssueWeighter' and 'label_issue_flags' not in summary


def figure_weights(table, out_dir: str) -> List[str]:
    """Weight vs loss of every reweighting method, one figure per (source, condition) with noisy
    labels (clean conditions if there are none), first seed."""
    from mmreweight.analysis import plots
    written = []
    conditions = {k[1] for k in table}
    shown = [c for c in NOISY if c in conditions] or [c for c in ('clean', ) if c in conditions]
    for source in _order({k[0] for k in table}, SOURCES):
        for condition in shown:
            runs = [(m, _first_seed(table, (source, condition, m))) for m in METHODS]
            runs = [(m, run) for m, run in runs if run is not None]
            if any(_dump_lost(run) for _, run in runs):
                continue  # drawn from only some of its runs it would mislead (keep_earlier_figures)
            panels = []
            for method, run in runs:
                dump = _dump(run)
                if dump is not None and str(dump['method']) != 'none' \
                        and not _dumped_without_flags(_summary(run)):
                    panels.append((method, run, dump))
            if not panels:
                continue
            fig, axes = plots.subplots(len(panels), ncols=3)
            for ax, (method, run, dump) in zip(axes, panels):
                summary = _summary(run)
                note = ''
                if summary.get('auc_weight_clean_vs_noisy') is not None:
                    note = (f"\nmean w: clean pos {summary['mean_weight_pos_clean']:.2f}, "
                            f"noisy pos {summary['mean_weight_pos_noisy']:.2f}, AUC "
                            f"{summary['auc_weight_clean_vs_noisy']:.2f}")
                plots.weight_vs_loss(ax, dump, f'{method} ({dump["method"]}){note}')
                if method in ('ghm_c', *GHMR_METHODS):
                    ax.set_yscale('log')
            axes[0].legend(fontsize=6, markerscale=3)
            name = f'weight_vs_loss_{source}_{condition}.png'
            written.append(plots.save(fig, os.path.join(out_dir, name)))
    return written


#: what the meta hook logs: mean weight of positives matched to clean / noisy annotations
WEIGHT_LOG_KEYS = ('meta_w_clean', 'meta_w_noisy')


def run_weight_curves(run: Dict[str, Any]) -> Dict[str, List[Tuple[int, float]]]:
    """The run's logged mean weights of clean and noisy positives (empty lists if not logged)."""
    scalars = logged_scalars(run['_dir'])
    return {k: scalars[k] for k in WEIGHT_LOG_KEYS}


def _seed_mean_curves(runs) -> Dict[str, Tuple[np.ndarray, np.ndarray]]:
    """Per key: iterations logged by every run and the mean over runs there."""
    out = {}
    for key in WEIGHT_LOG_KEYS:
        curves = [dict(run_weight_curves(r)[key]) for r in runs]
        common = sorted(set.intersection(*(set(c) for c in curves))) if curves else []
        if common:
            out[key] = (np.array(common), np.array([np.mean([c[i] for c in curves])
                                                    for i in common]))
    return out


def weight_log_table(table) -> str:
    """Mean over the whole run (and over seeds) of the logged mean weights of clean and noisy
    positives, per meta method and noisy condition."""
    lines = ['| source / condition | method | seeds | mean weight: clean positives | '
             'noisy positives | noisy / clean |', '|---|---|---|---|---|---|']
    for key in sorted(table, key=lambda k: (_order([k[0]], SOURCES),
                                            list(CONDITIONS).index(k[1]),
                                            list(METHODS).index(k[2]))):
        if key[1] not in NOISY:
            continue
        curves = _seed_mean_curves(table[key]['runs'])
        if len(curves) < len(WEIGHT_LOG_KEYS):
            continue
        clean, noisy = (float(curves[k][1].mean()) for k in WEIGHT_LOG_KEYS)
        lines.append(f'| {key[0]} / {key[1]} | {key[2]} | {len(table[key]["runs"])} | '
                     f'{clean:.3f} | {noisy:.3f} | {noisy / clean:.2f} |')
    return '\n'.join(lines) if len(lines) > 2 else ''


#: logged points averaged in the weight-curve figure (the logged means are noisy per interval)
SMOOTH = 5


def _rolling(iters: np.ndarray, values: np.ndarray, window: int = SMOOTH):
    window = max(1, min(window, len(values)))
    kernel = np.ones(window) / window
    return iters[window - 1:], np.convolve(values, kernel, mode='valid')


def figure_weight_curves(table, out_dir: str) -> Optional[str]:
    """Mean weight of positives on clean (solid) vs noisy (dashed) annotations during training,
    as the meta hook logged it, mean over seeds; one panel per (source, noisy condition)."""
    from mmreweight.analysis import plots
    panels = {}
    for key in table:
        if key[1] in NOISY:
            curves = _seed_mean_curves(table[key]['runs'])
            if len(curves) == len(WEIGHT_LOG_KEYS):
                panels.setdefault(key[:2], []).append((key[2], curves))
    if not panels:
        return None
    order = sorted(panels, key=lambda k: (_order([k[0]], SOURCES), list(CONDITIONS).index(k[1])))
    fig, axes = plots.subplots(len(order), ncols=2, size=(5.0, 3.6))
    for ax, panel in zip(axes, order):
        for i, (method, curves) in enumerate(sorted(panels[panel], key=lambda mc: list(
                METHODS).index(mc[0]))):
            color = f'C{i}'
            ax.plot(*_rolling(*curves['meta_w_clean']), color=color, label=f'{method}: clean')
            ax.plot(*_rolling(*curves['meta_w_noisy']), color=color, ls='--',
                    label=f'{method}: noisy')
        ax.axhline(1.0, color='grey', lw=0.5)
        ax.set_xlabel('iteration')
        ax.set_ylabel('mean weight of positives')
        ax.set_title(f'{panel[0]} / {panel[1]} (mean over seeds, rolling mean of {SMOOTH} logs)',
                     fontsize=8)
        ax.legend(fontsize=6)
    return plots.save(fig, os.path.join(out_dir, 'weights_during_training.png'))


#: MentorNet epoch at which the mentor curves are drawn (the last one: the checkpoint's)
MENTOR_CURVE_EPOCH = 99


def mentor_curve_data(mentor_path: str, lam: float, max_loss: float, points: int = 301,
                      epoch: int = MENTOR_CURVE_EPOCH) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(loss grid, v, monotone envelope) of a mentor file for positives at ``epoch`` with
    percentile moving average ``lam``, on ``points`` losses from 0 to ``max_loss``."""
    import torch
    from mmreweight.weighting.mentornet.dd import load_mentor
    from mmreweight.weighting.mentornet.inputs import mentor_features
    from mmreweight.weighting.mentornet.monotone import monotone_envelope
    net, _, _ = load_mentor(mentor_path)
    net.requires_grad_(False)
    loss = torch.linspace(0, max_loss, points)
    is_pos = torch.ones_like(loss, dtype=torch.bool)
    thresholds = torch.tensor([0.0, float(lam)])
    v = net.weights(mentor_features(loss, is_pos, thresholds, epoch))
    envelope = monotone_envelope(net.weights, v, loss, is_pos, thresholds, epoch,
                                 step=max_loss / (points - 1))
    return loss.numpy(), v.numpy(), envelope.numpy()


def _mentor_run(table, source: str, condition: str):
    """(run, mentor path, last logged λ of positives, dump) of the MentorNet-DD run of
    ``source``/``condition`` with the lowest seed (then the first DD method) whose directory still
    holds its mentor, logged λ and diagnostics dump; None if none does. All DD variants of a
    seed share one mentor (fitted from the focal run of that seed)."""
    runs = [r for m in MENTOR_DD_METHODS
            for r in (table.get((source, condition, m)) or {}).get('runs', [])]
    for run in sorted(runs, key=lambda r: (r['seed'], MENTOR_DD_METHODS.index(r['method']))):
        mentor = os.path.join(run['_dir'], 'mentor.pth')
        lam = logged_scalars(run['_dir'])['mentornet_pct_ema_pos']
        if not os.path.isfile(mentor) or not lam:
            continue
        dump = _dump(run)
        if dump is not None:
            FILES_READ.add(mentor)
            return run, mentor, lam[-1][1], dump
    return None


def figure_mentor_curves(table, out_dir: str) -> Optional[str]:
    """Per noisy (source, condition): the data-driven mentor v for positives at the last epoch,
    with λ the run's last logged moving average, and its monotone envelope, over the losses of the
    run's positives at its last checkpoint (:func:`_mentor_run` picks the run)."""
    from mmreweight.analysis import plots
    panels = []
    for source, condition in sorted({k[:2] for k in table if k[1] in NOISY},
                                    key=lambda k: (_order([k[0]], SOURCES),
                                                   list(CONDITIONS).index(k[1]))):
        found = _mentor_run(table, source, condition)
        if found is not None:
            panels.append(((source, condition), *found))
    if not panels:
        return None
    fig, axes = plots.subplots(len(panels), ncols=2, size=(5.0, 3.6))
    for ax, ((source, condition), run, mentor, lam, dump) in zip(axes, panels):
        pos = dump['pos'].astype(bool)
        clean = dump['loss'][pos & (dump['noisy'] == 0)]
        noisy = dump['loss'][pos & (dump['noisy'] == 1)]
        max_loss = float(np.percentile(dump['loss'][pos], 99.5)) * 1.1 if pos.any() else 2.0
        grid, v, envelope = mentor_curve_data(mentor, lam, max(max_loss, 1e-3))
        plots.mentor_curve(ax, grid, v, envelope, clean, noisy,
                           f'{source} / {condition}: seed-{run["seed"]} mentor at epoch '
                           f'{MENTOR_CURVE_EPOCH}, λ = {lam:.3f};\nlosses of the '
                           f'{run["method"]} run')
    return plots.save(fig, os.path.join(out_dir, 'mentor_curves.png'))


def _diagnostics_json(run: Dict[str, Any], which: str, name: str) -> Optional[Dict[str, Any]]:
    """A JSON file ``name`` of the run's ``which`` ('last' / 'init') diagnostics, if written."""
    rel = (run.get('diagnostics') or {}).get(which)
    path = os.path.join(run['_dir'], rel or '', name)
    if not rel or not os.path.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


def _first_seed_cells(table, method: str):
    """(key, first-seed run) of every cell of ``method``, by source then condition."""
    keys = sorted((k for k in table if k[2] == method),
                  key=lambda k: (_order([k[0]], SOURCES), list(CONDITIONS).index(k[1])))
    return [(key, _first_seed(table, key)) for key in keys]


def _summary(run: Dict[str, Any], which: str = 'last') -> Dict[str, Any]:
    """The run's diagnostics summary, recomputed from its dump when there is one (so runs
    dumped by older code get the current summary's keys), else its summary.json."""
    stored = _diagnostics_json(run, which, 'summary.json')
    if stored is None:
        return {}
    dump = _dump(run, which)
    if dump is not None:
        from mmreweight.analysis.diagnostics import summarize
        stored.update(summarize(dump))
    return stored


def figure_ghm_density(table, out_dir: str) -> Optional[str]:
    from mmreweight.analysis import plots
    panels = []
    # the paper's recipe where the records hold it (their dumps show its collapse), else the GHM
    cells = _first_seed_cells(table, 'ghm_paper') or _first_seed_cells(table, 'ghm')
    if any(_dump_lost(run, which) for _, run in cells for which in ('init', 'last')):
        return None
    for key, run in cells:
        init, last = _dump(run, 'init'), _dump(run, 'last')
        if init is not None and last is not None:
            panels.append((key, init, last))
    if not panels:
        return None
    fig, axes = plots.subplots(len(panels), ncols=3)
    for ax, ((source, condition, _), init, last) in zip(axes, panels):
        curves = [('before training, all', init['hist_all']),
                  ('after training, all', last['hist_all']),
                  ('after, target-1 clean', last['hist_target1_clean'])]
        if last['hist_target1_noisy'].sum():
            curves.append(('after, target-1 noisy', last['hist_target1_noisy']))
        plots.gradient_density(ax, curves, last['hist_edges'],
                               f'GHM-C run, {source} / {condition}')
        ax.legend(fontsize=7)
    return plots.save(fig, os.path.join(out_dir, 'ghm_gradient_density.png'))


def ghmr_profile_panels(table) -> List[Tuple[Key, List[Tuple[str, Dict[str, Any]]]]]:
    """(cell, [(label, ghmr_profile.json)]) per GHM-R method: its first cell (by source, then
    condition) with a profile, first seed. One per method, not per cell: a panel per cell would
    grow with every variant screened."""
    panels = []
    for method in GHMR_METHODS:
        for key, run in _first_seed_cells(table, method):
            profiles = [(label, _diagnostics_json(run, which, 'ghmr_profile.json'))
                        for label, which in (('before training', 'init'), ('after', 'last'))]
            profiles = [(label, prof) for label, prof in profiles if prof is not None]
            if profiles:
                panels.append((key, profiles))
                break
    return panels


def figure_ghmr_profile(table, out_dir: str) -> Optional[str]:
    """GHM-R's bins before and after training (:func:`ghmr_profile_panels`)."""
    from mmreweight.analysis import plots
    panels = ghmr_profile_panels(table)
    if not panels:
        return None
    fig, axes = plots.subplots(len(panels), ncols=2, size=(6, 4.5))
    for ax, ((source, condition, method), profiles) in zip(axes, panels):
        # each profile's own mu: mu='auto' is calibrated during training
        plots.ghmr_profile(ax, [(f'{label} (mu={prof["mu"]:.3g})', prof)
                                for label, prof in profiles],
                           f'{method}, {source} / {condition}')
    return plots.save(fig, os.path.join(out_dir, 'ghmr_profile.png'))


def figure_cb_weights(table, out_dir: str) -> Optional[str]:
    from mmreweight.analysis import plots
    sources = [s for s in _order({k[0] for k in table}, SOURCES)
               if any(k[0] == s and k[2] == 'cb_focal' for k in table)]
    if not sources:
        return None
    if any(_dump_lost(run) for k in table if k[2] == 'cb_focal'
           for run in [_first_seed(table, k)]):
        return None
    fig, axes = plots.subplots(len(sources), ncols=1, size=(8, 3.6))
    drawn = False
    for ax, source in zip(axes, sources):
        series, classes = [], None
        for condition in CONDITIONS:
            run = _first_seed(table, (source, condition, 'cb_focal'))
            dump = _dump(run) if run else None
            if dump is None or 'cb_class_weights' not in dump:
                continue
            classes = run['classes']
            ratio = CONDITIONS[condition]['imbalance_ratio']
            series.append((f'{condition} (imbalance {ratio:g})', dump['cb_class_weights']))
        if series:
            plots.class_weights(ax, classes, series,
                                f'{source}: class-balanced weights (beta from the config)')
            ax.legend(fontsize=7)
            drawn = True
    return plots.save(fig, os.path.join(out_dir, 'cb_class_weights.png')) if drawn else None


def diagnostics_table(table) -> str:
    """Mean weight of positives matched to clean vs noisy annotations (first seed); label-issue
    runs dumped without their checkpoint's flags are left out (their weights read as uniform)."""
    lines = ['| source / condition | method | weight: negatives | clean positives | '
             'noisy positives | AUC clean > noisy | zero-weight fraction (positives) | '
             'AUC of the small-loss criterion |',
             '|---|---|---|---|---|---|---|---|']
    found = skipped_label_issues = False
    for key in sorted(table, key=lambda k: (_order([k[0]], SOURCES),
                                            list(CONDITIONS).index(k[1]),
                                            list(METHODS).index(k[2]))):
        source, condition, method = key
        if condition not in NOISY:
            continue
        s = _summary(_first_seed(table, key))
        if not s or s.get('method') == 'none':
            continue
        if _dumped_without_flags(s):
            skipped_label_issues = True
            continue
        found = True

        def f(v):
            return '–' if v is None else f'{v:.3f}'

        lines.append(f"| {source} / {condition} | {method} ({s['method']}) | "
                     f"{f(s.get('mean_weight_neg'))} | {f(s.get('mean_weight_pos_clean'))} | "
                     f"{f(s.get('mean_weight_pos_noisy'))} | "
                     f"{f(s.get('auc_weight_clean_vs_noisy'))} | {f(s.get('zero_weight_frac'))} "
                     f"({f(s.get('zero_weight_frac_pos'))}) | "
                     f"{f(s.get('auc_small_loss_clean_vs_noisy'))} |")
    if skipped_label_issues:
        lines += ['', 'Not shown: the label-issue runs whose dumps were taken without the '
                  "checkpoint's flags (every weight 1, as if nothing were flagged); their flags "
                  'are scored in the label-issue section.']
    return '\n'.join(lines) if found else ''


# ---------------------------------------------------------------------------------- the report
README_BEGIN = '<!-- study-report:begin (written by projects/reweighting_study/tools/study_report.py --readme) -->'
README_END = '<!-- study-report:end -->'


def best_method(table, source: str, condition: str, metric: str = 'mAP', ckpt: str = 'best',
                candidates: Sequence[str] = STUDY_METHODS) -> Optional[Dict[str, Any]]:
    """The candidate (not focal, not an oracle) with the highest mean ``metric`` over at least two
    seeds in a cell, with its difference to focal and the verdict of :func:`compare_to_focal`;
    None when there is none."""
    rows = [r for r in compare_to_focal(table, metric, ckpt).get((source, condition), [])
            if r['method'] in candidates and r['method'] not in ORACLES
            and r['threshold'] is not None]
    return rows[0] if rows else None  # sorted by difference, best first


def complete_cells(table, methods: Sequence[str] = CONVERGED_METHODS,
                   seeds: int = DEFAULT_NUM_SEEDS) -> List[Tuple[str, str]]:
    """The (source, condition) cells of ``table`` where each of ``methods`` has ``seeds`` seeds
    or more."""
    cells = {(k[0], k[1]) for k in table}
    return sorted(c for c in cells if all(len(table.get((*c, m), {}).get('seeds', ())) >= seeds
                                          for m in methods))


def _iterations(cell) -> str:
    """The training iterations of a cell's runs, in thousands (3000 -> '3k')."""
    iters = {r['settings']['iters'] for r in cell['runs']}
    return '/'.join(f'{i / 1000:g}k' for i in sorted(iters))


def readme_table(table, ckpt: str = 'best', converged=None) -> str:
    """One row per (source, condition): focal's test mAP and the best study method's, its
    difference and whether it is beyond 2σ; on long-tailed conditions the same for the mean AP of
    the three rarest classes. A cell that ``converged`` (the converged schedule's table) holds
    complete (:func:`complete_cells`) comes from there, among the methods it ran."""
    md = ['| data | condition | iters | focal mAP | best method (mAP) | Δ mAP (2σ) | '
          'long tail: focal rare-3 AP | best method (rare-3 AP) | Δ rare-3 AP (2σ) |',
          '|---|---|---|---|---|---|---|---|---|']
    longer = set(complete_cells(converged)) if converged else set()
    for source in _order({k[0] for k in table}, SOURCES):
        for condition in _order({k[1] for k in table if k[0] == source}, CONDITIONS):
            cells_of = converged if (source, condition) in longer else table
            focal = cells_of.get((source, condition, 'focal'))
            if focal is None:
                continue
            cells = [source, condition, _iterations(focal), fmt(focal[ckpt]['mAP'])]
            metrics = ('mAP', 'rare_AP') if condition in LONG_TAIL else ('mAP', )
            for metric in metrics:
                row = best_method(cells_of, source, condition, metric, ckpt)
                if metric == 'rare_AP':
                    cells.append(fmt(focal[ckpt][metric]))
                if row is None:
                    cells += ['–', '–']
                    continue
                mean = cells_of[(source, condition, row['method'])][ckpt][metric][0]
                mark = '**' if row['verdict'] == 'beats focal' else ''  # on the winner's name
                cells += [f'{mark}{row["method"]}{mark} ({mean:.3f})',
                          _verdict_cell(row, bold=False)]
            cells += [''] * (9 - len(cells))
            md.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(md)


def readme_summary(table, report_dir: str, readme_dir: str, converged=None,
                   converged_dir: Optional[str] = None) -> str:
    """What the project README shows of the study: :func:`readme_table` and a link to the full
    report (relative to ``readme_dir``), and to ``converged_dir``'s report when rows come from
    the ``converged`` table."""
    rel = os.path.relpath(report_dir, readme_dir)
    ckpt = 'best'
    longer = complete_cells(converged) if converged else []
    text = [
        readme_table(table, ckpt, converged), '',
        f'Test COCO mAP ({ckpt} checkpoint by val mAP), mean over seeds; Δ in points (×100) '
        'against focal, with twice the larger seed-to-seed std; **bold**: beyond it. "Best '
        'method" is the highest mean among the study\'s methods '
        f'({", ".join(m for m in STUDY_METHODS if m != "focal")})']
    if longer:
        ran = [m for m in CONVERGED_METHODS if m in STUDY_METHODS and m != 'focal']
        link = os.path.relpath(converged_dir, readme_dir) if converged_dir else None
        schedule = f'[longer schedule]({link}/README.md)' if link else 'longer schedule'
        text[-1] += f'; at the {schedule} among those it ran ({", ".join(ran)})'
    text[-1] += ('. ‡: runs from more than one machine, on which the same run differs by up to '
                 '2 mAP (one-machine verdicts: the note). Every method, condition and '
                 f'checkpoint: [the study]({rel}/README.md).')
    return '\n'.join(text)


def update_readme(readme: str, section: str, markers: Tuple[str, str] = (README_BEGIN, README_END)
                  ) -> None:
    """Replace the text between the ``markers`` (begin, end; by default :data:`README_BEGIN`
    and :data:`README_END`) in ``readme``."""
    with open(readme) as f:
        text = f.read()
    begin_marker, end_marker = markers
    begin, end = text.find(begin_marker), text.find(end_marker)
    if begin < 0 or end < begin:
        raise ValueError(f'{readme} has no {begin_marker!r} ... {end_marker!r} block to update')
    text = text[:begin + len(begin_marker)] + '\n' + section + '\n' + text[end:]
    with open(readme, 'w') as f:
        f.write(text)


#: single figures drawn from diagnostics dumps or mentor files, by their key in write_report
DUMP_FIGURES = {'ghm': 'ghm_gradient_density.png', 'cb': 'cb_class_weights.png',
                'mentor': 'mentor_curves.png'}


def keep_earlier_figures(figures: Dict[str, Any], table, out_dir: str) -> List[str]:
    """Keep, from an earlier report in ``out_dir``, the dump figures this study directory could
    not redraw in full (its runs are archived records without their diagnostics dumps), rather
    than drop them or draw them from part of their runs. Updates ``figures``; returns the names
    kept."""
    kept = []
    for key, name in DUMP_FIGURES.items():
        path = os.path.join(out_dir, name)
        if figures[key] is None and os.path.isfile(path):
            figures[key] = path
            kept.append(name)
    drawn = {os.path.basename(p) for p in figures['weights']}
    for source in _order({k[0] for k in table}, SOURCES):
        for condition in _order({k[1] for k in table if k[0] == source}, CONDITIONS):
            name = f'weight_vs_loss_{source}_{condition}.png'
            path = os.path.join(out_dir, name)
            if name not in drawn and os.path.isfile(path):
                figures['weights'].append(path)
                kept.append(name)
    return kept


def draw_figures(table, out_dir: str) -> Dict[str, Any]:
    """Every figure of the report, drawn into ``out_dir``: key -> path (None: nothing to draw;
    a list for the weight-vs-loss figures)."""
    return dict(map=figure_map(table, out_dir), curves=figure_val_curves(table, out_dir),
                weights=figure_weights(table, out_dir), ghm=figure_ghm_density(table, out_dir),
                ghmr=figure_ghmr_profile(table, out_dir), cb=figure_cb_weights(table, out_dir),
                weight_curves=figure_weight_curves(table, out_dir),
                mentor=figure_mentor_curves(table, out_dir),
                memorisation=figure_memorisation(table, out_dir))


#: a report section added by the caller: (results, table) -> (markdown lines for the report,
#: {(begin, end) README markers: the README block between them})
Section = Callable[[Sequence[Dict[str, Any]], Dict[Key, Dict[str, Any]]],
                   Tuple[List[str], Dict[Tuple[str, str], str]]]


def write_report(study_dir: str, out_dir: str, title: str = 'Reweighting study',
                 note: str = '', study_iters: Sequence[int] = (),
                 readme: Optional[str] = None, sections: Sequence[Section] = (),
                 converged: Optional[Tuple[str, str]] = None) -> str:
    """Write ``out_dir/README.md`` and its figures; with ``readme``, also refresh the study block
    of that file (see :func:`update_readme`) and the blocks of the ``sections``, whose markdown
    goes before the cost. ``converged`` (a study directory at a longer schedule, and its report
    folder) gives the README's table the noise cells it holds complete."""
    results = load_results(study_dir)
    if not results:
        raise FileNotFoundError(f'no result.json under {study_dir}')
    os.makedirs(out_dir, exist_ok=True)
    settings = load_settings(study_dir) or results[0]['settings']
    table = aggregate(results)
    seeds = sorted({r['seed'] for r in results})
    figures = draw_figures(table, out_dir)
    kept = keep_earlier_figures(figures, table, out_dir)

    md = [f'# {title}', '']
    if note:
        md += [note, '']
    md += [f'- {len(results)} runs from `{os.path.basename(os.path.abspath(study_dir))}`, '
           f'seeds {seeds}, {settings["iters"]} training iterations each (batch 8), '
           f'{settings.get("val_evals", "?")} validations per run.',
           '- **best**: the checkpoint with the highest val COCO mAP, evaluated on test; '
           '**last**: the final checkpoint on test. mean ± sample std over seeds (no ± with one '
           'seed).',
           '- **rare-3 AP**: mean test AP of the 3 classes with the fewest training annotations '
           '(long-tailed conditions only).', '']
    if kept:
        md += [f'- Drawn from diagnostics dumps that these run records do not hold, so kept as '
               f'they are in the output folder: {", ".join(f"`{n}`" for n in kept)}.', '']
    if settings.get('benchmark_overrides'):
        md += [f'- benchmark overrides: `{settings["benchmark_overrides"]}`', '']
    for source in _order({k[0] for k in table}, SOURCES):
        md += [f'## {source}', '', results_table(table, source), '']
    md += ['## Which methods beat focal loss',
           '',
           f'A method "beats focal" in a condition when its mean exceeds focal\'s by more than '
           f'{MARGIN_STDS:g}x the seed-to-seed std (the larger of the two). ', '',
           comparison_text(compare_to_focal(table, 'mAP', 'best'), 'mAP', 'best'),
           comparison_text(compare_to_focal(table, 'mAP', 'last'), 'mAP', 'last')]
    lt = {k: v for k, v in compare_to_focal(table, 'rare_AP', 'best').items()
          if k[1] in LONG_TAIL}
    if lt:
        md += [comparison_text(lt, 'rare-3 AP', 'best')]
    recovery = gap_text(gap_recovery(table))
    if recovery:
        md += ['', 'Share of the clean-vs-noisy gap of focal loss that each method recovers '
               '(the study\'s target for the meta methods is >= 80%):', '', recovery]
    md += ['', '![test mAP per method and condition](map_by_method.png)', '']
    if figures['curves']:
        left_out = len({k[2] for k in table}) - len(curve_methods(table))
        md += ['Val mAP during training (mean over seeds; a validation without any detection '
               'counts as 0' + (f'; the {left_out} variants left out' if left_out else '') + '):',
               '', '![val mAP during training](val_map_curves.png)', '']
    memorisation = memorisation_text(memorisation_table(table))
    if memorisation:
        md += ['## Does focal loss fit the wrong labels within the schedule?', '',
               f'{MEMORISATION_METHOD} on clean and on noisy labels: the peak of the val mAP '
               'curve, where it lies, and how far the last validation is below it (mean ± std '
               'over seeds). A noisy run that has not peaked by the end, or peaks only at the '
               'last validation, is still in the early-learning phase, before the detector '
               'fits the wrong labels.', '', memorisation, '']
        if figures['memorisation']:
            md += ['![focal val mAP on clean and noisy labels](memorisation.png)', '']
    diag = diagnostics_table(table)
    if diag or figures['weights']:
        md += ['## Learned weights on clean vs noisy annotations', '',
               f'From `tools/diagnose.py` on the last checkpoint '
               f'({settings.get("diag_batches", "?")} training batches, first seed): '
               'per valid anchor, the weight the method gives it and its loss. Positives are '
               'coloured by whether their matched annotation\'s label was flipped. Each method '
               'has its own scale: L2RW, MW-Net and MentorNet weights have mean one over valid '
               'anchors, GHM-C\'s are harmonizing weights N / (n S_b) (effective per anchor), '
               'CB-focal\'s the class weight (background 1), focal\'s 1. The AUCs rank clean '
               'above noisy positives (0.5 = blind): by the method\'s weight, and, for '
               'comparison, by the loss alone (small loss = clean, the criterion of '
               'MentorNet\'s self-paced curriculum and of co-teaching).', '']
        if diag:
            md += [diag, '']
        md += [f'![weight vs loss]({os.path.basename(p)})' for p in figures['weights']] + ['']
    logged = weight_log_table(table)
    if logged:
        md += ['## Weights during training', '',
               'Mean weight of positive anchors matched to clean vs noisy annotations as the meta '
               'hook logs it (mean over each logger interval, then over the run and the seeds); '
               'weights have mean one over the reweighted anchors.', '', logged, '']
        if figures['weight_curves']:
            md += ['![weights during training](weights_during_training.png)', '']
    if figures['mentor']:
        md += ['## What the data-driven mentor trusts', '',
               'MentorNet-DD\'s mentor (fitted to the focal run\'s losses on the clean split with '
               'labels corrupted on purpose) as a function of a positive anchor\'s loss, at the '
               'last epoch with the run\'s last percentile moving average λ (solid), its '
               'monotone envelope (dashed, what `MentorNetWeighter(monotone=True)` uses), and '
               'the losses of the run\'s positives at its last checkpoint on clean and noisy '
               'annotations (`tools/diagnose.py` batches; per condition, the lowest seed whose '
               'run directory still holds its mentor and dump; every DD variant of a seed '
               'uses the same mentor).', '',
               '![mentor curves](mentor_curves.png)', '']
    if figures['ghm']:
        md += ['## GHM gradient density before and after training', '',
               'Histogram of g = |sigmoid(x) - t| over valid elements (30 bins), at '
               'initialisation and after training, of the paper-exact GHM runs (`ghm_paper`; '
               'the `ghm` runs where there are none).', '',
               '![GHM gradient density](ghm_gradient_density.png)', '']
    if figures['ghmr']:
        md += ['## GHM-R: where the box gradient goes', '',
               'Box-delta elements of positive anchors per GHM-R bin of g = |d| / sqrt(d^2 + '
               'mu^2) (bars), and GHM-R\'s mean gradient per element in that bin relative to '
               'the L1 loss of the focal config (markers; 1 = the same push), per FPN level as '
               'the head bins them, without the moving average (`tools/diagnose.py '
               '--ghmr-profile`); one panel per method, its first cell and seed.', '',
               '![GHM-R profile](ghmr_profile.png)', '']
    if figures['cb']:
        md += ['## Class-balanced weights', '',
               '![class-balanced weights per class](cb_class_weights.png)', '']
    readme_blocks = {}
    for section in sections:
        lines, blocks = section(results, table)
        md += lines
        readme_blocks.update(blocks)
    cost = cost_text(results, sorted({settings['iters'], *study_iters}))
    if cost:
        md += ['## Cost', '',
               'Measured per run (CPU seconds of its processes: training with validation, test '
               'of best and last, diagnostics, MentorNet-DD\'s mentor; one thread each). '
               'Extrapolations scale training linearly with iterations and keep the rest.', '',
               cost, '']
    path = os.path.join(out_dir, 'README.md')
    with open(path, 'w') as f:
        f.write('\n'.join(md))
    if readme is not None:
        longer = aggregate(load_results(converged[0])) if converged else None
        update_readme(readme, readme_summary(table, out_dir, os.path.dirname(
            os.path.abspath(readme)), longer, converged[1] if converged else None))
        for markers, block in readme_blocks.items():
            update_readme(readme, block, markers)
    return path


__all__ = ['load_results', 'aggregate', 'mean_std', 'results_table', 'compare_to_focal',
           'gap_recovery', 'regime_table', 'regime_section', 'weight_log_table', 'cost_by_method',
           'extrapolate', 'best_method', 'complete_cells', 'readme_table', 'readme_summary',
           'update_readme', 'draw_figures', 'write_report']
