"""Label sharpness K_F of a labelled point cloud, exact over all pairs (docs/science.md §2).

Konz & Mazurowski (ICLR 2024) define ``K̂_F = max_{j,k} |y_j − y_k| / ‖x_j − x_k‖₂`` (binary)
and replace ``|y_j − y_k|`` by ``1(y_j ≠ y_k)`` for several classes; both equal
``1 / (smallest distance between two samples with different labels)``. Identical inputs
with different labels would make it infinite: they are reported as conflicting duplicates,
and ``k_f`` is taken over the non-identical pairs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch

from .collectives import all_reduce
from .devices import resolve_device
from . import engine
from .engine import Progress, search
from .exact import ExactDistances
from .labels import check_label_types, warn_if_not_classes
from .neighbors import as_feature_matrix, feature_scale, find_duplicates
from .settings import SharpnessSettings
from .source import FeatureSource

__all__ = ["SharpPair", "SharpnessResult", "label_sharpness", "encode_labels", "measure_sharpness"]

_INF = float("inf")
#: Rows per chunk when selecting the rows to refine (temporaries of rows × classes).
_MAYBE_ROWS = 4096


@dataclass(frozen=True)
class SharpPair:
    """Two samples with different labels, ``distance`` apart (feature units)."""

    i: int
    j: int
    distance: float
    label_i: Any
    label_j: Any

    @property
    def sharpness(self) -> float:
        """``1 / distance``: this pair's contribution to K_F (1 / feature units)."""
        return 1.0 / self.distance


@dataclass(frozen=True)
class SharpnessResult:
    """Exact label sharpness.

    Attributes:
        k_f: ``1 / min_distance`` (1 / feature units); ``nan`` when no two non-identical
            samples carry different labels.
        min_distance: smallest distance between non-identical samples of different labels.
        pairs: the ``top`` closest differently-labelled pairs, ascending by distance, each
            pair once with ``i < j``.
        conflicting_duplicates: ``(i, j)`` index pairs, ``i < j``, of identical inputs with
            different labels (each would make K_F infinite).
        nearest_distance: ``(N,)`` float64, distance from each sample to its nearest sample
            with another label (0 for a conflicting duplicate).
        nearest_index: ``(N,)`` int64, the index of that sample.
        classes: the sorted distinct labels.
        class_min_distance: ``(C, C)`` float64, smallest distance between non-identical
            samples of each pair of classes (``inf`` on the diagonal).
        n_samples: rows given.
        n_duplicates: rows that repeat an earlier row (with any label).
    """

    k_f: float
    min_distance: float
    pairs: list[SharpPair]
    conflicting_duplicates: list[tuple[int, int]]
    nearest_distance: np.ndarray
    nearest_index: np.ndarray
    classes: list
    class_min_distance: np.ndarray
    n_samples: int
    n_duplicates: int


def label_sharpness(
    X,
    labels: Sequence,
    *,
    top: int = 10,
    device=None,
    progress: Progress | None = None,
    memory_budget: int | None = None,
) -> SharpnessResult:
    """Exact label sharpness K_F of the rows of ``X`` with their ``labels``.

    Under torch.distributed (a default process group, e.g. from ``torchrun``) the pairs
    are shared between the ranks, and every rank returns the same result.

    Args:
        X: ``(N, D)`` array or tensor, one flattened sample per row; a ``numpy.memmap``
            is read tile by tile, never copied whole.
        labels: ``N`` labels (strings or integers), at least two distinct.
        top (10): the number of sharpest pairs to return.
        device (None): torch device; CUDA when present, else the CPU.
        progress (None): ``progress(rows_done, rows_total)`` during the search.
        memory_budget (None): bytes of working memory of the search (by default 256 MiB
            for a memmap, twice the data, at least 512 MiB, for an array in memory, a
            quarter of the free GPU memory on CUDA; see
            :func:`~fiftyone_intrinsic.core.neighbors.nearest_neighbors`).

    >>> X = np.array([[0.0], [1.0], [3.0], [3.0]])
    >>> result = label_sharpness(X, ["a", "a", "b", "a"], device="cpu")
    >>> result.k_f, [(p.i, p.j, p.distance) for p in result.pairs][:1]
    (0.5, [(1, 2, 2.0)])
    >>> result.conflicting_duplicates
    [(2, 3)]
    """
    settings = SharpnessSettings(top=top, device=None if device is None else str(device))
    X = as_feature_matrix(X)
    codes, classes = encode_labels(labels, X.shape[0])
    return measure_sharpness(X, codes, classes, settings, progress, memory_budget)


def encode_labels(labels, n_rows: int) -> tuple[np.ndarray, list]:
    """``(codes, classes)``: ``(N,)`` int64 class codes and the sorted distinct labels.

    Warns (``UserWarning``) when there are more classes than half the rows, and more than
    two: K_F expects class labels (:func:`~.labels.warn_if_not_classes`).

    Raises:
        ValueError: a label count that is not ``n_rows``, a missing label, strings mixed
            with other types (``1`` and ``"1"`` would merge), one class only.

    >>> encode_labels(["b", "a", "b"], 3)[0].tolist()
    [1, 0, 1]
    """
    if not isinstance(labels, np.ndarray):
        labels = list(labels)
        check_label_types(labels)  # before numpy turns 1 and "1" into one string
    elif labels.dtype == object:
        check_label_types(labels.reshape(-1).tolist())
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.shape[0] != n_rows:
        raise ValueError(f"labels must be one label per row of X: got shape {labels.shape} for {n_rows} rows.")
    missing = [i for i, label in enumerate(labels.tolist()) if label is None or label != label]  # None or NaN
    if missing:
        raise ValueError(
            f"{len(missing)} of {n_rows} labels are missing (first rows: {missing[:10]}). "
            "Label those samples or leave them out."
        )
    classes, codes = np.unique(labels, return_inverse=True)
    if classes.shape[0] < 2:
        raise ValueError(
            f"Label sharpness needs at least two classes; every sample is labelled "
            f"{classes.tolist()[0]!r}, so K_F is undefined."
        )
    warn_if_not_classes(classes.shape[0], n_rows)
    return codes.reshape(-1).astype(np.int64), classes.tolist()


def measure_sharpness(
    X, codes, classes, settings: SharpnessSettings, progress: Progress | None = None, memory_budget: int | None = None
) -> SharpnessResult:
    """:func:`label_sharpness` with validated settings: ``X`` an ``(N, D)`` matrix checked
    by :func:`~fiftyone_intrinsic.core.neighbors.as_feature_matrix` (a memmap is read in
    tiles, never copied), ``codes, classes`` from :func:`encode_labels`;
    ``memory_budget`` as for :func:`~fiftyone_intrinsic.core.neighbors.nearest_neighbors`."""
    device = resolve_device(settings.device)
    n_rows, n_classes = X.shape[0], len(classes)
    duplicates = find_duplicates(X)
    conflicts = _conflicting_duplicates(duplicates, codes)

    # positions sorted by class: "another label" becomes "outside one contiguous range"
    order = np.argsort(codes, kind="stable")
    sorted_codes = codes[order]
    bounds = np.searchsorted(sorted_codes, np.arange(n_classes + 1))
    position = np.empty(n_rows, dtype=np.int64)
    position[order] = np.arange(n_rows)
    source = FeatureSource(X, order)
    # with two classes each row's nearest other-label sample gives the class-pair minimum
    class_minima = _ClassMinima(bounds, n_rows, device) if n_classes > 2 else None
    found = search(
        source, 1, device=device, scale=feature_scale(source), bounds=bounds,
        mask=_twins_mask(position[conflicts]), observe=class_minima, top=settings.top,
        memory_budget=memory_budget, progress=progress,
    )
    nearest_position = found.indices[:, 0]
    nearest_distance = np.empty(n_rows)
    nearest_index = np.empty(n_rows, dtype=np.int64)
    nearest_distance[order] = found.distances[:, 0]
    nearest_index[order] = np.where(nearest_position >= 0, order[np.maximum(nearest_position, 0)], -1)
    for i, j in conflicts:  # an identical twin with another label is the nearest of all
        for a, b in ((i, j), (j, i)):
            if nearest_distance[a] > 0 or b < nearest_index[a]:
                nearest_distance[a], nearest_index[a] = 0.0, b
    pairs = _sharpest_pairs(order[found.pairs], found.pair_distances, codes, classes, settings.top)
    min_distance = pairs[0].distance if pairs else _INF
    if pairs and 1.0 / min_distance == _INF:
        raise ValueError(
            f"The closest pair of samples with different labels is {min_distance:.3g} apart, so "
            "K_F = 1/distance overflows float64. Rescale the features (e.g. multiply them by "
            "1e10) and scale K_F back by the same factor."
        )
    nearest_class = np.where(nearest_position >= 0, sorted_codes[np.maximum(nearest_position, 0)], -1)
    exact = ExactDistances(source, found.scale, device)
    class_min = (
        _exact_class_minima(exact, bounds, class_minima.values, found, nearest_class) if class_minima is not None
        else _two_class_minima(found.distances[:, 0], sorted_codes)
    )
    return SharpnessResult(
        k_f=1.0 / min_distance if pairs else float("nan"),
        min_distance=min_distance,
        pairs=pairs,
        conflicting_duplicates=[(int(i), int(j)) for i, j in conflicts],
        nearest_distance=nearest_distance,
        nearest_index=nearest_index,
        classes=classes,
        class_min_distance=class_min,
        n_samples=n_rows,
        n_duplicates=duplicates.n_duplicates,
    )


def _twins_mask(twins: np.ndarray):
    """A block mask that excludes the ``(P, 2)`` position pairs of identical rows with
    different labels, in both orientations (``None`` when there are none)."""
    if twins.size == 0:
        return None
    twins = np.concatenate([twins, twins[:, ::-1]])

    def mask(block, rows, columns):
        (r0, r1), (c0, c1) = rows, columns
        inside = twins[(twins[:, 0] >= r0) & (twins[:, 0] < r1) & (twins[:, 1] >= c0) & (twins[:, 1] < c1)]
        if inside.size:
            block[torch.as_tensor(inside[:, 0] - r0), torch.as_tensor(inside[:, 1] - c0)] = _INF

    return mask


class _ClassMinima:
    """``values``: ``(N, C)`` float32 smallest approximate squared distance from each
    position to each class, over the blocks observed (combined over the ranks by
    :meth:`synchronize`)."""

    def __init__(self, bounds: np.ndarray, n_rows: int, device):
        self.bounds = bounds
        self.values = torch.full((n_rows, bounds.shape[0] - 1), _INF, dtype=torch.float32, device=device)

    def __call__(self, block: torch.Tensor, rows, columns) -> None:
        (r0, r1), (c0, c1) = rows, columns
        if rows == columns and block.is_contiguous():
            # a block of a tile with itself holds every pair in both orientations: its
            # minima over ranges of rows (the fast layout) give the same information
            block = block.T
        first = int(np.searchsorted(self.bounds, c0, side="right")) - 1
        last = int(np.searchsorted(self.bounds, c1, side="left"))
        found = _segment_minima(block, np.maximum(self.bounds[first:last], c0) - c0)
        target = self.values[r0:r1, first:last]
        torch.minimum(target, found, out=target)

    def synchronize(self) -> None:
        self.values = all_reduce(self.values, "min")


def _segment_minima(block: torch.Tensor, starts: np.ndarray) -> torch.Tensor:
    """``(R, G)`` minimum of each row of ``block`` over the column segments that begin at
    ``starts`` (ascending, the first 0) and end at the next start or the last column."""
    if starts.size == 1:  # one class: a plain minimum (fast in either layout)
        return block.amin(dim=1, keepdim=True)
    if engine.host_kernels(block):
        if not block.is_contiguous() and block.T.is_contiguous():  # a transposed block:
            return torch.from_numpy(_minima_of_row_ranges(block.T.numpy(), starts).T)  # reduce in its layout
        return torch.from_numpy(np.minimum.reduceat(block.numpy(), starts, axis=1))  # the fastest along rows
    lengths = np.diff(np.r_[starts, block.shape[1]])
    segments = torch.as_tensor(lengths, device=block.device).expand(block.shape[0], -1)
    return torch.segment_reduce(block.contiguous(), "min", lengths=segments.contiguous(), axis=1)


def _minima_of_row_ranges(values: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """``(G, W)`` minimum of the rows of the C-contiguous ``(R, W)`` ``values`` over the row
    ranges that begin at ``starts`` (ascending, the first 0). One contiguous reduction per
    range runs near memory speed: ten times faster than ``np.minimum.reduceat`` along
    axis 0, unless the ranges are only a few rows long."""
    if values.shape[0] < 8 * starts.size:
        return np.minimum.reduceat(values, starts, axis=0)
    out = np.empty((starts.size, values.shape[1]), dtype=values.dtype)
    for index, (lo, hi) in enumerate(zip(starts.tolist(), starts[1:].tolist() + [values.shape[0]])):
        np.minimum.reduce(values[lo:hi], axis=0, out=out[index])
    return out


def _conflicting_duplicates(duplicates, codes) -> np.ndarray:
    """``(P, 2)`` index pairs ``i < j`` of identical rows with different labels."""
    pairs = []
    for group in duplicates.groups():
        group_codes = codes[group]
        if np.unique(group_codes).size < 2:
            continue
        a, b = np.triu_indices(group.size, k=1)
        differ = group_codes[a] != group_codes[b]
        pairs.append(np.stack([group[a[differ]], group[b[differ]]], axis=1))
    if not pairs:
        return np.empty((0, 2), dtype=np.int64)
    pairs = np.sort(np.concatenate(pairs), axis=1)
    return pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))]


def _both_orientations(pairs: np.ndarray) -> np.ndarray:
    """``(P, 2)`` pairs → ``(2P, 2)`` with each pair in both orders."""
    return np.concatenate([pairs, pairs[:, ::-1]]).reshape(-1, 2)


def _sharpest_pairs(pairs, distances, codes, classes, top) -> list[SharpPair]:
    """The ``top`` closest differently-labelled pairs, ties to the smaller indices, from
    the search's candidates: ``(P, 2)`` row indices and ``(P,)`` exact distances (a
    superset of the closest, ties included)."""
    i, j = np.minimum(pairs[:, 0], pairs[:, 1]), np.maximum(pairs[:, 0], pairs[:, 1])
    order = np.lexsort((j, i, distances))[:top]
    return [
        SharpPair(int(a), int(b), float(d), classes[codes[a]], classes[codes[b]])
        for a, b, d in zip(i[order].tolist(), j[order].tolist(), distances[order].tolist())
    ]


def _two_class_minima(nearest: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """``(2, 2)`` exact class-pair minimum of two classes: the smallest exact distance from
    any row to its nearest sample of the other class (``inf`` on the diagonal)."""
    smallest = float(nearest.min()) if nearest.size else _INF
    return np.array([[_INF, smallest], [smallest, _INF]])


def _exact_class_minima(exact, bounds, class_minima, found, nearest_class) -> np.ndarray:
    """``(C, C)`` exact smallest non-identical distance between classes.

    Work in squared distances of the scaled features ``found.scale · X`` (the units of
    ``class_minima``, each row's float32 minimum over each class, and of the rounding bound
    ``e_r = found.error_bound``, which bounds the error of every value from row r). A row's
    exact nearest other-label sample (``found.distances[:, 0]``, ``nearest_class``; sorted
    order) gives its exact distance to that class. ``upper[a, b]``, the smaller of those
    exact values and of ``min_r (class_minima[r, b] + e_r)`` over both orientations, bounds
    the class-pair minimum from above.

    Every pair of rows had an approximate value ``v`` (within the bound of its exact one)
    offered to both rows' class minima. So if the closest pair (r, c) of classes a, b is
    not already known exactly, both ``class_minima[r, b] − e_r ≤ v − e_r ≤ upper[a, b]``
    and ``class_minima[c, a] − e_c ≤ upper[a, b]``, and neither row's exact nearest
    other-label distance exceeds it: r and c are both *candidates* of the class pair (a
    row whose nearest other-label sample is of class b has its exact distance to b
    already, and is no candidate toward b). Only the pairs of a class pair's candidates
    (usually one or two on each side) are re-measured, in float64 from their differences
    by ``exact`` (:class:`~.exact.ExactDistances`, by position)."""
    n_classes = bounds.shape[0] - 1
    scale = found.scale
    nearest = found.distances[:, 0]
    nearest_scaled = (nearest * scale) ** 2
    error = found.error_bound
    codes = np.repeat(np.arange(n_classes), np.diff(bounds))
    best = np.full((n_classes, n_classes), _INF)  # exact, in feature units
    known = nearest_class >= 0
    np.minimum.at(best, (codes[known], nearest_class[known]), nearest[known])
    best = np.minimum(best, best.T)
    upper = (best * scale) ** 2
    chunks = [(lo, min(len(codes), lo + _MAYBE_ROWS)) for lo in range(0, len(codes), _MAYBE_ROWS)]
    for lo, hi in chunks:  # row chunks: (rows, C) temporaries; rows sorted by class
        reach = class_minima[lo:hi].double().cpu().numpy() + error[lo:hi, None]
        starts = np.flatnonzero(np.r_[True, codes[lo + 1 : hi] != codes[lo : hi - 1]])
        owners = codes[lo + starts]
        upper[owners] = np.minimum(upper[owners], np.minimum.reduceat(reach, starts, axis=0))
    upper = np.minimum(upper, upper.T)
    rows, targets = [], []
    for lo, hi in chunks:
        low = class_minima[lo:hi].double().cpu().numpy() - error[lo:hi, None]
        bound = upper[codes[lo:hi]]
        maybe = (low <= bound) & (nearest_scaled[lo:hi, None] <= bound)
        maybe[np.arange(hi - lo), codes[lo:hi]] = False  # a class with itself
        maybe[np.flatnonzero(known[lo:hi]), nearest_class[lo:hi][known[lo:hi]]] = False  # exact already
        chunk_rows, chunk_targets = np.nonzero(maybe)
        rows.append(chunk_rows + lo)
        targets.append(chunk_targets)
    first, second = _candidate_pairs(np.concatenate(rows), np.concatenate(targets), codes, n_classes)
    if first.size:
        squared = exact(first, second)
        squared[squared == 0] = _INF  # identical inputs: conflicting duplicates, not K_F
        np.minimum.at(best, (codes[first], codes[second]), np.sqrt(squared) / scale)
    return np.minimum(best, best.T)


def _candidate_pairs(rows: np.ndarray, targets: np.ndarray, codes: np.ndarray, n_classes: int):
    """Every pair of candidates of each class pair: ``(first, second)`` positions, one of
    class a and one of class b, for each candidate ``rows[i]`` (of class ``codes[rows[i]]``)
    toward class ``targets[i]``. Candidates of a class pair on one side only give nothing."""
    own = codes[rows]
    low, high = np.minimum(own, targets), np.maximum(own, targets)
    key = low * n_classes + high
    side = (own > targets).astype(np.int64)  # 0: the candidate is of the lower class
    order = np.argsort(key * 2 + side, kind="stable")  # rows stay ascending within a group
    key, side, rows = key[order], side[order], rows[order]
    group = key * 2 + side
    starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]]) if group.size else np.empty(0, dtype=np.int64)
    counts = np.diff(np.r_[starts, group.size])
    group_key, group_side = key[starts], side[starts]
    # a lower-side group pairs with the upper-side group right after it, of the same key
    lower = np.flatnonzero((group_side[:-1] == 0) & (group_side[1:] == 1) & (group_key[:-1] == group_key[1:]))
    upper = lower + 1
    n_lower, n_upper = counts[lower], counts[upper]
    # each lower candidate is repeated once per upper candidate of its class pair
    lower_rows = np.repeat(np.repeat(starts[lower], n_lower) + _ranges(n_lower), np.repeat(n_upper, n_lower))
    upper_start = np.repeat(np.repeat(starts[upper], n_lower), np.repeat(n_upper, n_lower))
    upper_rows = upper_start + _ranges(np.repeat(n_upper, n_lower))
    return rows[lower_rows], rows[upper_rows]


def _ranges(lengths: np.ndarray) -> np.ndarray:
    """``0, 1, …, n − 1`` for each n of ``lengths``, concatenated."""
    lengths = np.asarray(lengths, dtype=np.int64)
    if lengths.size == 0:
        return np.empty(0, dtype=np.int64)
    ends = np.cumsum(lengths)
    return np.arange(ends[-1]) - np.repeat(ends - lengths, lengths)
