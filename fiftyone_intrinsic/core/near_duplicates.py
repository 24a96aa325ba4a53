"""Near-duplicate merging that cannot run away (docs/science.md §3).

Two distinct samples are near-duplicates when they are closer than ``tolerance`` times the
median nearest-neighbour distance of the distinct samples: the threshold follows the
data's own scale, whatever the preprocessing. They are merged by a greedy net, not by
single linkage: the sample with the most near-duplicates is kept and absorbs them, then
the next one not yet absorbed, and so on. Every merged sample lies within the threshold of
the sample it was merged into, so a group cannot chain across the data, and the kept
samples are pairwise at least the threshold apart. A tolerance that would merge more than
``max_fraction`` of the distinct samples is refused before anything is estimated.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .neighbors import nearest_neighbors

__all__ = ["NearDuplicates", "merge_near_duplicates"]


@dataclass(frozen=True)
class NearDuplicates:
    """Which of ``U`` distinct rows are kept after merging near-duplicates.

    Attributes:
        kept: ``(M,)`` int64 ascending positions of the kept rows (among the ``U``).
        position: ``(U,)`` int64, for every row the index in ``kept`` of the row it was
            merged into (itself when kept).
        distance: the merging distance in feature units (``tolerance`` times the median
            nearest-neighbour distance; 0.0 when nothing is merged by design).
    """

    kept: np.ndarray
    position: np.ndarray
    distance: float

    @property
    def n_merged(self) -> int:
        """Rows merged into another row (``U − M``)."""
        return int(self.position.shape[0] - self.kept.shape[0])


def merge_near_duplicates(
    X,
    rows: np.ndarray,
    tolerance: float,
    max_fraction: float = 0.05,
    *,
    k: int = 20,
    device=None,
    memory_budget: int | None = None,
) -> NearDuplicates:
    """Merge the near-duplicates among the distinct rows ``X[rows]``.

    Args:
        X: ``(N, D)`` feature matrix (a memmap is read tile by tile).
        rows: ``(U,)`` indices of pairwise distinct rows of X; positions ``0..U-1`` refer
            to them. Ties between equally crowded rows go to the smaller position, so with
            rows numbered by content (:func:`~.neighbors.find_duplicates`) the result does
            not depend on the order of the samples.
        tolerance: fraction of the median nearest-neighbour distance of the rows below
            which two rows are near-duplicates; 0 merges nothing.
        max_fraction (0.05): largest fraction of the ``U`` rows that may be merged.
        k (20): neighbours per row of the first search; doubled while some row has all
            of them within the distance, so every near-duplicate pair is found.
        device (None), memory_budget (None): of the neighbour search
            (:func:`~.neighbors.nearest_neighbors`).

    Raises:
        ValueError: when more than ``max_fraction`` of the rows would be merged; the
            message gives the count, the distance, and the fraction that would admit it.

    A chain of steps 0.4 below a distance of 0.44 (0.05 x the median nearest-neighbour
    distance 8.8): single linkage would merge all four links; the net keeps 0.4, which
    absorbs 0.0 and 0.8, and 1.2, whose only near-duplicate was absorbed already.

    >>> x = np.array([0.0, 0.4, 0.8, 1.2, 10.0, 20.0, 30.0, 40.0, 50.0])[:, None]
    >>> merged = merge_near_duplicates(x, np.arange(9), 0.05, max_fraction=0.5, k=3, device="cpu")
    >>> round(merged.distance, 12), merged.kept.tolist(), merged.position.tolist()
    (0.44, [1, 3, 4, 5, 6, 7, 8], [0, 0, 0, 1, 2, 3, 4, 5, 6])
    >>> merge_near_duplicates(x, np.arange(9), 0.05, k=3, device="cpu")
    Traceback (most recent call last):
    ...
    ValueError: duplicate_tolerance=0.05 merges samples closer than 0.44 (0.05 x the median nearest-neighbour distance 8.8); that would merge 2 of the 9 distinct samples (22.2%), more than max_merged_fraction=0.05 allows. Lower duplicate_tolerance, or, if the data is known to hold that many near-copies, raise max_merged_fraction to 0.23.
    """
    rows = np.asarray(rows, dtype=np.int64)
    n_rows = rows.shape[0]
    identity = np.arange(n_rows)
    if tolerance == 0.0 or n_rows < 2:
        return NearDuplicates(kept=identity, position=identity, distance=0.0)
    k = min(max(k, 1), n_rows - 1)
    found = nearest_neighbors(X, k, rows=rows, device=device, memory_budget=memory_budget)
    median = float(np.median(found.distances[:, 0]))
    distance = tolerance * median
    while True:
        close = found.distances < distance
        counts = close.sum(axis=1)
        if counts.max() < k or k == n_rows - 1:
            break  # every row's near-duplicates are all in its list
        if k > max_fraction * n_rows:
            # the most crowded row is kept first and absorbs all of its (at least k)
            # near-duplicates: refused whatever the rest of the net would be
            _refuse(tolerance, distance, median, k, n_rows, max_fraction, at_least=True)
        k = min(2 * k, n_rows - 1)
        found = nearest_neighbors(X, k, rows=rows, device=device, memory_budget=memory_budget)
    representative = _greedy_net(found.indices, close, counts)
    kept = np.flatnonzero(representative == identity)
    n_merged = n_rows - kept.shape[0]
    if n_merged > max_fraction * n_rows:
        _refuse(tolerance, distance, median, n_merged, n_rows, max_fraction)
    return NearDuplicates(kept=kept, position=np.searchsorted(kept, representative), distance=distance)


def _greedy_net(indices: np.ndarray, close: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """``(U,)`` the position each row is merged into: rows in order of decreasing
    ``counts`` (ties: smaller position first); a row not yet absorbed is kept and absorbs
    its near-duplicates (``indices[i, close[i]]``) not yet absorbed."""
    representative = np.arange(indices.shape[0])
    absorbed = np.zeros(indices.shape[0], dtype=bool)
    crowded = np.flatnonzero(counts > 0)
    for i in crowded[np.lexsort((crowded, -counts[crowded]))].tolist():
        if absorbed[i]:
            continue
        near = indices[i, close[i]]
        near = near[~absorbed[near]]
        representative[near] = i
        absorbed[near] = True
        absorbed[i] = True
    return representative


def _refuse(tolerance, distance, median, n_merged, n_rows, max_fraction, at_least=False):
    needed = min(1.0, math.ceil(100.0 * n_merged / n_rows) / 100.0)
    raise ValueError(
        f"duplicate_tolerance={tolerance:g} merges samples closer than {distance:.4g} "
        f"({tolerance:g} x the median nearest-neighbour distance {median:.4g}); that would "
        f"merge {'at least ' if at_least else ''}{n_merged} of the {n_rows} distinct samples "
        f"({n_merged / n_rows:.1%}), more than max_merged_fraction={max_fraction:g} allows. "
        f"Lower duplicate_tolerance, or, if the data is known to hold that many near-copies, "
        f"raise max_merged_fraction to {needed:g}{' or more' if at_least else ''}."
    )
