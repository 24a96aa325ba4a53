"""Exact nearest-neighbour search on any torch device, in memory or out of core.

Candidates come from float32 matrix products (``‖a‖² + ‖b‖² − 2a·b``), which are fast but
cancel catastrophically for near-duplicates. Every candidate whose approximate squared
distance lies within a rigorous rounding bound of the k-th smallest approximate value is
re-measured in float64 from the coordinate differences. So the returned neighbours and
distances are exact (to float64 rounding), including for the near-duplicate pairs that
decide label sharpness and TwoNN (docs/science.md §4). The work runs in 2-D tiles
(:mod:`.engine`): memory is bounded by a budget, no ``N × N`` matrix is ever formed, and
``X`` may be a ``numpy.memmap`` that is read tile by tile.

The features are first multiplied by a power of two (:func:`feature_scale`), which is exact,
so that their largest magnitude lies in [0.5, 1): float32 squares can then neither
overflow (features of 1e20) nor underflow (1e-300); distances are scaled back at the end.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

from .devices import resolve_device
from .engine import BlockMask, BlockObserver, Progress, search
from .products import TileProducts
from .source import CHUNK_BYTES, FeatureSource, min_and_max, working_dtype

__all__ = [
    "Neighbors",
    "DuplicateGroups",
    "as_feature_matrix",
    "find_duplicates",
    "nearest_neighbors",
    "approximation_error_bound",
    "feature_scale",
]

#: Largest feature magnitude accepted, and the inverse of the smallest nonzero one:
#: distances and their squares must stay finite, and sums of squares must not lose the
#: exponent range of float64.
MAX_MAGNITUDE = 2.0**1000


@dataclass(frozen=True)
class Neighbors:
    """The k nearest neighbours of every row.

    Attributes:
        distances: ``(N, k)`` float64 Euclidean distances, ascending along each row; ``inf``
            where a row has fewer than k admissible neighbours.
        indices: ``(N, k)`` int64 row indices of the neighbours (ties broken by the smaller
            index); ``-1`` where ``distances`` is ``inf``.
        error_bound: ``(N,)`` float64 bound on the error of the float32 squared distances
            of each row (see :func:`approximation_error_bound`), for callers that refine
            further approximate values; in the units of the blocks that ``mask`` and
            ``observe`` see, which are squared distances of ``scale · X``.
        scale: the power of two the search multiplied the features by
            (:func:`feature_scale`); ``distances`` are in the features' own units.
    """

    distances: np.ndarray
    indices: np.ndarray
    error_bound: Optional[np.ndarray] = None
    scale: float = 1.0


@dataclass(frozen=True)
class DuplicateGroups:
    """Rows that are bit-for-bit identical.

    Attributes:
        inverse: ``(N,)`` int64, the distinct-row id of every row.
        representatives: ``(U,)`` int64, the first row index of each distinct row, in the
            order of the distinct ids.
    """

    inverse: np.ndarray
    representatives: np.ndarray

    @property
    def n_rows(self) -> int:
        return int(self.inverse.shape[0])

    @property
    def n_distinct(self) -> int:
        return int(self.representatives.shape[0])

    @property
    def n_duplicates(self) -> int:
        """Rows that repeat an earlier row (N − number of distinct rows)."""
        return self.n_rows - self.n_distinct

    def groups(self) -> list[np.ndarray]:
        """Row indices of every distinct row that occurs more than once, ascending."""
        counts = np.bincount(self.inverse, minlength=self.n_distinct)
        repeated = counts > 1
        if not repeated.any():
            return []
        rows = np.flatnonzero(repeated[self.inverse])  # only the rows of repeated content
        order = rows[np.argsort(self.inverse[rows], kind="stable")]
        return np.split(order, np.cumsum(counts[repeated])[:-1])


def as_feature_matrix(X, name: str = "X") -> np.ndarray:
    """Validate an ``(N, D)`` matrix of features and return it as a numpy array that the
    search reads exactly: float32 when every value is exactly a float32 (float32, 8- and
    16-bit integer and boolean input: half the memory, no rounding), else float64.

    A ``numpy.memmap`` of float32, float64, or of a dtype exact in float32, is returned as
    it is (not copied: the search reads it tile by tile), and is checked in chunks.

    Raises:
        TypeError: when ``X`` is not numeric.
        ValueError: when ``X`` is not 2-D, is empty, or holds NaN or inf.
    """
    if isinstance(X, torch.Tensor):
        X = X.detach().to("cpu").numpy()
    array = X if isinstance(X, np.memmap) else np.asarray(X)
    if array.dtype == object or not (
        np.issubdtype(array.dtype, np.number) or array.dtype == bool
    ):
        raise TypeError(f"{name} must be a numeric (N, D) array; got dtype {array.dtype}.")
    if array.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D (N, D) array of N samples with D features; got shape "
            f"{array.shape}. Flatten each sample first, e.g. X.reshape(len(X), -1)."
        )
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {array.shape}); it needs samples and features.")
    dtype = working_dtype(array.dtype)
    if not (isinstance(array, np.memmap) and (dtype == np.float32 or array.dtype == np.float64)):
        array = array.astype(dtype, copy=False)
    if np.issubdtype(array.dtype, np.floating):
        step = max(1, CHUNK_BYTES // (8 * array.shape[1]))
        # min and max propagate NaN and show inf: one fast pass; rows only when needed
        bad = np.concatenate([
            lo + np.flatnonzero(~np.isfinite(chunk).all(axis=1))
            for lo in range(0, array.shape[0], step)
            for chunk in (array[lo : lo + step],)
            if not all(map(math.isfinite, min_and_max(chunk)))
        ] or [np.empty(0, dtype=np.int64)])
        if bad.size:
            raise ValueError(
                f"{name} has NaN or inf values in {bad.size} of {array.shape[0]} rows "
                f"(first rows: {bad[:10].tolist()}). Remove or repair those samples."
            )
    return array


def find_duplicates(X: np.ndarray) -> DuplicateGroups:
    """Group the bit-for-bit identical rows of an ``(N, D)`` float matrix.

    Rows are compared as bytes, never through distances: cancellation in a matrix product
    can turn a near-duplicate into distance 0 and an exact duplicate into a small positive
    value. ``-0.0`` and ``0.0`` count as equal. Rows are first hashed on at most
    ``_SAMPLED_WORDS`` evenly spaced 32-bit words (a fraction of a pass at high D); rows
    whose sampled hashes agree are hashed on all their words, and rows whose full hashes
    agree are compared byte for byte, in chunks: memory stays at one chunk beyond
    ``O(N)``. Distinct rows are numbered in the order of their hashes, a function of their
    content: the numbering does not depend on the row order.

    >>> groups = find_duplicates(np.array([[1.0, 2.0], [0.0, 1.0], [1.0, 2.0], [-0.0, 1.0]]))
    >>> groups.n_duplicates, sorted(groups.representatives.tolist())
    (2, [0, 1])
    >>> bool(groups.inverse[0] == groups.inverse[2] != groups.inverse[1] == groups.inverse[3])
    True
    """
    X = X if isinstance(X, np.memmap) else np.asarray(X)
    dtype = working_dtype(X.dtype)
    n_rows, n_features = X.shape
    sampled = np.unique(np.linspace(0, n_features - 1, min(n_features, _SAMPLED_WORDS)).astype(np.int64))
    first_hashes = _row_hashes(X, np.arange(n_rows), dtype, sampled if sampled.size < n_features else None)
    inverse = np.empty(n_rows, dtype=np.int64)
    representatives: list[int] = []
    ordered, starts = _hash_runs(first_hashes, np.arange(n_rows))
    ends = np.r_[starts[1:], n_rows]
    shared = ends - starts > 1  # runs of several rows: maybe identical
    done = 0  # rows of ``ordered`` numbered so far
    for lo, hi in zip(starts[shared].tolist() + [n_rows], ends[shared].tolist() + [n_rows]):
        singles = ordered[done:lo]  # rows whose sampled hash is their own: distinct
        inverse[singles] = len(representatives) + np.arange(singles.size)
        representatives.extend(singles.tolist())
        members = ordered[lo:hi]  # ascending (ties of the hash order by row)
        if members.size:
            full = _row_hashes(X, members, dtype, None) if sampled.size < n_features else first_hashes[:, members]
            for same in _equal_groups(full, members):
                _number_identical_rows(X, same, dtype, inverse, representatives)
        done = hi
    return DuplicateGroups(inverse=inverse, representatives=np.asarray(representatives, dtype=np.int64))


#: 32-bit words of a row that its first hash reads.
_SAMPLED_WORDS = 1024


def _row_hashes(X, rows: np.ndarray, dtype, columns) -> np.ndarray:
    """``(2, len(rows))`` uint64 linear hashes (32-bit products and sums, wrapping) of the
    canonical words of ``X[rows]``, over ``columns`` only (``None``: all), in chunks."""
    n_words = (X.shape[1] if columns is None else columns.size) * np.dtype(dtype).itemsize // 4
    multipliers = _hash_multipliers(n_words)
    hashes = np.empty((2, rows.size), dtype=np.uint64)
    chunk = max(1, CHUNK_BYTES // (8 * max(1, X.shape[1])))
    contiguous = rows.size == X.shape[0]  # all rows, in order
    hashes32 = np.empty(min(chunk, rows.size), dtype=np.uint32)
    for lo in range(0, rows.size, chunk):
        block = X[lo : lo + chunk] if contiguous else X[rows[lo : lo + chunk]]
        if columns is not None:
            block = block[:, columns]
        words = _canonical_rows(block, dtype).view(np.uint32).reshape(block.shape[0], -1)
        for h in range(2):  # einsum wraps modulo 2^32 as the products and sums do, without a temporary
            np.einsum("ij,j->i", words, multipliers[h], out=hashes32[: words.shape[0]])
            hashes[h, lo : lo + words.shape[0]] = hashes32[: words.shape[0]]
    return hashes


def _hash_runs(hashes: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(ordered, starts)``: ``rows`` ordered by their ``(2, R)`` hashes (ties by row),
    and where each run of equal hashes begins."""
    order = np.lexsort((rows, hashes[1], hashes[0]))
    same = (hashes[0, order[1:]] == hashes[0, order[:-1]]) & (hashes[1, order[1:]] == hashes[1, order[:-1]])
    return rows[order], np.flatnonzero(np.r_[True, ~same])


def _equal_groups(hashes: np.ndarray, rows: np.ndarray):
    """The runs of ``rows`` with equal ``(2, R)`` hashes, ordered by hash, each ascending."""
    ordered, starts = _hash_runs(hashes, rows)
    for first, last in zip(starts.tolist(), np.r_[starts[1:], rows.size].tolist()):
        yield ordered[first:last]


def _number_identical_rows(X, members: np.ndarray, dtype, inverse: np.ndarray, representatives: list) -> None:
    """Number the distinct rows among ``members`` (ascending; usually all identical):
    each chunk is compared byte for byte with the distinct rows found so far."""
    distinct: list[np.ndarray] = []  # canonical bytes of each distinct row met
    ids: list[int] = []
    chunk = max(1, CHUNK_BYTES // (8 * max(1, X.shape[1])))
    for lo in range(0, members.size, chunk):
        rows = members[lo : lo + chunk]
        words = _canonical_rows(X[rows], dtype).view(np.uint32).reshape(rows.size, -1)
        assigned = np.full(rows.size, -1, dtype=np.int64)
        for reference, number in zip(distinct, ids):
            match = (assigned < 0) & (words == reference).all(axis=1)
            assigned[match] = number
        for at in np.flatnonzero(assigned < 0).tolist():  # new content (rare: a collision)
            if assigned[at] >= 0:
                continue
            same = (assigned < 0) & (words == words[at]).all(axis=1)
            number = len(representatives)
            representatives.append(int(rows[at]))
            distinct.append(words[at].copy())
            ids.append(number)
            assigned[same] = number
        inverse[rows] = assigned


def _canonical_rows(rows: np.ndarray, dtype) -> np.ndarray:
    """Contiguous rows in ``dtype`` with ``-0.0`` turned into ``0.0`` (adding 0.0 does)."""
    return np.ascontiguousarray(rows.astype(dtype) + dtype(0.0))


def _hash_multipliers(n_words: int) -> np.ndarray:
    """``(2, n_words)`` fixed odd 32-bit multipliers of the two row hashes."""
    rng = np.random.default_rng(0x5EED)
    return rng.integers(0, 2**31, size=(2, n_words), dtype=np.uint32) * np.uint32(2) + np.uint32(1)


def feature_scale(X) -> float:
    """The power of two ``s`` with ``max |s·X|`` in [0.5, 1) (1 when X is all zeros).

    Multiplying by a power of two is exact, so distances of ``s·X`` are exactly ``s``
    times those of X, and their float32 squares neither overflow nor underflow. ``X`` may
    be a memmap: it is read in chunks.

    Raises:
        ValueError: when the largest magnitude is above 2^1000 (about 1e301) or below
            2^-1000 (about 1e-301), where float64 distances would overflow or lose bits.

    >>> feature_scale(np.array([[3.0, -0.25]]))  # max 3 = 0.75 · 2^2
    0.25
    """
    source = X if isinstance(X, FeatureSource) else FeatureSource(X if isinstance(X, np.memmap) else np.asarray(X))
    peak = source.peak_magnitude() if source.n_rows and source.n_features else 0.0
    if peak == 0.0:
        return 1.0
    if not 1.0 / MAX_MAGNITUDE <= peak <= MAX_MAGNITUDE:
        raise ValueError(
            f"The features' largest magnitude is {peak:.3g}, outside [1e-301, 1e301], where "
            "float64 distances overflow or underflow. Rescale the features (e.g. divide by "
            "their maximum) and scale the result back."
        )
    _, exponent = math.frexp(peak)
    return math.ldexp(1.0, -exponent)


def nearest_neighbors(
    X,
    k: int,
    *,
    device: str | torch.device | None = None,
    mask: BlockMask | None = None,
    observe: BlockObserver | None = None,
    groups: np.ndarray | None = None,
    rows: np.ndarray | None = None,
    memory_budget: int | None = None,
    tile_rows: int | None = None,
    progress: Progress | None = None,
) -> Neighbors:
    """Exact k nearest neighbours of every row of ``X`` among the rows of ``X``.

    Args:
        X: ``(N, D)`` array, tensor or ``numpy.memmap`` of finite features; a memmap is
            read tile by tile, never copied whole.
        k: neighbours per row, ``1 <= k < N``.
        device (None): torch device; ``None`` uses CUDA when present, else the CPU.
        mask (None): ``mask(block, rows, columns)`` sets to +inf, in place, the pairs of a
            block that must not be returned; ``rows`` and ``columns`` are the ``(lo, hi)``
            position ranges of the block. Each row itself is always excluded.
        observe (None): ``observe(block, rows, columns)`` sees every masked block of
            approximate squared distances (float32, not exact), once in each orientation,
            e.g. to accumulate per-class minima.
        groups (None): ``(G + 1,)`` ascending position bounds; positions
            ``groups[g]:groups[g+1]`` form group g, and pairs within a group are excluded
            (e.g. same-label pairs of rows sorted by label). Pairs of tiles inside one
            group are never computed, so two classes cost half of all pairs, and a
            thousand small classes cost about what two do.
        rows (None): ``(M,)`` row indices of X to search among, in the order that defines
            the positions (a subset, or X sorted by label); ``None``: all rows.
        memory_budget (None): bytes of working memory beyond X. By default 256 MiB for a
            memmap, twice the prepared float32 copy (512 MiB to 4 GiB) for data in
            memory, a quarter of the free memory on a GPU. The prepared copy is kept when
            it fits in half of the budget; else tiles are prepared as they are used.
        tile_rows (None): rows per tile (default: the most the budget allows).
        progress (None): called as ``progress(done, M)`` after each block.

    Returns:
        :class:`Neighbors` over positions (indices into ``rows`` when given) with exact
        float64 distances. ``mask`` and ``observe`` see squared distances of the features
        times :attr:`Neighbors.scale`.

    Under torch.distributed (a default process group initialised, e.g. by ``torchrun``),
    the blocks are shared between the ranks and every rank returns the same result.

    >>> nn = nearest_neighbors(np.array([[0.0], [1.0], [3.0]]), 1, device="cpu")
    >>> nn.indices.ravel().tolist(), nn.distances.ravel().tolist()
    ([1, 0, 1], [1.0, 1.0, 2.0])
    """
    device = resolve_device(device)
    source = FeatureSource(as_feature_matrix(X), rows)
    n_rows = source.n_rows
    if not 1 <= k < n_rows:
        raise ValueError(f"k={k} neighbours need 1 <= k < N; X has N={n_rows} rows.")
    found = search(
        source, k, device=device, scale=feature_scale(source), bounds=groups, mask=mask, observe=observe,
        memory_budget=memory_budget, tile_rows=tile_rows, progress=progress,
    )
    return Neighbors(distances=found.distances, indices=found.indices, error_bound=found.error_bound, scale=found.scale)


def approximation_error_bound(X) -> np.ndarray:
    """``(N,)`` float64 bound on ``|approximate − exact|`` squared distance from each row to
    any other row, for the float32 matrix-product distances of :func:`nearest_neighbors`
    (which are distances of the scaled features ``feature_scale(X) · X``)."""
    source = FeatureSource(as_feature_matrix(X))
    return TileProducts(source, feature_scale(source), torch.device("cpu"), resident_bytes=0).error_bound
