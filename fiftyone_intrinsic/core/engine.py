"""The exact k-nearest-neighbour search, in 2-D tiles, on one process or many.

For every computed pair of tiles (:mod:`.tiles`) a block of approximate squared distances
comes from one float32 matrix product (:mod:`.products`), whose rounding error is bounded
rigorously. Each row keeps a running list of its ``k + 8`` smallest approximate values; a
block is offered to the rows of both tiles (each pair of rows is computed once). When every
tile is done, each row re-measures in float64 (:mod:`.exact`) all kept values within twice
the bound of its k-th smallest one, so the k returned neighbours and distances are exact
(docs/science.md §4). A row whose whole list lies within that margin (near-ties) has its
row of blocks recomputed and every candidate re-measured.

Optionally the search also keeps the ``top`` closest pairs over all rows, independently of
k: each block adds the pairs within ``2 · max error`` of the ``top``-th smallest value seen
so far to a bounded list, re-measured at the end.

Memory is the tiles (or one prepared float32 copy when it fits the budget), one block, and
``O(N · k)``: no ``N × N`` matrix, no float64 copy of the data. Under torch.distributed
the pairs of tiles are shared between the ranks and the findings combined; every rank
returns the same result.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from .collectives import agree_on_min, all_gather_concat, all_gather_objects, all_reduce, rank_and_world
from .devices import exact_float32_matmul
from .exact import ExactDistances
from .host_threads import helper_threads, side_by_side
from .products import PreparedTile, TileProducts
from .source import FeatureSource
from .tiles import plan_tiles

__all__ = ["SearchResult", "search", "default_memory_budget", "host_kernels", "BlockMask", "BlockObserver", "Progress"]

#: Approximate neighbours kept per row beyond k, so that near-ties rarely need the slower
#: recomputation of a row.
EXTRA_CANDIDATES = 8
#: Working memory of the search on the CPU when no budget is given: for a memmap, and the
#: least for data in memory (which may use up to twice its prepared copy, at most 4 GiB).
DEFAULT_CPU_BUDGET = 256 * 2**20
DEFAULT_IN_MEMORY_BUDGET = 512 * 2**20
MAX_DEFAULT_CPU_BUDGET = 4 * 2**30

#: ``mask(block, rows, columns)`` sets to +inf, in place, the entries of the block of
#: squared distances between positions ``rows = (lo, hi)`` and ``columns = (lo, hi)``
#: that must not be returned.
BlockMask = Callable[[torch.Tensor, tuple, tuple], None]
#: ``observe(block, rows, columns)`` sees every masked block, once in each orientation.
BlockObserver = Callable[[torch.Tensor, tuple, tuple], None]
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class SearchResult:
    """What :func:`search` finds, by position.

    Attributes:
        distances: ``(N, k)`` float64 exact distances (feature units), ascending; ``inf``
            where a row has fewer than k admissible neighbours.
        indices: ``(N, k)`` int64 positions (ties to the smaller), ``-1`` with ``inf``.
        error_bound: ``(N,)`` float64 bound on the error of the approximate squared
            distances from each row (units of ``scale · X``).
        scale: the power of two the features were multiplied by.
        pairs: ``(P, 2)`` int64 positions ``i < j`` of the candidate closest pairs (a
            superset of the ``top`` closest, ties included), with ``pair_distances``
            ``(P,)`` float64 exact, ascending; empty unless ``top`` was asked for.
    """

    distances: np.ndarray
    indices: np.ndarray
    error_bound: np.ndarray
    scale: float
    pairs: np.ndarray
    pair_distances: np.ndarray


def default_memory_budget(device: torch.device, source: FeatureSource | None = None) -> int:
    """On a GPU, a quarter of its free memory (at most 32 GiB). On the CPU, 256 MiB for a
    memmap (out-of-core data stays out of core); for data already in memory, enough to
    keep one prepared float32 copy beside the tiles (twice its size, 512 MiB to 4 GiB)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(min(free // 4, 32 * 2**30))
    if source is None or isinstance(source.data, np.memmap):
        return DEFAULT_CPU_BUDGET
    prepared = source.n_rows * (source.n_features + 2) * 4
    return int(min(MAX_DEFAULT_CPU_BUDGET, max(DEFAULT_IN_MEMORY_BUDGET, 2 * prepared)))


def tile_rows_for(n_rows: int, n_features: int, budget: int, resident: bool, split: bool) -> int:
    """Rows per tile so that one block and its temporaries (and, unless the prepared rows
    are resident, a row tile and a column tile) fit in ``budget`` bytes."""
    per_entry = 12 + (12 if split else 0)  # the block, a gathered copy, comparisons, selections
    # the right operand of a column tile (split: the prepared rows themselves); streaming,
    # also the left operand of a row tile, the left one of the column tile while its right
    # one is made, and slack
    per_row = 4 * (n_features + 2) * ((0 if split else 1) if resident else 4)
    tile = (-per_row + math.sqrt(per_row * per_row + 4 * per_entry * max(budget, 1))) / (2 * per_entry)
    return int(min(n_rows, max(64, tile)))


def search(
    source: FeatureSource,
    k: int,
    *,
    device: torch.device,
    scale: float,
    bounds: np.ndarray | None = None,
    mask: BlockMask | None = None,
    observe: BlockObserver | None = None,
    top: int = 0,
    memory_budget: int | None = None,
    tile_rows: int | None = None,
    progress: Progress | None = None,
) -> SearchResult:
    """Exact k nearest neighbours of every position among all positions of ``source``.

    Args:
        source: the rows (in memory or a memmap), by position.
        k: neighbours per row, ``1 <= k < N``.
        device: torch device of the products.
        scale: power of two making the features' largest magnitude at most 1.
        bounds (None): ``(G + 1,)`` ascending group bounds; pairs within a group are
            excluded (each row itself always is).
        mask, observe: see :data:`BlockMask`, :data:`BlockObserver`. Under
            torch.distributed an observer needs a ``synchronize()`` method, called once
            every block has been seen, that combines what the ranks observed.
        top (0): also return the ``top`` closest admissible pairs.
        memory_budget (None): bytes of working memory (:func:`default_memory_budget`).
        tile_rows (None): rows per tile (default: from the budget).
        progress (None): ``progress(done, N)`` after each block.
    """
    with torch.no_grad(), exact_float32_matmul():
        return _TiledSearch(source, k, device, scale, bounds, mask, observe, top, memory_budget, tile_rows, progress).run()


class _TiledSearch:
    def __init__(self, source, k, device, scale, bounds, mask, observe, top, memory_budget, tile_rows, progress):
        self.rank, self.world = rank_and_world()
        if self.world > 1 and observe is not None and not hasattr(observe, "synchronize"):
            raise ValueError("Under torch.distributed an observer needs a synchronize() method.")
        budget = memory_budget or default_memory_budget(device, source)
        if self.world > 1:
            budget = agree_on_min(budget)  # the tiles must be the same on every rank
        n_rows, n_features = source.n_rows, source.n_features
        self.source, self.k, self.device, self.scale = source, k, device, scale
        self.mask, self.observe, self.top, self.progress = mask, observe, top, progress
        self.products = TileProducts(source, scale, device, resident_bytes=budget // 2)
        left = budget - self.products.bytes_resident
        rows = tile_rows or tile_rows_for(n_rows, n_features, left, self.products.resident is not None, self.products.split)
        self.plan = plan_tiles(n_rows, rows, None if bounds is None else np.asarray(bounds, dtype=np.int64))
        self.exact = ExactDistances(source, scale, device, resident_bytes=budget // 2)
        self.m = min(k + EXTRA_CANDIDATES, n_rows - 1)
        self.values = torch.full((n_rows, self.m), float("inf"), dtype=torch.float32, device=device)
        self.columns = torch.full((n_rows, self.m), -1, dtype=torch.int64, device=device)
        self.error = torch.from_numpy(self.products.error_bound).to(device)
        self.max_error = float(self.products.error_bound.max()) if n_rows else 0.0
        self.pair_parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self.pair_count = 0
        self.pair_limit = float("inf")
        self._tile_cache: dict[str, tuple[int, PreparedTile]] = {}  # side: (tile, operand)

    # ------------------------------------------------------------------ the tile loop
    def run(self) -> SearchResult:
        pairs = self.plan.share(self.rank, self.world)
        total = max(1, sum(self.plan.cost(pair) for pair in pairs))
        done = 0
        n_rows = self.source.n_rows
        for a, b in pairs:
            self._take_block(a, b, self._block(a, b))
            done += self.plan.cost((a, b))
            if self.progress is not None:
                self.progress(n_rows * done // total, n_rows)
        if self.progress is not None and not pairs:
            self.progress(n_rows, n_rows)
        self._tile_cache.clear()
        if self.observe is not None and hasattr(self.observe, "synchronize"):
            self.observe.synchronize()
        self._combine_ranks()
        distances, indices = self._finish_rows()
        pairs_found, pair_distances = self._finish_pairs()
        return SearchResult(
            distances=distances, indices=indices, error_bound=self.products.error_bound, scale=self.scale,
            pairs=pairs_found, pair_distances=pair_distances,
        )

    def _operand(self, index: int, side: str) -> PreparedTile:
        """The prepared rows of a tile as the ``"left"`` or ``"right"`` operand of its
        blocks; the last one of each side is kept (the loop is row-major: one left tile
        meets many right ones), each in memory of its own that the next one reuses."""
        cached = self._tile_cache.get(side)
        if cached is None or cached[0] != index:
            lo, hi = self.plan.tiles[index]
            tile = self.products.tile(lo, hi, slot="left") if side == "left" else self.products.right_operand(lo, hi)
            self._tile_cache[side] = cached = (index, tile)
        return cached[1]

    def _block(self, a: int, b: int) -> torch.Tensor:
        """Masked ``(rows of a, rows of b)`` block of approximate squared distances."""
        rows, columns = self.plan.tiles[a], self.plan.tiles[b]
        block = self.products.block(self._operand(a, "left"), self._operand(b, "right"), rows, columns)
        if a == b:
            block.fill_diagonal_(float("inf"))
        for lo, hi in self.plan.same_group_ranges(a, b):
            block[lo - rows[0] : hi - rows[0], lo - columns[0] : hi - columns[0]] = float("inf")
        if self.mask is not None:
            self.mask(block, rows, columns)
        return block

    def _take_block(self, a: int, b: int, block: torch.Tensor) -> None:
        """Offer a block to the running lists of the rows of both its tiles (and to the
        observer and the pair list). The rows of tile a and those of tile b are disjoint,
        so on the CPU the two sides run at once (:mod:`.host_threads`); a tile's block
        with itself is shared between the threads by halves of its rows."""
        (a0, a1), (b0, b1) = self.plan.tiles[a], self.plan.tiles[b]
        split = a0 + (a1 - a0) // 2 if a == b and helper_threads(self.device) else a1

        def first() -> torch.Tensor:
            if self.observe is not None:
                self.observe(block, (a0, a1), (b0, b1))
            minima = _group_minima(block[: split - a0], False)
            self._offer(a0, block[: split - a0], b0, minima=minima)
            return minima

        def second() -> torch.Tensor | None:
            if a != b:
                if self.observe is not None:
                    self.observe(block.T, (b0, b1), (a0, a1))
                self._offer(b0, block, a0, transposed=True)
                return None
            minima = _group_minima(block[split - a0 :], False)
            self._offer(split, block[split - a0 :], b0, minima=minima)
            return minima

        minima, rest = side_by_side(first, second if a != b or split < a1 else None, self.device)
        if self.top:
            if rest is not None:
                minima = torch.cat([minima, rest])
            self._offer_pairs(block, a0, b0, a == b, minima)

    def _offer(self, lo: int, block: torch.Tensor, column_lo: int, transposed: bool = False,
               minima: torch.Tensor | None = None) -> None:
        """Merge a block into the running lists of its rows (positions ``lo..``; columns at
        ``column_lo..``), or with ``transposed`` of its columns (positions ``lo..``; rows
        at ``column_lo..``). A row with a full list takes only the values up to its largest
        kept one (few, after the first tiles). A row with free places takes the values up
        to the m-th smallest of its minima over groups of columns: m distinct entries lie
        at or below it, so its list fills, at a fraction of a full selection. ``minima``:
        the block's :func:`_group_minima` in this orientation, when already computed."""
        if minima is None:
            minima = _group_minima(block, transposed)
        limits = self.values[lo : lo + minima.shape[0], -1]
        fresh = torch.isinf(limits)
        if fresh.any():
            limits = torch.where(fresh, _mth_smallest(minima, self.m), limits)
        rows, columns, values = _entries_at_most(block, transposed, minima, limits)
        if rows.numel():
            self._merge_sparse(lo + rows, values, columns + column_lo)

    def _merge_dense(self, rows: torch.Tensor, values: torch.Tensor, columns: torch.Tensor) -> None:
        all_values = torch.cat([self.values[rows], values], dim=1)
        all_columns = torch.cat([self.columns[rows], columns], dim=1)
        kept, slots = torch.topk(all_values, self.m, dim=1, largest=False, sorted=True)
        self.values[rows] = kept
        self.columns[rows] = all_columns.gather(1, slots)

    def _merge_sparse(self, rows: torch.Tensor, values: torch.Tensor, columns: torch.Tensor) -> None:
        """Merge ``(P,)`` entries given as (row, value, column), rows ascending."""
        if host_kernels(values):
            _merge_host(self.values.numpy(), self.columns.numpy(), rows.numpy(), values.numpy(), columns.numpy())
            return
        unique, inverse, counts = torch.unique_consecutive(rows, return_inverse=True, return_counts=True)
        starts = torch.cumsum(counts, 0) - counts
        slot = torch.arange(rows.shape[0], device=rows.device) - starts[inverse]
        width = int(counts.max())
        dense_values = torch.full((unique.shape[0], width), float("inf"), dtype=values.dtype, device=values.device)
        dense_columns = torch.full((unique.shape[0], width), -1, dtype=torch.int64, device=values.device)
        dense_values[inverse, slot] = values
        dense_columns[inverse, slot] = columns
        self._merge_dense(unique, dense_values, dense_columns)

    def _offer_pairs(self, block: torch.Tensor, row_lo: int, column_lo: int, diagonal: bool, minima: torch.Tensor) -> None:
        """Keep the block's pairs that may be among the ``top`` closest: within twice the
        largest error of the ``top``-th smallest value seen so far (of this block, while
        fewer than ``top`` pairs have been kept). ``minima``: the block's
        :func:`_group_minima`."""
        limit = self.pair_limit
        if math.isinf(limit):
            # a diagonal block holds each pair twice, as two values within 2·error of each
            # other: its 2·top smallest values cover at least top pairs
            wanted = self.top * (2 if diagonal else 1)
            # the rows' minima are entries of distinct rows: the wanted-th smallest of them
            # bounds that many entries (a full selection over the block is 10x slower)
            values = minima.amin(dim=1) if block.shape[0] >= wanted else block.flatten()
            n = min(wanted, values.numel())
            largest = torch.topk(values, n, largest=False, sorted=True).values[-1].item()
            margin = (4.0 if diagonal else 2.0) * self.max_error
            limit = largest + margin if n == wanted else float("inf")
        limits = torch.full((block.shape[0],), limit, dtype=block.dtype, device=block.device)
        rows, columns, values = _entries_at_most(block, False, minima, limits)
        if diagonal:  # each unordered pair once: the upper triangle
            upper = rows < columns
            rows, columns, values = rows[upper], columns[upper], values[upper]
        if rows.numel():
            self.pair_parts.append(
                ((rows + row_lo).cpu().numpy(), (columns + column_lo).cpu().numpy(), values.cpu().numpy())
            )
            self.pair_count += int(rows.numel())
        if self.pair_count >= self.top and (math.isinf(self.pair_limit) or self.pair_count > 4 * self.top + 4096):
            self._prune_pairs()

    def _prune_pairs(self) -> None:
        rows, columns, values = (np.concatenate(part) for part in zip(*self.pair_parts))
        if values.size >= self.top:
            limit = float(np.partition(values, self.top - 1)[self.top - 1]) + 2.0 * self.max_error
            self.pair_limit = min(self.pair_limit, limit)
        keep = values <= self.pair_limit
        self.pair_parts = [(rows[keep], columns[keep], values[keep])]
        self.pair_count = int(keep.sum())

    # ------------------------------------------------------------------ combining
    def _combine_ranks(self) -> None:
        if self.world == 1:
            return
        values = all_gather_concat(self.values, dim=1)
        columns = all_gather_concat(self.columns, dim=1)
        kept, slots = torch.topk(values, self.m, dim=1, largest=False, sorted=True)
        self.values, self.columns = kept, columns.gather(1, slots)

    def _own_rows(self) -> tuple[int, int]:
        n_rows = self.source.n_rows
        return self.rank * n_rows // self.world, (self.rank + 1) * n_rows // self.world

    def _finish_rows(self) -> tuple[np.ndarray, np.ndarray]:
        """Exact distances of each own row's candidates; the k smallest, ties to the
        smaller position; every rank's rows combined."""
        n_rows, k = self.source.n_rows, self.k
        lo, hi = self._own_rows()
        values = self.values[lo:hi].double()
        threshold = values[:, k - 1] + 2.0 * self.error[lo:hi]
        candidate = (torch.isfinite(values) & (values <= threshold[:, None])).cpu().numpy()
        columns = self.columns[lo:hi].cpu().numpy()
        exact = np.full(columns.shape, np.inf)
        rows, slots = np.nonzero(candidate)
        exact[rows, slots] = self.exact(rows + lo, columns[rows, slots])
        distances, indices = _k_smallest(exact, np.where(candidate, columns, -1), k)
        if self.m < n_rows - 1:  # a full list of candidates may hide more of them
            overflow = np.flatnonzero(candidate[:, -1])
            if overflow.size:
                d, i = self._recompute_rows(overflow + lo, threshold[torch.from_numpy(overflow)].cpu().numpy())
                distances[overflow], indices[overflow] = d, i
        indices = np.where(np.isfinite(distances), indices, -1)
        distances = np.sqrt(distances) / self.scale
        all_distances = np.zeros((n_rows, k))
        all_indices = np.zeros((n_rows, k), dtype=np.int64)
        all_distances[lo:hi], all_indices[lo:hi] = distances, indices
        if self.world > 1:
            all_distances = all_reduce(torch.from_numpy(all_distances), "sum").numpy()
            all_indices = all_reduce(torch.from_numpy(all_indices), "sum").numpy()
        return all_distances, all_indices

    def _recompute_rows(self, positions: np.ndarray, thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Exact k nearest of ``positions`` from every approximate value within their
        ``thresholds``, recomputing the blocks of their tiles against all tiles."""
        found_rows, found_columns = [], []
        tile_of = np.array([self.plan.tile_of(int(p)) for p in positions])
        for a in np.unique(tile_of).tolist():
            mine = np.flatnonzero(tile_of == a)
            local = torch.as_tensor(positions[mine] - self.plan.tiles[a][0], device=self.device)
            limit = torch.as_tensor(thresholds[mine], device=self.device)[:, None]
            for b in range(len(self.plan.tiles)):
                if self.plan.skipped(min(a, b), max(a, b)):
                    continue
                block = self._block(a, b)[local]
                rows, columns = torch.nonzero(block.double() <= limit, as_tuple=True)
                found_rows.append(mine[rows.cpu().numpy()])
                found_columns.append(columns.cpu().numpy() + self.plan.tiles[b][0])
            self._tile_cache.clear()
        rows, columns = np.concatenate(found_rows), np.concatenate(found_columns)
        exact = self.exact(positions[rows], columns)
        width = max(self.k, int(np.bincount(rows, minlength=positions.size).max()))
        dense_exact = np.full((positions.size, width), np.inf)
        dense_columns = np.full((positions.size, width), -1, dtype=np.int64)
        order = np.argsort(rows, kind="stable")
        rows, columns, exact = rows[order], columns[order], exact[order]
        starts = np.searchsorted(rows, np.arange(positions.size))
        slot = np.arange(rows.size) - starts[rows]
        dense_exact[rows, slot], dense_columns[rows, slot] = exact, columns
        return _k_smallest(dense_exact, dense_columns, self.k)

    def _finish_pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """Exact distances of the candidate closest pairs of all ranks, ascending."""
        if not self.top:
            return np.empty((0, 2), dtype=np.int64), np.empty(0)
        gathered = all_gather_objects(self.pair_parts)
        parts = [part for rank_parts in gathered for part in rank_parts]
        if not parts:
            return np.empty((0, 2), dtype=np.int64), np.empty(0)
        self.pair_parts, self.pair_limit = [tuple(np.concatenate(p) for p in zip(*parts))], float("inf")
        self._prune_pairs()
        rows, columns, _ = self.pair_parts[0]
        distances = np.sqrt(self.exact(rows, columns)) / self.scale
        order = np.lexsort((columns, rows, distances))
        return np.stack([rows[order], columns[order]], axis=1), distances[order]


def host_kernels(tensor: torch.Tensor) -> bool:
    """Whether selections on ``tensor`` use the CPU's fastest kernels (numpy's partition and
    segmented reductions) rather than the device ones (torch's topk, segment_reduce).
    Tests switch it off to run the device code on the CPU."""
    return tensor.device.type == "cpu"


#: Columns per group of a block's group minima (:func:`_group_minima`).
_GROUP_COLUMNS = 32


def _groups(block: torch.Tensor, transposed: bool) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Views of ``block`` (or of ``block.T``) cut into whole groups of ``_GROUP_COLUMNS``
    columns, ``(rows, groups, 32)`` (or ``(groups, 32, rows)`` for ``block.T``, whose columns
    are the block's rows), and the remaining columns, ``(rows, tail)`` in the view's
    orientation; ``None`` where there are none. No copy of a contiguous block (the search's
    blocks are)."""
    size = _GROUP_COLUMNS
    block = block.contiguous()
    height, width = block.shape
    if transposed:
        n_groups = height // size
        whole = block[: n_groups * size].view(n_groups, size, width) if n_groups else None
        tail = block[n_groups * size :].T if height % size else None
    else:
        n_groups = width // size
        whole = block.as_strided((height, n_groups, size), (block.stride(0), size, 1)) if n_groups else None
        tail = block[:, n_groups * size :] if width % size else None
    return whole, tail


def _group_minima(block: torch.Tensor, transposed: bool) -> torch.Tensor:
    """``(R, G)`` minima of each row of ``block`` (or of ``block.T``, R its columns) over
    groups of ``_GROUP_COLUMNS`` consecutive columns, the last group the remaining columns.
    One pass over the block, in its own layout."""
    whole, tail = _groups(block, transposed)
    parts = []
    if whole is not None:
        parts.append(whole.amin(dim=1).T if transposed else whole.amin(dim=2))
    if tail is not None:
        parts.append(tail.amin(dim=1, keepdim=True))
    return torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]


def _mth_smallest(minima: torch.Tensor, m: int) -> torch.Tensor:
    """Per row, the m-th smallest of its group ``minima`` (``inf`` when there are fewer
    than m groups). At least m entries of the row, in distinct groups, are at most it."""
    if minima.shape[1] < m:
        return torch.full((minima.shape[0],), float("inf"), dtype=minima.dtype, device=minima.device)
    if host_kernels(minima):  # numpy's partition: 2-6x faster than torch's kthvalue or topk
        return torch.from_numpy(np.partition(minima.numpy(), m - 1, axis=1)[:, m - 1])
    return torch.topk(minima, m, dim=1, largest=False).values[:, -1]


def _entries_at_most(block: torch.Tensor, transposed: bool, minima: torch.Tensor, limits: torch.Tensor):
    """``(rows, columns, values)`` of the finite entries of ``block`` (or of ``block.T``)
    at most their row's limit, ordered by row. Only the groups whose minimum (``minima``
    from :func:`_group_minima`) is within the limit are read: a comparison of ``G`` minima
    per row and a gather of the few groups that qualify, instead of a pass over the block."""
    if host_kernels(block):
        return tuple(torch.from_numpy(part) for part in _entries_at_most_host(
            block.contiguous().numpy(), transposed, minima.numpy(), limits.numpy()))
    limits = limits.clamp(max=torch.finfo(block.dtype).max)  # inf <= inf: masked entries stay out
    hit_rows, hit_groups = torch.nonzero(minima <= limits[:, None], as_tuple=True)
    whole, tail = _groups(block, transposed)
    n_whole = 0 if whole is None else (whole.shape[0] if transposed else whole.shape[1])
    found = []
    in_whole = hit_groups < n_whole
    if whole is not None and bool(in_whole.any()):
        rows, groups = hit_rows[in_whole], hit_groups[in_whole]
        values = whole[groups, :, rows] if transposed else whole[rows, groups]  # (H, 32)
        which, offsets = torch.nonzero(values <= limits[rows, None], as_tuple=True)
        found.append((rows[which], groups[which] * _GROUP_COLUMNS + offsets, values[which, offsets]))
    if tail is not None and not bool(in_whole.all()):
        rows = torch.unique(hit_rows[~in_whole])
        values = tail[rows]
        which, offsets = torch.nonzero(values <= limits[rows, None], as_tuple=True)
        found.append((rows[which], n_whole * _GROUP_COLUMNS + offsets, values[which, offsets]))
    if not found:
        empty = torch.empty(0, dtype=torch.int64, device=block.device)
        return empty, empty, torch.empty(0, dtype=block.dtype, device=block.device)
    if len(found) == 1:
        return found[0]
    rows, columns, values = (torch.cat(part) for part in zip(*found))
    order = torch.sort(rows, stable=True).indices
    return rows[order], columns[order], values[order]


def _entries_at_most_host(block: np.ndarray, transposed: bool, minima: np.ndarray, limits: np.ndarray):
    """numpy version of :func:`_entries_at_most` (3x faster on the CPU: flat ``nonzero``
    instead of torch's two-dimensional one, and no separate pass for the last, short group).

    Each qualifying group is read as a window of ``W = min(32, n)`` consecutive columns of
    the view (``n`` its number of columns); the last group's window ends at column ``n`` and
    so may begin inside the group before it, whose columns it then skips. In ``block.T`` the
    groups are visited group by group (consecutive reads of nearby memory), then the entries
    are put in row order by a stable sort."""
    limits = np.minimum(limits, np.finfo(block.dtype).max)  # inf <= inf: masked entries stay out
    height, width = block.shape
    n = height if transposed else width
    window = min(_GROUP_COLUMNS, n)
    n_groups = minima.shape[1]
    if transposed:  # (group, row) order: the window reads of one group share cache lines
        hits = np.flatnonzero(np.ascontiguousarray(minima.T) <= limits[None, :])
        groups, rows = np.divmod(hits, minima.shape[0])
    else:
        hits = np.flatnonzero(minima <= limits[:, None])
        rows, groups = np.divmod(hits, n_groups)
    starts = np.minimum(groups * _GROUP_COLUMNS, n - window)
    step_rows, step_columns = block.strides
    if transposed:
        windows = np.lib.stride_tricks.as_strided(block, (n - window + 1, window, width), (step_rows, step_rows, step_columns))
        values = windows[starts, :, rows]  # (H, W)
    else:
        windows = np.lib.stride_tricks.as_strided(block, (height, n - window + 1, window), (step_rows, step_columns, step_columns))
        values = windows[rows, starts]  # (H, W)
    within = values <= limits[rows, None]
    if n_groups and n % _GROUP_COLUMNS and n > window:  # the last window overlaps the group before
        last = np.flatnonzero(groups == n_groups - 1)
        within[last, : (n_groups - 1) * _GROUP_COLUMNS - (n - window)] = False
    found = np.flatnonzero(within)
    which, offsets = np.divmod(found, window)
    rows, columns, values = rows[which], starts[which] + offsets, values.reshape(-1)[found]
    if transposed:
        order = np.argsort(rows.astype(np.int16 if minima.shape[0] < 2**15 else np.int32), kind="stable")  # radix
        rows, columns, values = rows[order], columns[order], values[order]
    return rows, columns, values


def _merge_host(kept_values: np.ndarray, kept_columns: np.ndarray, rows: np.ndarray, values: np.ndarray, columns: np.ndarray) -> None:
    """numpy version of the running lists' merge (twice as fast as torch's on the CPU):
    each row of ``kept_values`` (``(N, m)``, ascending, with ``kept_columns``) keeps the m
    smallest of its own values and of the new entries ``(rows, values, columns)``, rows
    ascending. The m smallest are found by a partition, then sorted."""
    m = kept_values.shape[1]
    starts = np.flatnonzero(np.diff(rows, prepend=-1))
    counts = np.diff(starts, append=rows.shape[0])
    unique = rows[starts]
    width = m + int(counts.max())
    which = np.repeat(np.arange(unique.shape[0]), counts)
    slot = np.arange(rows.shape[0]) - starts[which] + m
    all_values = np.full((unique.shape[0], width), np.inf, dtype=kept_values.dtype)
    all_columns = np.full((unique.shape[0], width), -1, dtype=kept_columns.dtype)
    all_values[:, :m] = kept_values[unique]
    all_columns[:, :m] = kept_columns[unique]
    all_values[which, slot] = values
    all_columns[which, slot] = columns
    smallest = np.argpartition(all_values, m - 1, axis=1)[:, :m]
    smallest = np.take_along_axis(smallest, np.argsort(np.take_along_axis(all_values, smallest, 1), axis=1), 1)
    kept_values[unique] = np.take_along_axis(all_values, smallest, 1)
    kept_columns[unique] = np.take_along_axis(all_columns, smallest, 1)


def _k_smallest(values: np.ndarray, columns: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k smallest ``values`` of each row with their ``columns``, ties to the smaller
    column (``-1`` and ``inf`` padding last)."""
    if values.shape[1] < k:
        pad = k - values.shape[1]
        values = np.pad(values, ((0, 0), (0, pad)), constant_values=np.inf)
        columns = np.pad(columns, ((0, 0), (0, pad)), constant_values=-1)
    tie_key = np.where(columns < 0, np.iinfo(np.int64).max, columns)
    order = np.lexsort((tie_key, values), axis=-1)[:, :k]
    return np.take_along_axis(values, order, 1), np.take_along_axis(columns, order, 1)
