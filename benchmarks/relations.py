"""Correlations across datasets with a bootstrap over the datasets, and the figures of
``benchmarks/paper_relations.py`` (docs/science.md §8).

numpy for the statistics; matplotlib (a dependency of FiftyOne) for the figures, imported
only when a figure is drawn.
"""

from __future__ import annotations

import pathlib
from dataclasses import dataclass

import numpy as np

__all__ = ["Correlation", "correlate", "draw_dloss", "draw_rhat", "draw_exponent"]


@dataclass(frozen=True)
class Correlation:
    """One correlation coefficient of ``y`` on ``x`` across datasets.

    Attributes:
        kind: ``"pearson"`` or ``"spearman"``.
        estimate: the coefficient on all n datasets (``nan`` when x or y is constant).
        low, high: percentile interval at ``confidence`` over ``n_resamples`` resamples of
            the datasets with replacement.
        n_resamples: resamples drawn.
        n_degenerate: resamples left out because x or y was constant in them (a
            coefficient is undefined there); the interval is over the others.
        n: datasets.
        confidence: coverage asked for.
    """

    kind: str
    estimate: float
    low: float
    high: float
    n_resamples: int
    n_degenerate: int
    n: int
    confidence: float

    def text(self) -> str:
        return f"{self.estimate:+.2f} [{self.low:+.2f}, {self.high:+.2f}]"


def _ranks(values: np.ndarray) -> np.ndarray:
    """Ranks along the last axis, ties averaged."""
    from scipy.stats import rankdata

    return rankdata(values, axis=-1)


def _pearson_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson r of each row of ``x`` with the same row of ``y``; nan where one is constant."""
    xc = x - x.mean(axis=-1, keepdims=True)
    yc = y - y.mean(axis=-1, keepdims=True)
    denominator = np.sqrt((xc**2).sum(axis=-1) * (yc**2).sum(axis=-1))
    numerator = (xc * yc).sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = numerator / denominator
    # a constant row has zero spread up to rounding: no coefficient
    spread = np.minimum(np.ptp(x, axis=-1) / (np.abs(x).max(axis=-1) + 1e-300),
                        np.ptp(y, axis=-1) / (np.abs(y).max(axis=-1) + 1e-300))
    return np.where(spread > 1e-12, np.clip(r, -1.0, 1.0), np.nan)


def correlate(x, y, *, n_resamples: int = 10_000, confidence: float = 0.95, seed: int = 0):
    """Pearson and Spearman r of ``y`` on ``x`` with percentile intervals from resampling
    the pairs (datasets) with replacement.

    Returns ``{"pearson": Correlation, "spearman": Correlation}``. Pairs with a non-finite
    value are left out first.

    >>> x = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    >>> out = correlate(x, x**3, n_resamples=500)
    >>> round(out["spearman"].estimate, 6), out["pearson"].low <= out["pearson"].estimate <= out["pearson"].high
    (1.0, True)
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    n = x.size
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, n, size=(n_resamples, n)) if n else np.zeros((n_resamples, 0), np.int64)
    out = {}
    for kind in ("pearson", "spearman"):
        transform = (lambda v: v) if kind == "pearson" else _ranks
        estimate = float(_pearson_rows(transform(x)[None, :], transform(y)[None, :])[0]) if n >= 3 else float("nan")
        draws = _pearson_rows(transform(x[picks]), transform(y[picks])) if n >= 3 else np.full(n_resamples, np.nan)
        valid = draws[np.isfinite(draws)]
        tail = (1 - confidence) / 2
        low, high = (np.quantile(valid, [tail, 1 - tail]) if valid.size else (np.nan, np.nan))
        # the percentile interval of a bounded statistic can miss its own estimate when the
        # resamples pile up at ±1; widen it to hold the estimate, as the table promises
        if np.isfinite(estimate) and valid.size:
            low, high = min(low, estimate), max(high, estimate)
        out[kind] = Correlation(kind, estimate, float(low), float(high), n_resamples,
                                int(n_resamples - valid.size), n, confidence)
    return out


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


COLORS = {"medical": "tab:red", "natural": "tab:blue"}


def _label_points(ax, xs, ys, names):
    for x, y, name in zip(xs, ys, names):
        ax.annotate(name, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)


def _rug(ax, values, domains, label):
    """The paper's values of x as ticks along the bottom of the axes."""
    for value, domain in zip(values, domains):
        ax.axvline(value, ymin=0, ymax=0.04, color=COLORS[domain], alpha=0.6, lw=2)
    ax.plot([], [], "|", color="gray", markersize=10, label=label)


def _title(text, relation):
    return (f"{text}\nours: Pearson {relation['pearson'].text()}, "
            f"Spearman {relation['spearman'].text()} (95%, {relation['pearson'].n_resamples} resamples of sets)")


def draw_dloss(rows, paper, relation, paper_relation, path: pathlib.Path) -> pathlib.Path:
    """FGSM Δloss against K_F: ours (filled, error bars: sd over seeds) and the paper's
    read values (hollow, right axis: its models are ResNets/VGGs at 224 px)."""
    plt = _figure()
    fig, ax = plt.subplots(figsize=(8, 5.5))
    right = ax.twinx()
    for row in rows:
        ax.errorbar(row["k_f"] * 1e4, row["delta_loss"], yerr=row["delta_loss_sd"], fmt="o",
                    color=COLORS[row["domain"]], capsize=3)
    _label_points(ax, [r["k_f"] * 1e4 for r in rows], [r["delta_loss"] for r in rows], [r["name"] for r in rows])
    for ref in paper:
        right.plot(ref.k_f * 1e4, ref.delta_loss, "s", mfc="none", color=COLORS[ref.domain], alpha=0.7)
    _label_points(right, [r.k_f * 1e4 for r in paper], [r.delta_loss for r in paper], [r.name for r in paper])
    ax.plot([], [], "o", color="gray", label="ours: small CNN, 28/32 px (left axis)")
    ax.plot([], [], "s", mfc="none", color="gray", label=f"paper, read values (right axis); "
            f"Pearson {paper_relation['pearson'].text()}")
    right.set_ylabel("Δloss under FGSM (paper)")
    return _finish(
        plt, fig, ax, path,
        x_label="K_F (×1e-4; 224×224, [0, 255], per-image max: the paper's preprocessing)",
        y_label="Δloss under FGSM ε = 2/255 (ours)",
        title=_title("Attack susceptibility against label sharpness (red: medical, blue: natural)", relation),
        legend="upper left",
    )


def draw_rhat(rows, paper, relation, path: pathlib.Path) -> pathlib.Path:
    """R̂ against K_F, log–log: ours, with the paper's K_F values as ticks on the x axis
    (the paper reports no R̂)."""
    plt = _figure()
    fig, ax = plt.subplots(figsize=(8, 5.5))
    for row in rows:
        ax.errorbar(row["k_f"] * 1e4, row["r_hat"], yerr=row["r_hat_sd"], fmt="o",
                    color=COLORS[row["domain"]], capsize=3)
    _label_points(ax, [r["k_f"] * 1e4 for r in rows], [r["r_hat"] for r in rows], [r["name"] for r in rows])
    _rug(ax, [r.k_f * 1e4 for r in paper], [r.domain for r in paper], "paper's K_F values (no R̂ reported)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    return _finish(
        plt, fig, ax, path,
        x_label="K_F (×1e-4; the paper's preprocessing)",
        y_label="R̂: mean smallest flipping PGD-L2 perturbation ([0, 1] pixels)",
        title=_title("Robust radius against label sharpness; the paper's claim: log R̂ ≳ −log K_F + b", relation),
        legend="upper right",
    )


def _finish(plt, fig, ax, path: pathlib.Path, x_label: str, y_label: str, title: str, legend: str) -> pathlib.Path:
    """Label the axes, place the legend, title the figure, write it to ``path`` (PNG) and
    close it; returns ``path``."""
    ax.set_xlabel(x_label)
    ax.set_ylabel(y_label)
    ax.legend(loc=legend, fontsize=7)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _bars(center, low, high):
    """Error-bar lengths below and above ``center``; nan or infinite ends are drawn as 0."""
    below, above = center - low, high - center
    return [[below if np.isfinite(below) else 0.0], [above if np.isfinite(above) else 0.0]]


def draw_exponent(rows, paper, relation, path: pathlib.Path) -> pathlib.Path:
    """Fitted scaling exponent against −1/d_data with both intervals, the line y = x (the
    law's slope) and the paper's −1/d_data values as ticks on the x axis."""
    plt = _figure()
    fig, ax = plt.subplots(figsize=(8, 5.5))
    for row in rows:
        x = -1 / row["d_data"]
        # an interval reaching d <= 0 (few points, few groups) has no −1/d end: drawn open
        low = -1 / row["d_low"] if row["d_low"] > 0 else -np.inf
        xerr = _bars(x, low, -1 / row["d_high"])
        yerr = _bars(row["exponent"], row["exponent_low"], row["exponent_high"])
        ax.errorbar(x, row["exponent"], xerr=xerr, yerr=yerr, fmt="o", color=COLORS[row["domain"]], capsize=3)
    _label_points(ax, [-1 / r["d_data"] for r in rows], [r["exponent"] for r in rows], [r["name"] for r in rows])
    xs = [-1 / r["d_data"] for r in rows] + [-1 / r.d_data for r in paper]
    lo, hi = min(xs), max(xs)  # the line over the x range only: it no longer stretches the x axis
    ax.plot([lo, hi], [lo, hi], "k--", lw=1, label="y = x: exponent = −1/d_data (the law's rate)")
    _rug(ax, [-1 / r.d_data for r in paper], [r.domain for r in paper], "paper's −1/d_data values")
    return _finish(
        plt, fig, ax, path,
        x_label="−1/d_data (MLE k = 20 at the paper's preprocessing)",
        y_label="fitted exponent of log L on log N (95% interval over seeds)",
        title=_title("Learning-curve exponent against −1/d_data", relation),
        legend="upper left",
    )
