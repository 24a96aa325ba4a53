"""Exact nearest-neighbour search in blocks, on any torch device.

Candidates come from a float32 matrix product (``‖a‖² + ‖b‖² − 2a·b``), which is fast but
cancels catastrophically for near-duplicates. Every candidate whose approximate squared
distance lies within a rigorous rounding bound of the k-th smallest approximate value is
kept, and the kept candidates are re-measured in float64 from the coordinate differences.
So the returned neighbours and distances are exact (to float64 rounding), including for the
near-duplicate pairs that decide label sharpness and TwoNN (docs/science.md §4). Memory is bounded
by one ``(rows, N)`` float32 block; no ``N × N`` matrix is ever formed.

The features are first multiplied by a power of two (:func:`feature_scale`), which is exact,
so that their largest magnitude lies in [0.5, 1): float32 squares can then neither
overflow (features of 1e20) nor underflow (1e-300); distances are scaled back at the end.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import torch

from .devices import exact_float32_matmul, resolve_device

__all__ = [
    "Neighbors",
    "DuplicateGroups",
    "as_feature_matrix",
    "find_duplicates",
    "nearest_neighbors",
    "approximation_error_bound",
    "feature_scale",
    "compact_columns",
]

#: Unit roundoff of IEEE float32 (round to nearest).
FLOAT32_UNIT_ROUNDOFF = 2.0**-24
#: Extra approximate neighbours kept per row beyond k, so that near-ties rarely need the
#: slower per-row fallback.
_EXTRA_CANDIDATES = 8
#: Bytes of float64 differences materialised at once when re-measuring candidates, and
#: the fewest pairs a chunk holds whatever the dimension.
_RECHECK_BYTES = 2 * 2**20
_RECHECK_MIN_ROWS = 32
#: Largest feature magnitude accepted, and the inverse of the smallest nonzero one:
#: distances and their squares must stay finite, and sums of squares must not lose the
#: exponent range of float64.
MAX_MAGNITUDE = 2.0**1000

#: ``mask(block, start, stop, skipped)`` sets to +inf, in place, the entries of the
#: ``(stop - start, M)`` block of squared distances that must not be returned; with
#: ``skipped = (lo, hi)`` the block leaves out those columns (see :func:`compact_columns`).
BlockMask = Callable[[torch.Tensor, int, int], None]
#: ``observe(block, start, stop, skipped)`` sees each masked block before selection.
BlockObserver = Callable[[torch.Tensor, int, int], None]
Progress = Callable[[int, int], None]


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
        order = np.argsort(self.inverse, kind="stable")
        counts = np.bincount(self.inverse, minlength=self.n_distinct)
        splits = np.split(order, np.cumsum(counts)[:-1])
        return [group for group in splits if group.shape[0] > 1]


def as_feature_matrix(X, name: str = "X") -> np.ndarray:
    """Validate an ``(N, D)`` matrix of features and return it as a float numpy array:
    float32 when every value is exactly a float32 (float32, 8- and 16-bit integer and
    boolean input: half the memory, no rounding), else float64.

    Raises:
        TypeError: when ``X`` is not numeric.
        ValueError: when ``X`` is not 2-D, is empty, or holds NaN or inf.
    """
    if isinstance(X, torch.Tensor):
        X = X.detach().to("cpu").numpy()
    array = np.asarray(X)
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
    exact_in_float32 = array.dtype in (np.float32, np.float16, np.bool_) or (
        np.issubdtype(array.dtype, np.integer) and array.dtype.itemsize <= 2
    )
    array = array.astype(np.float32 if exact_in_float32 else np.float64, copy=False)
    finite = np.isfinite(array).all(axis=1)
    if not finite.all():
        bad = np.flatnonzero(~finite)
        raise ValueError(
            f"{name} has NaN or inf values in {bad.size} of {array.shape[0]} rows "
            f"(first rows: {bad[:10].tolist()}). Remove or repair those samples."
        )
    return array


def find_duplicates(X: np.ndarray) -> DuplicateGroups:
    """Group the bit-for-bit identical rows of an ``(N, D)`` float matrix.

    Rows are compared as bytes, never through distances: cancellation in a matrix product
    can turn a near-duplicate into distance 0 and an exact duplicate into a small positive
    value. ``-0.0`` and ``0.0`` count as equal. Rows are hashed in chunks (two 64-bit
    linear hashes of their words), and rows of equal hashes are compared byte for byte, so
    memory stays at one chunk beyond ``O(N)``. Distinct rows are numbered in the order of
    their hashes, a function of their content: the numbering does not depend on the row
    order.

    >>> groups = find_duplicates(np.array([[1.0, 2.0], [0.0, 1.0], [1.0, 2.0], [-0.0, 1.0]]))
    >>> groups.n_duplicates, sorted(groups.representatives.tolist())
    (2, [0, 1])
    >>> bool(groups.inverse[0] == groups.inverse[2] != groups.inverse[1] == groups.inverse[3])
    True
    """
    X = np.asarray(X)
    dtype = np.float32 if X.dtype == np.float32 else np.float64
    n_rows = X.shape[0]
    hashes = np.empty((2, n_rows), dtype=np.uint64)
    multipliers = _hash_multipliers(X.shape[1] * np.dtype(dtype).itemsize // 4)
    chunk = max(1, _RECHECK_BYTES // (8 * max(1, X.shape[1])))
    for lo in range(0, n_rows, chunk):
        words = _canonical_rows(X[lo : lo + chunk], dtype).view(np.uint32).astype(np.uint64)
        for h in range(2):  # wraps modulo 2^64: a linear hash over the row's 32-bit words
            hashes[h, lo : lo + words.shape[0]] = (words * multipliers[h]).sum(axis=1, dtype=np.uint64)
    order = np.lexsort((np.arange(n_rows), hashes[1], hashes[0]))
    same = (hashes[0, order[1:]] == hashes[0, order[:-1]]) & (hashes[1, order[1:]] == hashes[1, order[:-1]])
    starts = np.flatnonzero(np.r_[True, ~same])
    inverse = np.empty(n_rows, dtype=np.int64)
    representatives = []
    for first, last in zip(starts.tolist(), np.r_[starts[1:], n_rows].tolist()):
        members = order[first:last]  # ascending row indices of one hash value
        if members.size == 1:
            inverse[members[0]] = len(representatives)
            representatives.append(members[0])
            continue
        rows = _canonical_rows(X[members], dtype)
        as_bytes = rows.view(np.dtype((np.void, rows.dtype.itemsize * rows.shape[1]))).ravel()
        _, first_of, which = np.unique(as_bytes, return_index=True, return_inverse=True)
        inverse[members] = len(representatives) + which.reshape(-1)
        representatives.extend(members[first_of].tolist())
    return DuplicateGroups(inverse=inverse, representatives=np.asarray(representatives, dtype=np.int64))


def _canonical_rows(rows: np.ndarray, dtype) -> np.ndarray:
    """Contiguous rows in ``dtype`` with ``-0.0`` turned into ``0.0`` (adding 0.0 does)."""
    return np.ascontiguousarray(rows.astype(dtype) + dtype(0.0))


def _hash_multipliers(n_words: int) -> np.ndarray:
    """``(2, n_words)`` fixed odd 64-bit multipliers of the two row hashes."""
    rng = np.random.default_rng(0x5EED)
    return rng.integers(0, 2**63, size=(2, n_words), dtype=np.uint64) * np.uint64(2) + np.uint64(1)


def feature_scale(X) -> float:
    """The power of two ``s`` with ``max |s·X|`` in [0.5, 1) (1 when X is all zeros).

    Multiplying by a power of two is exact, so distances of ``s·X`` are exactly ``s``
    times those of X, and their float32 squares neither overflow nor underflow.

    Raises:
        ValueError: when the largest magnitude is above 2^1000 (about 1e301) or below
            2^-1000 (about 1e-301), where float64 distances would overflow or lose bits.

    >>> feature_scale(np.array([[3.0, -0.25]]))  # max 3 = 0.75 · 2^2
    0.25
    """
    peak = float(np.max(np.abs(X))) if np.size(X) else 0.0
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
    block_bytes: int = 256 * 2**20,
    groups: np.ndarray | None = None,
    progress: Progress | None = None,
) -> Neighbors:
    """Exact k nearest neighbours of every row of ``X`` among the rows of ``X``.

    Args:
        X: ``(N, D)`` array or tensor of finite features.
        k: neighbours per row, ``1 <= k < N``.
        device (None): torch device; ``None`` uses CUDA when present, else the CPU.
        mask (None): excludes pairs; the default excludes each row itself. A custom mask
            replaces the default, so it must exclude the row itself too.
        observe (None): sees every masked block of approximate squared distances (float32,
            not exact), e.g. to accumulate per-class minima.
        block_bytes (256 MiB): memory for one block of approximate distances.
        groups (None): ``(G + 1,)`` ascending row bounds; rows ``groups[g]:groups[g+1]``
            form group g, and pairs within a group are excluded (e.g. same-label pairs of
            rows sorted by label). A block of rows from one group leaves the group's
            columns out (half the work for two classes); small groups share a block, whose
            same-group pairs are computed and masked, so that a thousand classes cost about
            what two do. Each row itself is excluded too, before ``mask``.
        progress (None): called as ``progress(rows_done, N)`` after each block.

    Returns:
        :class:`Neighbors` with exact float64 distances. ``mask`` and ``observe`` see
        squared distances of the features times :attr:`Neighbors.scale`.

    >>> nn = nearest_neighbors(np.array([[0.0], [1.0], [3.0]]), 1, device="cpu")
    >>> nn.indices.ravel().tolist(), nn.distances.ravel().tolist()
    ([1, 0, 1], [1.0, 1.0, 2.0])
    """
    device = resolve_device(device)
    features = as_feature_matrix(X)
    scale = feature_scale(features)
    X = torch.as_tensor(features, device=device)
    n_rows, n_features = X.shape
    if not 1 <= k < n_rows:
        raise ValueError(f"k={k} neighbours need 1 <= k < N; X has N={n_rows} rows.")
    search = _BlockedSearch(X, k, scale)
    rows_per_block = max(1, min(n_rows, block_bytes // (4 * n_rows)))
    distances = np.empty((n_rows, k), dtype=np.float64)
    indices = np.empty((n_rows, k), dtype=np.int64)
    bounds = np.asarray(groups if groups is not None else [0, n_rows], dtype=np.int64)
    with torch.no_grad(), exact_float32_matmul():
        for start, stop, skipped in _blocks(bounds, rows_per_block, groups is not None, max(1, n_rows // 16)):
            shared = groups is not None and skipped is None  # several groups in one block
            exclude = _own_groups_excluder(bounds, mask) if shared else mask or _exclude_self
            block_d, block_i = search.block(start, stop, exclude, observe, skipped)
            distances[start:stop] = block_d.cpu().numpy()
            indices[start:stop] = block_i.cpu().numpy()
            if progress is not None:
                progress(stop, n_rows)
    return Neighbors(
        distances=distances, indices=indices, error_bound=search.error_bound.cpu().numpy(), scale=search.scale,
    )


def approximation_error_bound(X: torch.Tensor) -> torch.Tensor:
    """``(N,)`` float64 bound on ``|approximate − exact|`` squared distance from each row to
    any other row, for the float32 matrix-product distances of :func:`nearest_neighbors`
    (which are distances of the scaled features ``feature_scale(X) · X``)."""
    _, squared_norms = _centered_float32(X, feature_scale(X.cpu().numpy()))
    return _error_bound(squared_norms, X.shape[1])


def _centered_float32(X: torch.Tensor, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``(scale·X − mean)`` in float32, and its rows' float64 squared norms.

    Centring shrinks the norms, and with them the error bound; the scale (a power of two,
    applied first) keeps the squares in range. Built in row chunks, so that no float64
    copy of the whole data is ever made: memory is the float32 result plus one chunk.
    """
    n_rows, n_features = X.shape
    chunk = max(1, _RECHECK_BYTES * 4 // (8 * n_features))
    total = torch.zeros(n_features, dtype=torch.float64, device=X.device)
    for lo in range(0, n_rows, chunk):
        total += (X[lo : lo + chunk].double() * scale).sum(dim=0)
    mean = total / n_rows
    centered = torch.empty((n_rows, n_features), dtype=torch.float32, device=X.device)
    squared_norms = torch.empty(n_rows, dtype=torch.float64, device=X.device)
    for lo in range(0, n_rows, chunk):
        rows = X[lo : lo + chunk].double() * scale - mean
        squared_norms[lo : lo + chunk] = torch.linalg.vecdot(rows, rows)
        centered[lo : lo + chunk] = rows
    return centered, squared_norms


def _error_bound(squared_norms: torch.Tensor, n_features: int) -> torch.Tensor:
    # gamma_D for the float32 dot product, a few roundings for the norms, the sums and the
    # float32 copy of the data, all times (‖a‖² + ‖b‖²); doubled for safety (docs/science.md §4)
    return 2.0 * (n_features + 10) * FLOAT32_UNIT_ROUNDOFF * (squared_norms + squared_norms.max())


def _blocks(bounds, rows_per_block, skip_own_group, large_group=1):
    """``(start, stop, skipped_columns)`` row blocks of at most ``rows_per_block`` rows.

    Without groups (``skip_own_group`` False, one group): consecutive slices. With groups,
    a group of ``rows_per_block`` or ``large_group`` rows or more gets blocks of its own
    that skip its columns (for two classes, half the work); smaller groups are packed
    together into blocks of whole groups, where skipping would cost more in small blocks
    than it saves, and a block that holds a single group skips that group's columns too
    (``skipped`` is then ``(lo, hi)``, else ``None``).
    """
    pairs = list(zip(bounds[:-1].tolist(), bounds[1:].tolist()))
    if not skip_own_group:
        for lo, hi in pairs:
            for start in range(lo, hi, rows_per_block):
                yield start, min(hi, start + rows_per_block), None
        return
    packed = []  # whole small groups waiting to share a block

    def flush():
        if packed:
            lo, hi = packed[0][0], packed[-1][1]
            yield lo, hi, (lo, hi) if len(packed) == 1 else None
            packed.clear()

    for lo, hi in pairs:
        if hi == lo:
            continue
        if hi - lo >= min(rows_per_block, large_group):
            yield from flush()
            for start in range(lo, hi, rows_per_block):
                yield start, min(hi, start + rows_per_block), (lo, hi)
            continue
        if packed and hi - packed[0][0] > rows_per_block:
            yield from flush()
        packed.append((lo, hi))
    yield from flush()


def _own_groups_excluder(bounds, mask):
    """A mask for a block of several whole groups: same-group pairs (each row itself
    included) set to +inf, then ``mask`` applied."""

    def exclude(block, start, stop, skipped=None):
        first = int(np.searchsorted(bounds, start, side="right")) - 1
        last = int(np.searchsorted(bounds, stop, side="left"))
        for lo, hi in zip(bounds[first:last].tolist(), bounds[first + 1 : last + 1].tolist()):
            block[lo - start : hi - start, lo:hi] = float("inf")
        if mask is not None:
            mask(block, start, stop, skipped)

    return exclude


def _exclude_self(block: torch.Tensor, start: int, stop: int, skipped=None) -> None:
    if skipped is not None:
        return  # a row's own group, itself included, is never computed
    rows = torch.arange(stop - start, device=block.device)
    block[rows, rows + start] = float("inf")


def compact_columns(columns, skipped):
    """Column indices of the full ``N`` columns → positions in a block that leaves out the
    ``skipped = (lo, hi)`` range (``None``: unchanged). Columns in the range are invalid."""
    if skipped is None:
        return columns
    lo, hi = skipped
    return columns - (hi - lo) * (columns >= hi)


def _expand_columns(columns, skipped):
    if skipped is None:
        return columns
    lo, hi = skipped
    return columns + (hi - lo) * (columns >= lo)


class _BlockedSearch:
    """State shared by the blocks of one search: the data, its scale, and a centred,
    scaled float32 copy."""

    def __init__(self, X: torch.Tensor, k: int, scale: float):
        self.k = k
        self.scale = scale
        # exact distances come from the uncentred rows (float32 kept where exact): the
        # difference of two close numbers is exact, while centring would round each one
        self.data = X
        self.centered32, squared_norms = _centered_float32(X, scale)
        self.squared_norms32 = squared_norms.float()
        self.error_bound = _error_bound(squared_norms, X.shape[1])
        self._buffers = None
        # within 2^±400 the squares of unscaled differences cannot overflow or underflow, so
        # the scale (a power of two: exact) is applied once to the sum instead of per term
        self.scale_differences = not 2.0**-400 <= scale <= 2.0**400

    def block(self, start, stop, mask, observe, skipped=None):
        approx = self._approximate(start, stop, skipped)
        mask(approx, start, stop, skipped)
        if observe is not None:
            observe(approx, start, stop, skipped)
        n_rows = approx.shape[1]
        n_kept = min(self.k + _EXTRA_CANDIDATES, n_rows)
        values, compact = torch.topk(approx, n_kept, dim=1, largest=False, sorted=True)
        if n_kept < self.k:  # fewer columns than neighbours asked for: pad as "none"
            values = torch.nn.functional.pad(values, (0, self.k - n_kept), value=float("inf"))
            compact = torch.nn.functional.pad(compact, (0, self.k - n_kept), value=0)
        columns = _expand_columns(compact, skipped)
        threshold = values[:, self.k - 1].double() + 2.0 * self.error_bound[start:stop]
        candidate = torch.isfinite(values) & (values.double() <= threshold.unsqueeze(1))
        # re-measure only the candidates: the float64 gather is the costly part
        exact = torch.full(columns.shape, float("inf"), dtype=torch.float64, device=approx.device)
        local_rows, slots = torch.nonzero(candidate, as_tuple=True)
        exact[local_rows, slots] = self._exact_pairs(local_rows + start, columns[local_rows, slots])
        best_d, best_i = _k_smallest(exact, columns, self.k)
        # rows whose last kept value is still a candidate may have more candidates beyond it
        overflow = candidate[:, -1] if values.shape[1] < n_rows else torch.zeros_like(candidate[:, -1])
        for local_row in torch.nonzero(overflow).flatten().tolist():
            row_threshold = threshold[local_row].item()
            cols = _expand_columns(torch.nonzero(approx[local_row].double() <= row_threshold).flatten(), skipped)
            row_exact = self._exact_pairs(torch.full_like(cols, start + local_row), cols)
            d, i = _k_smallest(row_exact.unsqueeze(0), cols.unsqueeze(0), self.k)
            best_d[local_row], best_i[local_row] = d[0], i[0]
        best_i = torch.where(torch.isfinite(best_d), best_i, torch.full_like(best_i, -1))
        return best_d.sqrt() / self.scale, best_i

    def _approximate(self, start, stop, skipped):
        """``(stop − start, M)`` float32 squared distances to every column, or, with
        ``skipped = (lo, hi)``, to the ``M = N − (hi − lo)`` columns outside that range."""
        queries = self.centered32[start:stop]
        n_rows = self.centered32.shape[0]
        ranges = [(0, n_rows)] if skipped is None else [(0, skipped[0]), (skipped[1], n_rows)]
        ranges = [(lo, hi) for lo, hi in ranges if lo < hi]
        width = sum(hi - lo for lo, hi in ranges)
        approx = torch.empty((stop - start, width), dtype=torch.float32, device=queries.device)
        at = 0
        for lo, hi in ranges:
            # a single range writes the whole, contiguous block
            target = approx if len(ranges) == 1 else approx[:, at : at + hi - lo]
            torch.addmm(
                self.squared_norms32[lo:hi].unsqueeze(0), queries, self.centered32[lo:hi].T,
                beta=1.0, alpha=-2.0, out=target,
            )
            at += hi - lo
        return approx.add_(self.squared_norms32[start:stop].unsqueeze(1))

    def _exact_pairs(self, rows: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
        """Float64 squared distances of ``(P,)`` row/column index pairs of the scaled
        features, from the coordinate differences (exact for near-duplicates, unlike the
        matmul identity). Buffers of a few MiB, reused across calls: large temporaries
        cost more in page faults than in arithmetic; but at least
        ``_RECHECK_MIN_ROWS`` pairs a chunk, so that high D is not dispatch-bound."""
        n_features = self.data.shape[1]
        chunk = max(_RECHECK_MIN_ROWS, min(rows.shape[0], _RECHECK_BYTES // (8 * n_features)))
        out = torch.empty(rows.shape, dtype=torch.float64, device=rows.device)
        if self._buffers is None or self._buffers[0].shape[0] < chunk:
            self._buffers = tuple(
                torch.empty((chunk, n_features), dtype=dtype, device=rows.device)
                for dtype in (self.data.dtype, self.data.dtype, torch.float64)
            )
        left, right, diff = self._buffers
        for lo in range(0, rows.shape[0], chunk):
            n = min(chunk, rows.shape[0] - lo)
            torch.index_select(self.data, 0, columns[lo : lo + n], out=left[:n])
            torch.index_select(self.data, 0, rows[lo : lo + n], out=right[:n])
            diff[:n].copy_(left[:n]).sub_(right[:n])  # the difference in float64
            if self.scale_differences:
                diff[:n].mul_(self.scale)  # a power of two: exact, and the squares stay in range
            out[lo : lo + n] = torch.linalg.vecdot(diff[:n], diff[:n])
        return out if self.scale_differences else out.mul_(self.scale * self.scale)


def _k_smallest(values: torch.Tensor, columns: torch.Tensor, k: int):
    """The k smallest ``values`` per row with their ``columns``, ties to the smaller column."""
    by_column = torch.argsort(columns, dim=1)
    values, columns = values.gather(1, by_column), columns.gather(1, by_column)
    if values.shape[1] < k:
        pad = k - values.shape[1]
        values = torch.nn.functional.pad(values, (0, pad), value=float("inf"))
        columns = torch.nn.functional.pad(columns, (0, pad), value=-1)
    order = torch.argsort(values, dim=1, stable=True)[:, :k]
    return values.gather(1, order), columns.gather(1, order)
