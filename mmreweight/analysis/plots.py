"""Matplotlib figures of the study and of the per-anchor diagnostics (written to files)."""
from typing import Any, Dict, List, Mapping, Sequence, Tuple

import matplotlib

matplotlib.use('Agg')  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from mmreweight.models.reweight_retina_head import CLEAN_POSITIVE, NOISY_POSITIVE  # noqa: E402

#: loss below this is drawn at it (log axis)
LOSS_FLOOR = 1e-6


def weight_vs_loss(ax, dump: Mapping[str, np.ndarray], title: str = '',
                   max_negatives: int = 3000, seed: int = 0) -> None:
    """Scatter of per-anchor weight against loss: a sample of negatives in grey, positives
    matched to clean annotations in blue and to noisy ones in red."""
    loss = np.maximum(dump['loss'], LOSS_FLOOR)
    weight, pos, noisy = dump['weight'], dump['pos'].astype(bool), dump['noisy']
    neg = np.flatnonzero(~pos)
    if len(neg) > max_negatives:
        neg = np.random.default_rng(seed).choice(neg, max_negatives, replace=False)
    ax.scatter(loss[neg], weight[neg], s=2, c='0.7', alpha=0.4, label='negative (sample)',
               rasterized=True)
    groups = [('positive, clean annotation', pos & (noisy == CLEAN_POSITIVE), 'tab:blue'),
              ('positive, noisy annotation', pos & (noisy == NOISY_POSITIVE), 'tab:red'),
              ('positive, no flag', pos & (noisy != CLEAN_POSITIVE) & (noisy != NOISY_POSITIVE),
               'tab:green')]
    for label, mask, colour in groups:
        if mask.any():
            ax.scatter(loss[mask], weight[mask], s=4, c=colour, alpha=0.5,
                       label=f'{label} ({int(mask.sum())})', rasterized=True)
    ax.set_xscale('log')
    ax.set_xlabel('per-anchor loss')
    ax.set_ylabel('weight')
    ax.set_title(title, fontsize=9)


def gradient_density(ax, curves: Sequence[Tuple[str, np.ndarray]], edges: np.ndarray,
                     title: str = '', normalise: bool = True,
                     xlabel: str = r'gradient norm $g = |\sigma(x) - t|$') -> None:
    """Step curves of gradient-norm histograms (``curves``: label, counts) on a log axis; as
    fractions of each curve's total when ``normalise``."""
    low = np.inf
    for label, counts in curves:
        counts = np.asarray(counts, dtype=float)
        total = counts.sum()
        if total == 0:
            continue
        values = counts / total if normalise else counts
        low = min(low, values[values > 0].min())
        ax.stairs(np.where(values > 0, values, np.nan), edges, label=label)  # empty bins: gaps
    ax.set_yscale('log')
    if np.isfinite(low):
        ax.set_ylim(bottom=low / 2)
    ax.set_xlabel(xlabel)
    ax.set_ylabel('fraction of valid elements' if normalise else 'elements')
    ax.set_title(title, fontsize=9)


def ghmr_profile(ax, profiles: Sequence[Tuple[str, Mapping]], title: str = '') -> None:
    """GHM-R's bins (:meth:`AnchorDiagnostics.ghmr_profile`): share of box-delta elements per
    bin (bars, left axis) and GHM-R's mean gradient per element relative to L1's (markers,
    right axis, log), one colour per profile (e.g. before and after training)."""
    right = ax.twinx()
    width = 0.8 / max(len(profiles), 1)
    for i, (label, prof) in enumerate(profiles):
        x = np.arange(len(prof['bin_frac'])) + (i - (len(profiles) - 1) / 2) * width
        bars = ax.bar(x, prof['bin_frac'], width, alpha=0.6, label=f'{label}: share')
        right.plot(x, prof['grad_ratio'], 'o-', color=bars.patches[0].get_facecolor()[:3],
                   label=f'{label}: gradient / L1')
    right.axhline(1.0, color='grey', lw=0.8, ls=':')
    right.set_yscale('log')
    right.set_ylabel('GHM-R gradient / L1 gradient per element')
    bins = len(profiles[0][1]['bin_frac']) if profiles else 10
    ax.set_xticks(range(bins), [f'{j / bins:.1f}' for j in range(bins)], fontsize=7)
    ax.set_xlabel(r'GHM-R bin (lower edge of $g = |d| / \sqrt{d^2 + \mu^2}$)')
    ax.set_ylabel('share of box-delta elements')
    handles = ax.get_legend_handles_labels()
    more = right.get_legend_handles_labels()
    ax.legend(handles[0] + more[0], handles[1] + more[1], fontsize=7, loc='upper left')
    ax.set_title(title, fontsize=9)


def class_weights(ax, classes: Sequence[str], series: Sequence[Tuple[str, np.ndarray]],
                  title: str = '') -> None:
    """Grouped bars of per-class weights, one group per class, one bar per series."""
    x = np.arange(len(classes))
    width = 0.8 / max(len(series), 1)
    for i, (label, values) in enumerate(series):
        ax.bar(x + (i - (len(series) - 1) / 2) * width, values, width, label=label)
    ax.set_xticks(x, classes, rotation=45 if max(len(c) for c in classes) > 2 else 0,
                  ha='right' if max(len(c) for c in classes) > 2 else 'center', fontsize=8)
    ax.axhline(1.0, color='0.5', lw=0.8, ls='--')
    ax.set_ylabel('class-balanced weight')
    ax.set_title(title, fontsize=9)


def grouped_bars(ax, groups: Sequence[str], series: Sequence[str],
                 means: Mapping[Tuple[str, str], float], stds: Mapping[Tuple[str, str], float],
                 ylabel: str, title: str = '') -> None:
    """Bars of ``means[(group, series)]`` with ``stds`` as error bars (missing cells empty)."""
    x = np.arange(len(groups))
    width = 0.8 / max(len(series), 1)
    for i, name in enumerate(series):
        m = [means.get((g, name), np.nan) for g in groups]
        s = [stds.get((g, name), np.nan) for g in groups]
        s = [np.nan if v is None else v for v in s]  # one seed: no error bar
        ax.bar(x + (i - (len(series) - 1) / 2) * width, m, width,
               yerr=None if np.isnan(s).all() else s, capsize=2, label=name)
    ax.set_xticks(x, groups)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)


def mentor_curve(ax, loss: np.ndarray, v: np.ndarray, envelope: np.ndarray,
                 clean_losses: np.ndarray, noisy_losses: np.ndarray, title: str = '') -> None:
    """A mentor's weight v(loss) (solid) and its monotone envelope (dashed) over a loss grid, on
    histograms of the losses of positives on clean (blue) and noisy (red) annotations."""
    hist_ax = ax.twinx()
    bins = np.linspace(0, loss[-1], 41)
    for losses, colour, label in ((clean_losses, 'tab:blue', 'clean'),
                                  (noisy_losses, 'tab:red', 'noisy')):
        hist_ax.hist(np.clip(losses, 0, loss[-1]), bins, color=colour, alpha=0.3,
                     label=f'positives, {label} annotation ({len(losses)})')
    hist_ax.set_ylabel('positive anchors')
    ax.plot(loss, v, color='k', label='mentor v')
    ax.plot(loss, envelope, color='k', ls='--', label='monotone envelope')
    ax.set_zorder(hist_ax.get_zorder() + 1)  # curves over the bars
    ax.patch.set_visible(False)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel('per-anchor loss')
    ax.set_ylabel('mentor weight v')
    ax.set_title(title, fontsize=8)
    ax.legend(fontsize=6, loc='upper center')
    hist_ax.legend(fontsize=6, loc='center right')


def ghm_density_figure(snapshots: Mapping[str, Mapping], path: str) -> np.ndarray:
    """One panel per GHM loss of :class:`~mmreweight.engine.GHMStateHook`'s snapshots (each a
    list of per-level fractions), saved to ``path``; returns the figure as an RGB array."""
    fig, axes = subplots(len(snapshots), ncols=2)
    for ax, (name, entry) in zip(axes, snapshots.items()):
        edges = np.asarray(entry['edges'], dtype=float)
        edges[-1] = min(edges[-1], 1.0)  # GHM-R's last edge (1e3) stands for "up to 1"
        curves = [(f'{when}, level {level}', np.asarray(row))
                  for when, rows in entry.items() if when != 'edges'
                  for level, row in enumerate(rows) if sum(row) > 0]
        xlabel = (r'gradient norm $g = |\sigma(x) - t|$' if name.endswith('cls')
                  else r'gradient norm $g = |d| / \sqrt{d^2 + \mu^2}$')
        gradient_density(ax, curves, edges, title=name, xlabel=xlabel)
        ax.legend(fontsize=6)
    fig.tight_layout()
    fig.canvas.draw()
    image = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    save(fig, path)
    return image


def save(fig, path: str) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def colours(names: Sequence[str]) -> Dict[str, Any]:
    """One colour per name, in order (tab10, then tab20's lighter shades): the same series keeps
    its colour across the panels of a figure."""
    palette = list(plt.get_cmap('tab10').colors) + list(plt.get_cmap('tab20').colors[1::2])
    return {name: palette[i % len(palette)] for i, name in enumerate(names)}


def subplots(n: int, ncols: int = 3, size: Tuple[float, float] = (4.2, 3.4)):
    """A figure with ``n`` axes in rows of ``ncols`` (unused axes hidden); (fig, flat axes)."""
    ncols = max(1, min(ncols, n))
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size[0] * ncols, size[1] * nrows),
                             squeeze=False)
    flat: List = list(axes.ravel())
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


__all__ = ['weight_vs_loss', 'gradient_density', 'ghm_density_figure', 'class_weights',
           'grouped_bars', 'mentor_curve', 'save', 'subplots', 'colours', 'label_issue_gallery']


def label_issue_gallery(crops: Sequence[Tuple[np.ndarray, Sequence[float], str]], path: str,
                        ncols: int = 6, margin: float = 0.5) -> str:
    """A grid of boxes on their image crops, written to ``path``.

    ``crops``: (image (H, W[, 3]) array, box ``[x, y, w, h]`` in its pixels, title) per panel;
    each panel shows the box widened by ``margin`` times its size on every side (clipped to the
    image), the box in red. An empty ``crops`` writes a panel saying so."""
    from matplotlib.patches import Rectangle
    n = max(len(crops), 1)
    ncols = min(ncols, n)
    nrows = (n + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.2 * ncols, 2.4 * nrows), squeeze=False)
    for ax in axes.reshape(-1):
        ax.axis('off')
    if not crops:
        axes[0, 0].text(0.5, 0.5, 'no flagged box', ha='center', va='center')
    for ax, (image, box, title) in zip(axes.reshape(-1), crops):
        x, y, w, h = (float(v) for v in box)
        x0, y0 = max(int(x - margin * w), 0), max(int(y - margin * h), 0)
        x1 = min(int(np.ceil(x + w + margin * w)), image.shape[1])
        y1 = min(int(np.ceil(y + h + margin * h)), image.shape[0])
        crop = image[y0:y1, x0:x1]
        ax.imshow(crop, cmap='gray' if crop.ndim == 2 else None,
                  extent=(x0, x1, y1, y0), interpolation='nearest')
        ax.add_patch(Rectangle((x, y), w, h, fill=False, edgecolor='red', lw=1.2))
        ax.set_title(title, fontsize=8)
    return save(fig, path)
