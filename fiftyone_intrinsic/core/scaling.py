"""The generalization scaling law on measured learning curves (docs/science.md §1).

Konz & Mazurowski (ICLR 2024): the test loss of a model trained on N samples obeys
``log L ≲ −(1/d_data)·log N + log K_F + a``, i.e. ``L = O(K_F · N^(−1/d_data))``, and the
same with the representation's d_repr in place of d_data. This module knows nothing of
models or FiftyOne; it works on numbers:

- :func:`fit_power_law`: least squares of ``log L`` against ``log N`` over every (size,
  seed) run, with a bootstrap over seeds for the intervals.
- :func:`compare_with_law`: the fitted exponent beside ``−1/d_data`` and ``−1/d_repr``, the
  offset beside ``log K_F``.
- :func:`plan_budget`: the N needed for a target loss, with an interval; from the fitted
  curve, or from the law's exponent anchored on the measured losses (pilot mode).
- :func:`predict_exponent`: before labeling, what ``d_data`` alone says about the exponent.

All logarithms are natural; losses are cross-entropies in nats.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import numpy as np
from .settings import MIN_SIZES, FitSettings

__all__ = [
    "FitSettings",
    "PowerLawFit",
    "LawComparison",
    "BudgetPlan",
    "ExponentPrediction",
    "fit_power_law",
    "compare_with_law",
    "plan_budget",
    "predict_exponent",
    "MIN_SIZES",
]


@dataclass(frozen=True)
class PowerLawFit:
    """``log L = offset + exponent · log N``, fitted by least squares.

    Attributes:
        sizes: ``(S,)`` distinct training-set sizes N, ascending.
        losses: ``(S, R)`` test losses (nats), one column per seed.
        exponent: the slope of ``log L`` against ``log N`` (negative when the loss falls).
        exponent_low, exponent_high: its interval at ``confidence``.
        offset: the intercept, ``log L`` extrapolated to N = 1.
        offset_low, offset_high: its interval.
        r_squared: share of the variance of the ``S·R`` values of ``log L`` the line explains.
        residual_std: standard deviation of the residuals of ``log L`` (``S·R − 2`` dof).
        confidence: coverage of the intervals.
        interval_method: ``"bootstrap_seeds"`` (R ≥ 2: the seeds of each size resampled
            with replacement, spread widened by ``sqrt(R/(R−1))·t/z`` for small R) or
            ``"parametric_t"`` (R = 1: Student-t draws around the least-squares line).
        draws: ``(B, S)`` resampled mean ``log L`` per size; every interval and the
            planner's are percentiles over these draws.
    """

    sizes: np.ndarray
    losses: np.ndarray
    exponent: float
    exponent_low: float
    exponent_high: float
    offset: float
    offset_low: float
    offset_high: float
    r_squared: float
    residual_std: float
    confidence: float
    interval_method: str
    draws: np.ndarray

    @property
    def n_seeds(self) -> int:
        """Seeds per size (R)."""
        return int(self.losses.shape[1])

    @property
    def mean_log_loss(self) -> np.ndarray:
        """``(S,)`` mean over seeds of ``log L`` at each size."""
        return np.log(self.losses).mean(axis=1)

    def draw_lines(self) -> Tuple[np.ndarray, np.ndarray]:
        """``(exponents, offsets)``, each ``(B,)``: the line fitted to every draw."""
        return _lines(np.log(self.sizes), self.draws)

    def predict(self, n) -> np.ndarray:
        """Fitted loss (nats) at training-set sizes ``n``."""
        return np.exp(self.offset + self.exponent * np.log(np.asarray(n, dtype=np.float64)))

    def band(self, n) -> Tuple[np.ndarray, np.ndarray]:
        """Pointwise interval of the fitted loss at sizes ``n``: ``(low, high)``."""
        exponents, offsets = self.draw_lines()
        log_n = np.log(np.atleast_1d(np.asarray(n, dtype=np.float64)))
        curves = offsets[:, None] + exponents[:, None] * log_n[None, :]
        low, high = _quantiles(curves, self.confidence)
        return np.exp(low), np.exp(high)

    def as_dict(self) -> dict:
        """JSON values for a stored run."""
        return dict(
            exponent=self.exponent, exponent_low=self.exponent_low, exponent_high=self.exponent_high,
            offset=self.offset, offset_low=self.offset_low, offset_high=self.offset_high,
            r_squared=_json(self.r_squared), residual_std=_json(self.residual_std),
            confidence=self.confidence, interval_method=self.interval_method,
            n_bootstrap=int(self.draws.shape[0]),
        )


@dataclass(frozen=True)
class LawComparison:
    """The fitted curve beside the law's terms.

    Attributes:
        exponent, exponent_low, exponent_high: the fitted exponent and its interval.
        effective_dimension: ``−1 / exponent``, the d that would make the law's exponent
            equal the fit (``nan`` when the loss does not fall).
        d_data, d_data_low, d_data_high: the intrinsic dimension given, and its interval.
        predicted_exponent, predicted_low, predicted_high: ``−1/d_data`` and its interval.
        agreement: ``"within"`` (−1/d_data lies in the fitted interval), ``"steeper"`` (the
            loss falls faster than ``N^(−1/d_data)``: consistent with the bound) or
            ``"shallower"`` (slower than the bound's rate over the measured range).
        d_repr, predicted_exponent_repr, agreement_repr: the same for d_repr.
        k_f, log_k_f: the label sharpness given (1 / feature units) and its log.
        offset: the fitted intercept (``log L`` at N = 1).
        offset_at_predicted: the intercept of the least-squares line of slope ``−1/d_data``.
        constant: ``offset − log K_F``, the law's ``a`` with the fitted slope.
        constant_at_predicted: ``offset_at_predicted − log K_F``: the law's ``a`` on average.
        bound_constant: the smallest ``a`` with ``log L ≤ −(1/d_data)·log N + log K_F + a``
            for every measured run.
    """

    exponent: float
    exponent_low: float
    exponent_high: float
    effective_dimension: float
    d_data: Optional[float] = None
    d_data_low: Optional[float] = None
    d_data_high: Optional[float] = None
    predicted_exponent: Optional[float] = None
    predicted_low: Optional[float] = None
    predicted_high: Optional[float] = None
    agreement: Optional[str] = None
    d_repr: Optional[float] = None
    predicted_exponent_repr: Optional[float] = None
    agreement_repr: Optional[str] = None
    k_f: Optional[float] = None
    log_k_f: Optional[float] = None
    offset: Optional[float] = None
    offset_at_predicted: Optional[float] = None
    constant: Optional[float] = None
    constant_at_predicted: Optional[float] = None
    bound_constant: Optional[float] = None

    def as_dict(self) -> dict:
        """JSON values for a stored run (``None`` for what was not given)."""
        return {name: _json(value) for name, value in self.__dict__.items()}


@dataclass(frozen=True)
class BudgetPlan:
    """Training-set sizes needed to reach target losses.

    Attributes:
        method: ``"fitted"`` (the fitted line) or ``"law"`` (slope ``−1/d_data``, offset
            fitted to the measured losses).
        target_loss: ``(T,)`` target test losses (nats).
        n_needed: ``(T,)`` sizes predicted to reach them (``inf`` when the curve used does
            not fall); below the smallest measured size the target is already met.
        n_low, n_high: ``(T,)`` interval of ``n_needed`` at ``confidence``.
        exponent: the slope used; exponent_low/high its interval.
        extrapolated: ``(T,)`` whether ``n_needed`` lies outside the measured sizes, where
            the power law is an assumption, not a measurement.
        confidence: coverage of the intervals.
    """

    method: str
    target_loss: np.ndarray
    n_needed: np.ndarray
    n_low: np.ndarray
    n_high: np.ndarray
    exponent: float
    exponent_low: float
    exponent_high: float
    extrapolated: np.ndarray
    confidence: float

    def as_dict(self) -> dict:
        """JSON values for a stored run (``None`` for infinite sizes)."""
        return dict(
            method=self.method, confidence=self.confidence, exponent=_json(self.exponent),
            exponent_low=_json(self.exponent_low), exponent_high=_json(self.exponent_high),
            targets=[
                dict(target_loss=float(t), n_needed=_json(n), n_low=_json(lo), n_high=_json(hi),
                     extrapolated=bool(e))
                for t, n, lo, hi, e in zip(
                    self.target_loss, self.n_needed, self.n_low, self.n_high, self.extrapolated
                )
            ],
        )


@dataclass(frozen=True)
class ExponentPrediction:
    """What d_data alone predicts, before any label is bought.

    Attributes:
        d_data, d_data_low, d_data_high: the intrinsic dimension and its interval.
        exponent, exponent_low, exponent_high: ``−1/d_data`` and its interval.
        loss_factor_per_doubling: ``2^(−1/d_data)``, the factor the bound on the loss
            shrinks by each time the labeled set doubles.
        data_factor_per_halving: ``2^d_data``, how many times more labels halve the bound.
    """

    d_data: float
    d_data_low: Optional[float]
    d_data_high: Optional[float]
    exponent: float
    exponent_low: Optional[float]
    exponent_high: Optional[float]
    loss_factor_per_doubling: float
    data_factor_per_halving: float

    def as_dict(self) -> dict:
        return {name: _json(value) for name, value in self.__dict__.items()}


def fit_power_law(
    sizes: Sequence[float],
    losses,
    *,
    n_bootstrap: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> PowerLawFit:
    """Fit ``log L = offset + exponent · log N`` to learning curves.

    Every (size, seed) run counts once (equivalently, with the same seeds at every size,
    the line through the mean ``log L`` of each size). With R ≥ 2 seeds the intervals
    resample whole seeds (each seed's curve across all sizes is one unit, since its nested
    subsets make its losses correlated across sizes) with Student-t widening for R seeds
    (:func:`_seed_bootstrap`); simulated coverage is nominal under independent noise,
    per-seed slopes and per-seed offsets (docs/science.md §7). With one seed, Student-t
    draws around the line with ``S − 2`` degrees of freedom are used instead.

    Args:
        sizes: ``(S,)`` distinct training-set sizes, at least :data:`MIN_SIZES`.
        losses: ``(S,)`` or ``(S, R)`` positive, finite test losses; column r is seed r.
        n_bootstrap (2000): resamples for the intervals.
        confidence (0.95): coverage of the intervals.
        seed (0): seed of the resampling.

    Raises:
        ValueError: fewer than three distinct sizes, repeated or non-positive sizes, a
            shape mismatch, or losses that are not positive and finite.

    >>> sizes = np.array([100, 200, 400, 800])
    >>> losses = 2.0 * sizes[:, None] ** -0.25 * np.array([[1.0, 1.05, 0.95]])
    >>> fit = fit_power_law(sizes, losses)
    >>> round(fit.exponent, 6), round(float(np.exp(fit.offset)), 3)
    (-0.25, 1.998)
    >>> fit.exponent_low <= -0.25 <= fit.exponent_high
    True
    """
    settings = FitSettings(n_bootstrap=n_bootstrap, confidence=confidence, seed=seed)
    sizes, losses = _check_curve(sizes, losses)
    order = np.argsort(sizes)
    sizes, losses = sizes[order], losses[order]
    log_n, log_l = np.log(sizes), np.log(losses)
    n_sizes, n_seeds = log_l.shape
    means = log_l.mean(axis=1)
    (exponent,), (offset,) = _lines(log_n, means[None, :])
    residuals = log_l - (offset + exponent * log_n)[:, None]
    total = ((log_l - log_l.mean()) ** 2).sum()
    dof = n_sizes * n_seeds - 2
    residual_std = math.sqrt((residuals**2).sum() / dof) if dof > 0 else float("nan")
    r_squared = 1.0 - (residuals**2).sum() / total if total > 0 else float("nan")
    rng = np.random.default_rng(settings.seed)
    if n_seeds >= 2:
        draws, method = _seed_bootstrap(log_l, settings, rng), "bootstrap_seeds"
    else:
        draws, method = _parametric_draws(log_n, means, exponent, offset, settings, rng), "parametric_t"
    exponents, offsets = _lines(log_n, draws)
    (exponent_low, offset_low), (exponent_high, offset_high) = _quantiles(
        np.stack([exponents, offsets], axis=1), settings.confidence
    )
    return PowerLawFit(
        sizes=sizes, losses=losses, exponent=float(exponent), exponent_low=float(exponent_low),
        exponent_high=float(exponent_high), offset=float(offset), offset_low=float(offset_low),
        offset_high=float(offset_high), r_squared=float(r_squared), residual_std=residual_std,
        confidence=settings.confidence, interval_method=method, draws=draws,
    )


def compare_with_law(
    fit: PowerLawFit,
    *,
    d_data: Optional[float] = None,
    d_data_interval: Optional[Tuple[float, float]] = None,
    d_repr: Optional[float] = None,
    k_f: Optional[float] = None,
) -> LawComparison:
    """Put the fitted exponent and offset beside the law's ``−1/d`` and ``log K_F``.

    Args:
        fit: a :class:`PowerLawFit`.
        d_data (None): intrinsic dimension of the training images (same preprocessing).
        d_data_interval (None): its interval ``(low, high)``, e.g. the bootstrap one.
        d_repr (None): intrinsic dimension of the trained model's representation.
        k_f (None): label sharpness of the training images (1 / feature units); the
            constant ``a`` depends on the preprocessing K_F was measured in.

    >>> sizes = np.array([100, 200, 400, 800])
    >>> fit = fit_power_law(sizes, 3.0 * sizes[:, None] ** -0.1 * np.array([[1.0, 1.02]]))
    >>> law = compare_with_law(fit, d_data=10.0, k_f=0.5)
    >>> law.predicted_exponent, law.agreement, round(law.effective_dimension, 3)
    (-0.1, 'within', 10.0)
    >>> round(law.constant_at_predicted, 4) == round(math.log(3.0 * 1.01) - math.log(0.5), 4)
    True
    """
    comparison = dict(
        exponent=fit.exponent, exponent_low=fit.exponent_low, exponent_high=fit.exponent_high,
        effective_dimension=-1.0 / fit.exponent if fit.exponent < 0 else float("nan"),
        offset=fit.offset,
    )
    if d_data is not None:
        d_data = _positive(d_data, "d_data")
        low, high = _interval(d_data_interval, d_data, "d_data_interval")
        predicted = -1.0 / d_data
        comparison.update(
            d_data=d_data, d_data_low=low, d_data_high=high, predicted_exponent=predicted,
            predicted_low=None if low is None else -1.0 / low,
            predicted_high=None if high is None else -1.0 / high,
            agreement=_agreement(fit, predicted),
            offset_at_predicted=float(np.mean(fit.mean_log_loss - predicted * np.log(fit.sizes))),
        )
    if d_repr is not None:
        d_repr = _positive(d_repr, "d_repr")
        comparison.update(
            d_repr=d_repr, predicted_exponent_repr=-1.0 / d_repr,
            agreement_repr=_agreement(fit, -1.0 / d_repr),
        )
    if k_f is not None and math.isfinite(k_f):
        log_k_f = math.log(_positive(k_f, "k_f"))
        comparison.update(k_f=float(k_f), log_k_f=log_k_f, constant=fit.offset - log_k_f)
        if d_data is not None:
            comparison["constant_at_predicted"] = comparison["offset_at_predicted"] - log_k_f
            slack = np.log(fit.losses) + np.log(fit.sizes)[:, None] / d_data
            comparison["bound_constant"] = float(slack.max()) - log_k_f
    return LawComparison(**comparison)


def plan_budget(
    fit: PowerLawFit,
    target_loss,
    *,
    method: str = "fitted",
    d_data: Optional[float] = None,
    d_data_interval: Optional[Tuple[float, float]] = None,
) -> BudgetPlan:
    """The training-set size needed to reach each target loss, with an interval.

    ``method="fitted"`` solves the fitted line for N (each resampled line gives one N;
    the interval is their percentiles). ``method="law"`` takes the law's slope
    ``−1/d_data`` and fits only the offset to the measured losses: the pilot mode, where a
    few small sizes pin the level and d_data, measured on the unlabeled pool, the slope.
    Its interval also spans ``d_data_interval``. Either way the answer never increases
    when the target loss increases.

    Args:
        fit: a :class:`PowerLawFit` (from a full learning curve or a small pilot).
        target_loss: a positive loss (nats) or a sequence of them.
        method ("fitted"): ``"fitted"`` or ``"law"``.
        d_data (None): needed for ``"law"``.
        d_data_interval (None): ``(low, high)`` of d_data, widens the ``"law"`` interval.

    >>> sizes = np.array([100, 200, 400, 800])
    >>> fit = fit_power_law(sizes, sizes[:, None] ** -0.5 * np.array([[1.0, 1.1, 0.9]]))
    >>> plan = plan_budget(fit, [0.05, 0.02])
    >>> [round(float(n)) for n in plan.n_needed], plan.extrapolated.tolist()
    ([397, 2483], [False, True])
    >>> bool(plan.n_low[1] <= plan.n_needed[1] <= plan.n_high[1])
    True
    """
    if method not in ("fitted", "law"):
        raise ValueError(f"Unknown planning method {method!r}; use 'fitted' or 'law'.")
    targets = np.atleast_1d(np.asarray(target_loss, dtype=np.float64))
    if targets.ndim != 1 or targets.size == 0 or not np.all(np.isfinite(targets) & (targets > 0)):
        raise ValueError(
            f"Target losses must be positive finite numbers (nats); got {np.asarray(target_loss).tolist()}."
        )
    log_n = np.log(fit.sizes)
    log_t = np.log(targets)
    if method == "fitted":
        exponents, offsets = fit.draw_lines()
        needed = _solve(fit.offset, fit.exponent, log_t)
        candidates = [_solve(offsets, exponents, log_t)]
        exponent, low, high = fit.exponent, fit.exponent_low, fit.exponent_high
    else:
        if d_data is None:
            raise ValueError("The 'law' method needs d_data (the intrinsic dimension of the training images).")
        d_data = _positive(d_data, "d_data")
        d_low, d_high = _interval(d_data_interval, d_data, "d_data_interval")
        dimensions = [d for d in (d_data, d_low, d_high) if d is not None]
        candidates = []
        for d in dimensions:
            offsets = (fit.draws + log_n / d).mean(axis=1)
            candidates.append(_solve(offsets, np.full_like(offsets, -1.0 / d), log_t))
        offset = float(np.mean(fit.mean_log_loss + log_n / d_data))
        needed = _solve(offset, -1.0 / d_data, log_t)
        exponent = -1.0 / d_data
        low = -1.0 / d_low if d_low is not None else exponent
        high = -1.0 / d_high if d_high is not None else exponent
    bounds = [_quantiles(c, fit.confidence, exact=True) for c in candidates]
    n_low = np.min([b[0] for b in bounds], axis=0)
    n_high = np.max([b[1] for b in bounds], axis=0)
    extrapolated = (needed < fit.sizes[0]) | (needed > fit.sizes[-1])
    return BudgetPlan(
        method=method, target_loss=targets, n_needed=needed, n_low=n_low, n_high=n_high,
        exponent=float(exponent), exponent_low=float(low), exponent_high=float(high),
        extrapolated=extrapolated, confidence=fit.confidence,
    )


def predict_exponent(
    d_data: float, d_data_interval: Optional[Tuple[float, float]] = None
) -> ExponentPrediction:
    """The scaling exponent d_data predicts, from unlabeled images alone.

    The law bounds the loss by ``N^(−1/d_data)``: halving that bound takes ``2^d_data``
    times more labels. Measured curves often fall faster over small N; the prediction is
    the rate the bound guarantees, for comparing datasets before labeling either.

    >>> p = predict_exponent(10.0, (9.0, 11.0))
    >>> p.exponent, round(p.exponent_low, 4), round(p.exponent_high, 4), p.data_factor_per_halving
    (-0.1, -0.1111, -0.0909, 1024.0)
    """
    d_data = _positive(d_data, "d_data")
    low, high = _interval(d_data_interval, d_data, "d_data_interval")
    return ExponentPrediction(
        d_data=d_data, d_data_low=low, d_data_high=high, exponent=-1.0 / d_data,
        exponent_low=None if low is None else -1.0 / low,
        exponent_high=None if high is None else -1.0 / high,
        loss_factor_per_doubling=2.0 ** (-1.0 / d_data), data_factor_per_halving=2.0**d_data,
    )


def _check_curve(sizes, losses):
    sizes = np.asarray(sizes, dtype=np.float64).reshape(-1)
    losses = np.asarray(losses, dtype=np.float64)
    if losses.ndim == 1:
        losses = losses[:, None]
    if losses.ndim != 2 or losses.shape[0] != sizes.shape[0] or losses.shape[1] == 0:
        raise ValueError(
            f"losses must have shape (S,) or (S, R) with S = {sizes.shape[0]} sizes; got "
            f"{np.asarray(losses).shape}."
        )
    if not np.all(np.isfinite(sizes) & (sizes > 0)):
        raise ValueError(f"Training-set sizes must be positive; got {sizes.tolist()}.")
    distinct = np.unique(sizes)
    if distinct.size < MIN_SIZES:
        raise ValueError(
            f"A power law needs at least {MIN_SIZES} distinct training-set sizes; got "
            f"{distinct.size} ({distinct.tolist()}). Add sizes."
        )
    if distinct.size != sizes.size:
        raise ValueError(
            f"Sizes {sizes.tolist()} repeat; give each size once, with one column of losses per seed."
        )
    bad = np.argwhere(~(np.isfinite(losses) & (losses > 0)))
    if bad.size:
        where = [(float(sizes[i]), int(r)) for i, r in bad[:5]]
        raise ValueError(
            f"{len(bad)} losses are not positive and finite (size, seed: {where}); "
            "log L is undefined there. Check those runs."
        )
    return sizes, losses


def _lines(log_n: np.ndarray, means: np.ndarray):
    """Least-squares slopes and intercepts of each row of ``means`` (B, S) on ``log_n``."""
    centered = log_n - log_n.mean()
    slopes = (means - means.mean(axis=1, keepdims=True)) @ centered / (centered @ centered)
    return slopes, means.mean(axis=1) - slopes * log_n.mean()


def _seed_bootstrap(log_l: np.ndarray, settings: FitSettings, rng) -> np.ndarray:
    """Draws of the mean curve that resample whole seeds: a seed's runs at all sizes share
    its nested subsets and its initialisation, so its losses are correlated across sizes,
    and the seed (not the single run) is the unit of resampling.

    Each draw is ``mean + Σ_r z_r (curve_r − mean) / sqrt(R (R − 1)) · sqrt((R − 1) / χ²)``
    with ``z ~ N(0, 1)`` per seed and ``χ²`` of ``R − 1`` degrees of freedom: a Gaussian
    multiplier bootstrap over seeds, widened to Student's t because R seeds estimate the
    seed-to-seed spread roughly. Every linear summary of the draws (the slope, the offset)
    is then distributed as ``estimate + t_{R−1} · its standard error over seeds``, the exact
    interval when the per-seed lines vary normally, whatever the correlation across sizes.
    """
    n_sizes, n_seeds = log_l.shape
    means = log_l.mean(axis=1)
    deviations = log_l - means[:, None]  # (S, R): each seed's curve around the mean curve
    z = rng.standard_normal((settings.n_bootstrap, n_seeds))
    t_scale = np.sqrt((n_seeds - 1) / rng.chisquare(n_seeds - 1, size=(settings.n_bootstrap, 1)))
    return means + (z @ deviations.T) / math.sqrt(n_seeds * (n_seeds - 1)) * t_scale


def _parametric_draws(log_n, means, exponent, offset, settings: FitSettings, rng) -> np.ndarray:
    n_sizes = log_n.shape[0]
    fitted = offset + exponent * log_n
    dof = n_sizes - 2  # at least 1: fits need three sizes
    sigma = math.sqrt(((means - fitted) ** 2).sum() / dof)
    normal = rng.standard_normal((settings.n_bootstrap, n_sizes))
    scale = np.sqrt(dof / rng.chisquare(dof, size=(settings.n_bootstrap, 1)))
    return fitted + sigma * normal * scale


def _solve(offsets, exponents, log_targets: np.ndarray) -> np.ndarray:
    """N with ``offset + exponent·log N = log target``; ``inf`` where the line does not fall."""
    offsets = np.atleast_1d(np.asarray(offsets, dtype=np.float64))[:, None]
    exponents = np.atleast_1d(np.asarray(exponents, dtype=np.float64))[:, None]
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        sizes = np.exp((log_targets[None, :] - offsets) / exponents)
    sizes = np.where(exponents < 0, sizes, np.inf)
    return sizes[0] if sizes.shape[0] == 1 else sizes


def _quantiles(values: np.ndarray, confidence: float, exact: bool = False):
    """Lower and upper percentiles over axis 0; ``exact`` picks order statistics, so
    infinite draws stay infinite instead of turning into nan."""
    tail = (1.0 - confidence) / 2
    method = "inverted_cdf" if exact else "linear"
    return (
        np.quantile(values, tail, axis=0, method=method),
        np.quantile(values, 1.0 - tail, axis=0, method=method),
    )


def _agreement(fit: PowerLawFit, predicted: float) -> str:
    if fit.exponent_low <= predicted <= fit.exponent_high:
        return "within"
    return "steeper" if fit.exponent_high < predicted else "shallower"


def _positive(value, name: str) -> float:
    value = float(value)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive number; got {value}.")
    return value


def _interval(interval, center: float, name: str):
    """``(low, high)`` checked to bracket ``center``; ``(None, None)`` when not given or
    not computed (None or nan, e.g. an estimate stored without bootstrap)."""
    if interval is None or any(v is None for v in interval):
        return None, None
    low, high = (float(v) for v in interval)
    if math.isnan(low) or math.isnan(high):
        return None, None
    if not 0 < low <= center <= high or math.isinf(high):
        raise ValueError(
            f"{name} must be (low, high) with 0 < low <= {center:g} <= high, finite; got {tuple(interval)}."
        )
    return low, high


def _json(value):
    if value is None or isinstance(value, str):
        return value
    value = float(value)
    return value if math.isfinite(value) else None
