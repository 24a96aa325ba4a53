"""Intrinsic dimension d_data of a point cloud (docs/science.md §3).

Exact duplicates are removed first (and counted), near-duplicates optionally merged
(:mod:`.near_duplicates`), the exact nearest neighbours found (:mod:`.neighbors`), and the
registered estimator (:mod:`.estimators`: ``mle``, ``mle_mg``, ``twonn``) turns their
distances into a global estimate, per-sample local estimates, an interval from disjoint
subsamples (:mod:`.intervals`) and an ID-versus-k curve.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from .estimators import get_estimator
from .intervals import student_interval, subsample_error
from .near_duplicates import merge_near_duplicates
from .neighbors import Progress, as_feature_matrix, find_duplicates, nearest_neighbors
from .settings import DEFAULT_K, DimensionSettings

__all__ = ["DimensionResult", "intrinsic_dimension", "estimate_dimension", "estimate_from_distances"]


@dataclass(frozen=True)
class DimensionResult:
    """An intrinsic-dimension estimate.

    Attributes:
        dimension: the global estimate (dimensionless, degrees of freedom).
        local: ``(N,)`` float64 per input row; duplicates share their distinct row's value.
        ci_low, ci_high: interval of the estimator's expected value at this N, at
            ``confidence``, from disjoint subsamples (:mod:`.intervals`; ``nan`` when
            ``interval_splits`` is 0 or the points are too few for two groups).
        confidence: coverage of the interval.
        n_samples: rows given (N).
        n_duplicates: rows that repeated an earlier row exactly; removed before estimating.
        n_near_duplicates: further distinct rows merged into a kept row because they lay
            within ``duplicate_distance`` of it (0 when the tolerance is 0).
        duplicate_tolerance: the merging distance as a fraction of the median
            nearest-neighbour distance of the distinct rows.
        duplicate_distance: the merging distance in feature units (0.0 when the
            tolerance is 0).
        estimator: a name of :data:`~fiftyone_intrinsic.core.estimators.ESTIMATORS`.
        k: neighbours per point used (2 for TwoNN).
        discard_fraction: TwoNN's discarded fraction (``None`` for estimators that do
            not read it).
        duplicate_groups: row indices of each set of identical rows (arrays of ≥ 2).
        by_k: ``[(k', d)]`` the same estimator with k' = 3 … k neighbours, from the same
            neighbour lists (empty for estimators without k, such as TwoNN): the
            ID-versus-k curve.
    """

    dimension: float
    local: np.ndarray
    ci_low: float
    ci_high: float
    confidence: float
    n_samples: int
    n_duplicates: int
    n_near_duplicates: int
    duplicate_tolerance: float
    duplicate_distance: float
    estimator: str
    k: int
    discard_fraction: Optional[float]
    by_k: list = ()
    duplicate_groups: list = ()


def intrinsic_dimension(
    X,
    *,
    estimator: str = "mle",
    k: int = DEFAULT_K,
    device=None,
    discard_fraction: float = 0.1,
    interval_splits: int = 4,
    confidence: float = 0.95,
    seed: int = 0,
    duplicate_tolerance: float = 0.0,
    max_merged_fraction: float = 0.05,
    progress: Progress | None = None,
    memory_budget: int | None = None,
) -> DimensionResult:
    """Estimate the intrinsic dimension of the rows of ``X``.

    Under torch.distributed (a default process group, e.g. from ``torchrun``) the search
    is shared between the ranks, and every rank returns the same result.

    Args:
        X: ``(N, D)`` array or tensor, one flattened sample per row; a ``numpy.memmap``
            is read tile by tile, never copied whole.
        estimator ("mle"): a registered estimator: ``"mle"``, ``"mle_mg"`` or ``"twonn"``
            (see :mod:`fiftyone_intrinsic.core.estimators`).
        k (20): neighbours per point for the MLE estimators.
        device (None): torch device of the neighbour search; CUDA when present, else CPU.
        discard_fraction (0.1): TwoNN's discarded fraction of the largest ratios.
        interval_splits (4): random splits of the points into disjoint groups for the
            interval (:mod:`.intervals`); 0: no interval.
        confidence (0.95): coverage of the interval.
        seed (0): seed of the interval's random splits.
        duplicate_tolerance (0.0): merge samples closer than this fraction of the median
            nearest-neighbour distance of the distinct samples before estimating (each
            into a kept sample within that distance; see :mod:`.near_duplicates`); 0
            merges exact duplicates only.
        max_merged_fraction (0.05): refuse (``ValueError``) a tolerance that would merge
            more than this fraction of the distinct samples.
        progress (None): ``progress(rows_done, rows_total)`` during the neighbour search.
        memory_budget (None): bytes of working memory of the neighbour search (by default
            256 MiB for a memmap, twice the data, at least 512 MiB, for an array in
            memory, a quarter of the free GPU memory on CUDA; see
            :func:`~fiftyone_intrinsic.core.neighbors.nearest_neighbors`).

    >>> rng = np.random.default_rng(0)
    >>> plane = rng.uniform(size=(2000, 2)) @ rng.normal(size=(2, 50))
    >>> round(intrinsic_dimension(plane, device="cpu").dimension)
    2
    """
    settings = DimensionSettings(
        estimator=estimator,
        k=k,
        discard_fraction=discard_fraction,
        interval_splits=interval_splits,
        confidence=confidence,
        seed=seed,
        duplicate_tolerance=duplicate_tolerance,
        max_merged_fraction=max_merged_fraction,
        device=None if device is None else str(device),
    )
    return estimate_dimension(as_feature_matrix(X), settings, progress, memory_budget)


def estimate_dimension(
    X: np.ndarray, settings: DimensionSettings, progress: Progress | None = None, memory_budget: int | None = None
) -> DimensionResult:
    """:func:`intrinsic_dimension` with validated settings, on an ``(N, D)`` float matrix
    already checked by :func:`~fiftyone_intrinsic.core.neighbors.as_feature_matrix`."""
    estimator = get_estimator(settings.estimator)
    duplicates = find_duplicates(X)
    distinct = duplicates.representatives  # row indices: the rows are never copied
    needed = settings.neighbors_needed
    _require_points(duplicates.n_distinct, duplicates.n_rows, needed, settings, "distinct")
    merged = merge_near_duplicates(
        X, distinct, settings.duplicate_tolerance, settings.max_merged_fraction,
        device=settings.device, memory_budget=memory_budget,
    )
    _require_points(merged.kept.shape[0], duplicates.n_rows, needed, settings, "well-separated")
    neighbors = nearest_neighbors(
        X, needed, rows=distinct[merged.kept], device=settings.device, progress=progress, memory_budget=memory_budget
    )
    dimension, local_distinct, statistic = estimate_from_distances(
        neighbors.distances, settings.estimator, settings.discard_fraction
    )
    ci_low, ci_high = _interval(X, distinct[merged.kept], float(dimension), settings, needed, memory_budget)
    return DimensionResult(
        dimension=float(dimension),
        local=local_distinct[merged.position[duplicates.inverse]],
        ci_low=ci_low,
        ci_high=ci_high,
        confidence=settings.confidence,
        n_samples=duplicates.n_rows,
        n_duplicates=duplicates.n_duplicates,
        n_near_duplicates=merged.n_merged,
        duplicate_tolerance=settings.duplicate_tolerance,
        duplicate_distance=merged.distance,
        estimator=settings.estimator,
        k=needed,
        discard_fraction=settings.discard_fraction if "discard_fraction" in estimator.parameters else None,
        by_k=estimator.curve(neighbors.distances),
        duplicate_groups=duplicates.groups(),
    )


def _require_points(n_points, n_rows, needed, settings, kind):
    if n_points <= needed:
        raise ValueError(
            f"The {settings.estimator!r} estimator with k={needed} needs at least {needed + 1} "
            f"{kind} samples; got {n_points} of {n_rows} rows. Add samples, lower k"
            + (" or lower duplicate_tolerance." if kind != "distinct" else ".")
        )


def estimate_from_distances(distances: np.ndarray, estimator: str, discard_fraction: float = 0.1):
    """Global and local estimates from ``(M, k)`` ascending, positive neighbour distances.

    Returns:
        ``(dimension, local, statistic)``: the global estimate, the ``(M,)`` local
        estimates, and the ``(M,)`` per-point statistic that the global estimate is a
        function of (``S_i`` for the MLE estimators, ``μ_i`` for TwoNN), for resampling.

    >>> T = np.array([[1.0, 2.0, 4.0], [1.0, 1.0, 2.0]])
    >>> d, local, S = estimate_from_distances(T, "mle")
    >>> S.tolist(), d  # S = log(4/1) + log(4/2), log(2/1) + log(2/1); d = 1 / mean(S)
    ([2.0794415416798357, 1.3862943611198906], 0.5770780163555854)
    """
    unit = get_estimator(estimator)
    k = distances.shape[1]
    statistic = unit.point_statistics(distances)
    dimension = unit.combine(statistic, k=k, discard_fraction=discard_fraction)
    return dimension, unit.local(statistic, k=k), statistic


def _interval(X, rows: np.ndarray, dimension: float, settings: DimensionSettings, k: int, memory_budget=None):
    """The interval of the estimate on ``X[rows]`` (:mod:`.intervals`)."""
    if settings.interval_splits == 0:
        return float("nan"), float("nan")
    error, groups = subsample_error(
        X, rows, settings.estimator, k, settings.discard_fraction, settings.seed,
        device=settings.device, memory_budget=memory_budget, n_splits=settings.interval_splits,
    )
    return student_interval(dimension, error, groups, settings.confidence)
