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

from .devices import resolve_device
from .neighbors import (
    Progress,
    as_feature_matrix,
    compact_columns,
    find_duplicates,
    nearest_neighbors,
)
from .settings import SharpnessSettings

__all__ = ["SharpPair", "SharpnessResult", "label_sharpness", "encode_labels", "measure_sharpness"]

_INF = float("inf")
#: Rows per exact float64 distance block when refining the class-pair minima.
_CDIST_ROWS = 256


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
) -> SharpnessResult:
    """Exact label sharpness K_F of the rows of ``X`` with their ``labels``.

    Args:
        X: ``(N, D)`` array or tensor, one flattened sample per row.
        labels: ``N`` labels (strings or integers), at least two distinct.
        top (10): the number of sharpest pairs to return.
        device (None): torch device; CUDA when present, else the CPU.
        progress (None): ``progress(rows_done, rows_total)`` during the search.

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
    return measure_sharpness(X, codes, classes, settings, progress)


def encode_labels(labels, n_rows: int) -> tuple[np.ndarray, list]:
    """``(codes, classes)``: ``(N,)`` int64 class codes and the sorted distinct labels.

    Raises:
        ValueError: a label count that is not ``n_rows``, a missing label, one class only.

    >>> encode_labels(["b", "a", "b"], 3)[0].tolist()
    [1, 0, 1]
    """
    labels = np.asarray(list(labels) if not isinstance(labels, np.ndarray) else labels)
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
    return codes.reshape(-1).astype(np.int64), classes.tolist()


def measure_sharpness(X, codes, classes, settings: SharpnessSettings, progress: Progress | None = None) -> SharpnessResult:
    """:func:`label_sharpness` with validated settings: ``X`` an ``(N, D)`` matrix checked
    by :func:`~fiftyone_intrinsic.core.neighbors.as_feature_matrix`, ``codes, classes``
    from :func:`encode_labels`."""
    device = resolve_device(settings.device)
    n_rows, n_classes = X.shape[0], len(classes)
    duplicates = find_duplicates(X)
    conflicts = _conflicting_duplicates(duplicates, codes)

    # rows sorted by class: "another label" becomes "outside one contiguous column range"
    order = np.argsort(codes, kind="stable")
    sorted_codes = codes[order]
    bounds = np.searchsorted(sorted_codes, np.arange(n_classes + 1))
    position = np.empty(n_rows, dtype=np.int64)
    position[order] = np.arange(n_rows)
    # identical rows with another label: masked so that K_F is over non-identical pairs
    twins = _both_orientations(position[conflicts])
    class_minima = torch.full((n_rows, n_classes), _INF, device=device)

    def mask(block, start, stop, skipped):
        # same-label pairs are never computed (groups below); identical twins are masked
        in_block = twins[(twins[:, 0] >= start) & (twins[:, 0] < stop)]
        if in_block.size:
            columns = compact_columns(torch.as_tensor(in_block[:, 1]), skipped)
            block[torch.as_tensor(in_block[:, 0] - start), columns] = _INF

    def observe(block, start, stop, skipped):
        for c in range(n_classes):
            if skipped is not None and skipped[0] == bounds[c]:
                continue  # the block's own class: not computed
            lo, hi = compact_columns(torch.as_tensor(bounds[c : c + 2]), skipped).tolist()
            class_minima[start:stop, c] = block[:, lo:hi].amin(dim=1)

    X_sorted = X[order]
    k = min(settings.top, n_rows - 1)
    found = nearest_neighbors(
        X_sorted, k, device=device, mask=mask, observe=observe, groups=bounds, progress=progress
    )
    neighbor_index = np.where(found.indices >= 0, order[np.maximum(found.indices, 0)], -1)
    distances = np.empty_like(found.distances)
    indices = np.empty_like(neighbor_index)
    distances[order], indices[order] = found.distances, neighbor_index

    nearest_distance, nearest_index = distances[:, 0].copy(), indices[:, 0].copy()
    for i, j in conflicts:  # an identical twin with another label is the nearest of all
        for a, b in ((i, j), (j, i)):
            if nearest_distance[a] > 0 or b < nearest_index[a]:
                nearest_distance[a], nearest_index[a] = 0.0, b
    pairs = _sharpest_pairs(distances, indices, codes, classes, settings.top)
    min_distance = pairs[0].distance if pairs else _INF
    nearest_class = np.where(found.indices[:, 0] >= 0, sorted_codes[np.maximum(found.indices[:, 0], 0)], -1)
    class_min = _exact_class_minima(
        torch.as_tensor(X_sorted, device=device), bounds, class_minima, found.distances[:, 0], nearest_class,
        found.error_bound,
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


def _sharpest_pairs(distances, indices, codes, classes, top) -> list[SharpPair]:
    """The ``top`` closest differently-labelled pairs. Each is among the ``top`` nearest
    other-label neighbours of both its members, so the per-row lists hold them all."""
    rows = np.repeat(np.arange(distances.shape[0]), distances.shape[1])
    cols, dist = indices.ravel(), distances.ravel()
    keep = np.isfinite(dist)
    i, j, dist = np.minimum(rows, cols)[keep], np.maximum(rows, cols)[keep], dist[keep]
    order = np.lexsort((j, i, dist))
    i, j, dist = i[order], j[order], dist[order]
    # a pair appears once per member that lists it
    seen, pairs = set(), []
    for a, b, d in zip(i.tolist(), j.tolist(), dist.tolist()):
        if (a, b) in seen:
            continue
        seen.add((a, b))
        pairs.append(SharpPair(a, b, d, classes[codes[a]], classes[codes[b]]))
        if len(pairs) == top:
            break
    return pairs


def _exact_class_minima(X_device, bounds, class_minima, nearest, nearest_class, error_bound) -> np.ndarray:
    """``(C, C)`` exact smallest non-identical distance between classes.

    A row whose exact nearest other-label sample (``nearest``, ``nearest_class``: sorted
    order) lies in class b gives its exact distance to b. Another row can only come closer
    to b if it is nearer to its own nearest other sample than that, and its float32 minimum
    to b lies within the rounding bound: only those rows are re-measured (none for two
    classes). ``error_bound``: the search's float32 error bound per row (sorted order)."""
    n_classes = bounds.shape[0] - 1
    minima = class_minima.double().cpu().numpy()
    result = np.full((n_classes, n_classes), _INF)
    for a in range(n_classes):
        rows = np.arange(bounds[a], bounds[a + 1])
        for b in range(n_classes):
            if a == b:
                continue
            known = nearest_class[rows] == b
            best = nearest[rows][known].min() if known.any() else _INF
            maybe = (~known) & (nearest[rows] < best) & (minima[rows, b] <= best**2 + 2.0 * error_bound[rows])
            others = X_device[bounds[b] : bounds[b + 1]].double()
            for chunk in np.array_split(rows[maybe], max(1, int(maybe.sum()) // _CDIST_ROWS + 1)):
                if chunk.size == 0:
                    continue
                # differences, not the matmul identity: exact for near-duplicates
                exact = torch.cdist(X_device[torch.as_tensor(chunk)].double(), others, compute_mode="donot_use_mm_for_euclid_dist")
                exact[exact == 0] = _INF  # identical inputs: conflicting duplicates, not K_F
                best = min(best, exact.min().item())
            result[a, b] = best
    return np.minimum(result, result.T)
