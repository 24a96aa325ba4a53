"""The tiles of an exact all-pairs search, and how they are shared between processes.

Positions ``0..N-1`` are cut into row ranges (tiles). The search computes each unordered
pair of tiles once (``a <= b``: symmetry halves the work) and uses the block both ways.
With groups (rows sorted by label, pairs within a label excluded), a large group gets tiles
of its own, and pairs of tiles that lie inside one group are never computed; small groups
share tiles, whose same-group pairs are computed and masked.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["TilePlan", "plan_tiles"]


@dataclass(frozen=True)
class TilePlan:
    """Tiles, their groups, and the pairs of tiles to compute.

    Attributes:
        tiles: ``(lo, hi)`` position ranges, ascending and covering ``0..N``.
        pairs: ``(a, b)`` tile indices, ``a <= b``, diagonal pairs first.
        bounds: ``(G + 1,)`` group bounds over the positions, or ``None`` without groups.
    """

    tiles: list[tuple[int, int]]
    pairs: list[tuple[int, int]]
    bounds: np.ndarray | None

    def cost(self, pair: tuple[int, int]) -> int:
        """Entries of the block of a pair of tiles."""
        (a0, a1), (b0, b1) = self.tiles[pair[0]], self.tiles[pair[1]]
        return (a1 - a0) * (b1 - b0)

    def share(self, rank: int, world: int) -> list[tuple[int, int]]:
        """The pairs that process ``rank`` of ``world`` computes: each pair to the least
        loaded process, largest first, so the shares are balanced and the same on every
        process; returned diagonal pairs first, then row-major."""
        if world == 1:
            return list(self.pairs)
        load = [0] * world
        owner = {}
        for pair in sorted(self.pairs, key=lambda p: (-self.cost(p), p)):
            target = min(range(world), key=lambda r: (load[r], r))
            owner[pair] = target
            load[target] += self.cost(pair)
        return [pair for pair in self.pairs if owner[pair] == rank]

    def tile_of(self, position: int) -> int:
        return int(np.searchsorted([hi for _, hi in self.tiles], position, side="right"))

    def skipped(self, a: int, b: int) -> bool:
        """Whether every pair of rows of tiles ``a`` and ``b`` lies within one group."""
        if self.bounds is None:
            return False
        lo = min(self.tiles[a][0], self.tiles[b][0])
        hi = max(self.tiles[a][1], self.tiles[b][1])
        first = np.searchsorted(self.bounds, lo, side="right") - 1
        return bool(self.bounds[first + 1] >= hi)

    def same_group_ranges(self, a: int, b: int) -> list[tuple[int, int]]:
        """Group ranges ``(lo, hi)`` that meet both tiles (their pairs are excluded)."""
        if self.bounds is None:
            return []
        (a0, a1), (b0, b1) = self.tiles[a], self.tiles[b]
        lo, hi = max(a0, b0), min(a1, b1)
        if lo >= hi:
            return []
        first = int(np.searchsorted(self.bounds, lo, side="right")) - 1
        last = int(np.searchsorted(self.bounds, hi, side="left"))
        return [
            (max(int(g0), lo), min(int(g1), hi))
            for g0, g1 in zip(self.bounds[first:last], self.bounds[first + 1 : last + 1])
        ]


def plan_tiles(n_rows: int, tile_rows: int, bounds: np.ndarray | None = None) -> TilePlan:
    """Cut ``n_rows`` positions into tiles of at most ``tile_rows`` rows.

    Without groups, consecutive ranges. With groups (``bounds``, ascending), a group of at
    least ``tile_rows / 4`` rows gets tiles of its own; smaller groups are packed whole
    into shared tiles.

    >>> plan = plan_tiles(10, 8, np.array([0, 6, 7, 8, 10]))  # groups of 6, 1, 1 and 2 rows
    >>> plan.tiles, plan.pairs
    ([(0, 6), (6, 8), (8, 10)], [(1, 1), (0, 1), (0, 2), (1, 2)])
    """
    tiles: list[tuple[int, int]] = []
    if bounds is None:
        tiles = [(lo, min(n_rows, lo + tile_rows)) for lo in range(0, n_rows, tile_rows)]
    else:
        packed_from = None
        for lo, hi in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
            if hi == lo:
                continue
            if hi - lo >= max(1, tile_rows // 4):
                if packed_from is not None:
                    tiles.append((packed_from, lo))
                    packed_from = None
                tiles.extend((start, min(hi, start + tile_rows)) for start in range(lo, hi, tile_rows))
                continue
            if packed_from is not None and hi - packed_from > tile_rows:
                tiles.append((packed_from, lo))
                packed_from = None
            if packed_from is None:
                packed_from = lo
        if packed_from is not None:
            tiles.append((packed_from, n_rows))
    plan = TilePlan(tiles=tiles, pairs=[], bounds=bounds)
    diagonal = [(a, a) for a in range(len(tiles)) if not plan.skipped(a, a)]
    others = [(a, b) for a in range(len(tiles)) for b in range(a + 1, len(tiles)) if not plan.skipped(a, b)]
    return TilePlan(tiles=tiles, pairs=diagonal + others, bounds=bounds)
