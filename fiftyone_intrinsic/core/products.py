"""Approximate squared distances between tiles of rows, with a rigorous error bound.

The rows are centred and multiplied by a power of two (exact) and kept as float32; a tile
of squared distances is ``‖a‖² + ‖b‖² − 2 a·b`` from one float32 matrix product. When
the dimension D is large, the product is summed over D-chunks of ``d_chunk`` features in
float64, so the rounding bound grows with ``d_chunk`` instead of D (docs/science.md §4):
at D = 50,176 that makes it 25 times tighter, and almost no pair needs re-measuring.

On the CPU the product runs on whichever of numpy's BLAS and torch's is faster on this
machine (measured once per process): they differ by up to 2× between CPUs.
"""

from __future__ import annotations

import functools
import math
import time

import numpy as np
import torch

from .host_threads import by_halves
from .source import FeatureSource

__all__ = ["TileProducts", "FLOAT32_UNIT_ROUNDOFF", "error_bound_factor"]

#: Unit roundoff of IEEE float32 (round to nearest).
FLOAT32_UNIT_ROUNDOFF = 2.0**-24
#: Features per float32 partial product when D is large; products longer than
#: ``2 · D_CHUNK`` are split.
D_CHUNK = 2048
#: Rows prepared (centred, scaled, rounded to float32) at once.
_PREPARE_ROWS_BYTES = 4 * 2**20
#: Rows (evenly spaced) whose mean centres the data.
_MEAN_ROWS = 256


def error_bound_factor(n_features: int, d_chunk: int = D_CHUNK) -> float:
    """``c`` such that ``|approximate − exact| ≤ c · (‖a‖² + ‖b‖²)`` for the squared
    distance of two centred rows ``a, b``.

    One float32 product of length ``L + 2`` gives ``‖a‖² + ‖b‖² − 2a·b`` (the norms ride
    along as two extra coordinates): its error is at most ``γ_{L+2} · 2(‖a‖² + ‖b‖²)``.
    When D is split into chunks, ``L`` is ``d_chunk`` plus one for the float64 sum of the
    chunks; otherwise ``L = D``. A few more unit roundoffs cover the float32 norms, the
    float32 copy of the centred data and the final rounding; the whole is taken 1.5 times
    for safety (docs/science.md §4)."""
    length = n_features if n_features <= 2 * d_chunk else d_chunk + 1
    return 1.5 * (2 * (length + 2) + 12) * FLOAT32_UNIT_ROUNDOFF


class PreparedTile:
    """The centred, scaled float32 rows of one tile, as the operands of its products.

    Attributes:
        left: ``(R, D + 2)`` rows ``[c, ‖c‖², 1]`` (unsplit; :meth:`as_right` gives the
            right operand), or ``(R, D)`` the rows ``c`` (split: the product runs over
            column slices of ``d_chunk`` features; BLAS takes them strided at full speed).
        raw: ``left`` is a numpy array of the source rows themselves, not yet centred (a
            split product on the CPU centres each column slice as it multiplies it).
    """

    def __init__(self, left: torch.Tensor, split: bool, raw: bool = False):
        self.left = left
        self.split = split
        self.raw = raw

    def as_right(self, out: torch.Tensor) -> "PreparedTile":
        """The same rows as the right operand, written into ``out``: ``(R, D + 2)`` rows
        ``[−2c, 1, ‖c‖²]``, so that ``left_a · right_bᵀ = ‖a‖² + ‖b‖² − 2a·b`` (split: the
        chunks themselves, ``out`` unused)."""
        if self.split:
            return self
        right = out
        torch.mul(self.left[:, :-2], -2.0, out=right[:, :-2])  # exact: a power of two
        right[:, -2] = 1.0
        right[:, -1] = self.left[:, -2]
        return PreparedTile(right, self.split)


class TileProducts:
    """Centred, scaled float32 rows of a :class:`FeatureSource`, and the approximate
    squared distances between tiles of them.

    Args:
        source: the rows.
        scale: power of two multiplying the features (exact).
        device: torch device of the products.
        resident_bytes: keep the prepared ``(N, D)`` float32 rows on ``device`` when they
            take at most this many bytes; else prepare each tile when it is used.
        d_chunk: features per float32 partial product when D is large.

    Attributes:
        norms: ``(N,)`` float64 squared norms of the prepared rows (scaled units).
        error_bound: ``(N,)`` float64 bound on the error of any approximate squared
            distance from each row: ``c · (‖a‖² + max ‖b‖²)``.
    """

    def __init__(self, source: FeatureSource, scale: float, device: torch.device, resident_bytes: int, d_chunk: int = D_CHUNK):
        self.source = source
        self.scale = scale
        self.device = device
        self.d_chunk = d_chunk
        self._kept: dict[str, torch.Tensor] = {}
        n_rows, n_features = source.n_rows, source.n_features
        self.split = n_features > 2 * d_chunk
        # any common shift leaves distances unchanged: the mean of a sample of rows
        # shrinks the norms (and the bound) about as well as the full mean, for a
        # fraction of a pass; a float32 one rounds each centred coordinate once
        self.mean = source.mean(scale, max_rows=_MEAN_ROWS)
        self._mean32 = self.mean.astype(np.float32)
        resident = self.tile_bytes(n_rows) <= resident_bytes
        # without room for a centred copy, a split product on the CPU centres each column
        # slice of its tiles as it multiplies them (in cache) instead of preparing tiles
        self.streamed = self.split and device.type == "cpu" and not resident
        norms = np.empty(n_rows)
        self.resident = None
        # on the CPU the copy is numpy memory (huge pages: a fresh 200 MB costs 0.04 s,
        # 0.06 s through torch) and is centred in place
        in_place = resident and device.type == "cpu"
        if resident:
            shape = (n_rows, n_features if self.split else n_features + 2)
            self.resident = (torch.from_numpy(np.empty(shape, dtype=np.float32)) if in_place
                             else torch.empty(shape, dtype=torch.float32, device=device))
        step = max(1, _PREPARE_ROWS_BYTES // (4 * n_features))
        scratch = None if in_place else np.empty((min(step, n_rows), n_features), dtype=np.float32)
        for lo in range(0, n_rows, step):
            hi = min(n_rows, lo + step)
            centered = self.resident.numpy()[lo:hi, :n_features] if in_place else scratch[: hi - lo]
            rows = source.read(lo, hi)

            def prepare(part: slice, _) -> None:
                self._centered_rows(rows[part], slice(None), centered[part])
                norms[lo:hi][part] = _squared_norms(centered[part], d_chunk)

            by_halves(prepare, hi - lo, _HALVES_ROWS)
            if resident:
                self._store(self.resident, lo, hi, None if in_place else centered, norms[lo:hi])
        self.norms = norms
        self._norms64 = torch.from_numpy(norms).to(device)
        self.error_bound = error_bound_factor(n_features, d_chunk) * (norms + (norms.max() if n_rows else 0.0))

    def tile_bytes(self, n_rows: int) -> int:
        """Bytes of the prepared rows of ``n_rows`` rows."""
        return n_rows * (self.source.n_features + (0 if self.split else 2)) * 4

    @property
    def bytes_resident(self) -> int:
        return 0 if self.resident is None else self.resident.numel() * 4

    def _centered(self, lo: int, hi: int, out: np.ndarray | None = None) -> np.ndarray:
        """``(hi − lo, D)`` float32 ``scale · x − mean``, each value rounded once (into
        ``out`` when given)."""
        return self._centered_rows(self.source.read(lo, hi), slice(None), out)

    def _centered_rows(self, rows: np.ndarray, features: slice, out: np.ndarray | None = None) -> np.ndarray:
        """``(R, F)`` float32 ``scale · rows[:, features] − mean[features]``, each value
        rounded once: the same bits for a value whichever slice it is centred in."""
        rows = rows[:, features]
        if rows.dtype == np.float32:
            out = np.multiply(rows, np.float32(self.scale), out=out)  # exact: a power of two
            out -= self._mean32[features]
            return out
        centered = rows * self.scale
        centered -= self.mean[features]
        if out is None:
            return centered.astype(np.float32)
        out[...] = centered
        return out

    def _store(self, target: torch.Tensor, lo: int, hi: int, centered: np.ndarray | None, norms: np.ndarray) -> None:
        """Write prepared rows ``lo..hi`` (relative to ``target``) in the operand layout
        (``centered`` ``None``: the rows are in place already)."""
        if centered is not None:
            values = torch.from_numpy(centered).to(self.device)
            target[lo:hi, : centered.shape[1]] = values
        if self.split:
            return
        target[lo:hi, -2] = torch.from_numpy(norms).to(self.device, torch.float32)
        target[lo:hi, -1] = 1.0

    def _reused(self, name: str, shape: tuple, dtype: torch.dtype) -> torch.Tensor:
        """A ``shape`` tensor in memory kept under ``name`` and reused by later calls
        (grown when too small)."""
        numel = math.prod(shape)
        kept = self._kept.get(name)
        if kept is None or kept.numel() < numel:
            kept = self._kept[name] = torch.empty(numel, dtype=dtype, device=self.device)
        return kept[:numel].view(shape)

    def tile(self, lo: int, hi: int, slot: str) -> PreparedTile:
        """The prepared rows ``lo..hi`` on the device, in memory kept under ``slot`` and
        overwritten by the next tile of that slot (unless they are resident, or raw rows).
        Tiles of tens of MB allocated afresh for every block fragment the heap: the
        process's memory grew by 0.5 GB over a 100,000-row memmap."""
        if self.resident is not None:
            return PreparedTile(self.resident[lo:hi], self.split)
        if self.streamed:
            return PreparedTile(self.source.read(lo, hi), True, raw=True)
        shape = (hi - lo, self.source.n_features + (0 if self.split else 2))
        target = self._reused(f"tile:{slot}", shape, torch.float32)
        step = max(1, _PREPARE_ROWS_BYTES // (4 * self.source.n_features))
        scratch = np.empty((min(step, hi - lo), self.source.n_features), dtype=np.float32)
        for at in range(lo, hi, step):
            stop = min(hi, at + step)
            centered = self._centered(at, stop, scratch[: stop - at])
            self._store(target, at - lo, stop - lo, centered, self.norms[at:stop])
        return PreparedTile(target, self.split)

    def right_operand(self, lo: int, hi: int) -> PreparedTile:
        """The prepared rows ``lo..hi`` as the right operand (:meth:`PreparedTile.as_right`),
        in memory kept for it: the previous right operand is overwritten."""
        tile = self.tile(lo, hi, slot="staging")
        if tile.split:  # its own right operand
            return tile
        return tile.as_right(self._reused("tile:right", tuple(tile.left.shape), torch.float32))

    def block(self, rows: PreparedTile, columns: PreparedTile, row_range, column_range) -> torch.Tensor:
        """``(R, S)`` float32 approximate squared distances between the prepared ``rows``
        (positions ``row_range``) and ``columns`` (positions ``column_range``, prepared by
        :meth:`PreparedTile.as_right`). The block lives in memory reused by the next call:
        fresh pages for every block cost more than a third of its matrix product."""
        (r0, r1), (c0, c1) = row_range, column_range
        out = self._reused("block", (r1 - r0, c1 - c0), torch.float32)
        if not self.split:
            return _matmul(rows.left, columns.left.T, out)
        total = self._reused("total", out.shape, torch.float64).zero_()
        for lo in range(0, rows.left.shape[1], self.d_chunk):
            features = slice(lo, lo + self.d_chunk)
            left = self._slice(rows, features, "left")
            right = left if columns is rows else self._slice(columns, features, "right")
            _matmul(left, right.T, out)
            if self.device.type == "cpu":  # numpy adds float32 into float64 8x faster than torch
                np.add(total.numpy(), out.numpy(), out=total.numpy())
            else:
                total.add_(out)
        total.mul_(-2.0).add_(self._norms64[r0:r1, None]).add_(self._norms64[None, c0:c1])
        return out.copy_(total)

    def _slice(self, tile: PreparedTile, features: slice, name: str) -> torch.Tensor:
        """The columns ``features`` of a split tile's centred rows: a view of prepared rows,
        or, for raw rows, centred into memory kept under ``name``."""
        if not tile.raw:
            return tile.left[:, features]
        rows = tile.left
        width = len(range(*features.indices(rows.shape[1])))
        out = self._reused(name, (rows.shape[0], width), torch.float32).numpy()
        by_halves(lambda part, _: self._centered_rows(rows[part], features, out[part]), rows.shape[0], _HALVES_ROWS)
        return torch.from_numpy(out)


#: Rows from which host work on a tile is shared between two threads.
_HALVES_ROWS = 16


def _squared_norms(rows: np.ndarray, d_chunk: int) -> np.ndarray:
    """``(R,)`` float64 squared norms of float32 rows: float32 sums over pieces of
    ``d_chunk`` features (fast), added in float64. Their error, at most
    ``γ_{d_chunk} · ‖c‖²``, is within the bound's allowance (:func:`error_bound_factor`)."""
    norms = np.zeros(rows.shape[0])
    for lo in range(0, rows.shape[1], d_chunk):
        piece = rows[:, lo : lo + d_chunk]
        norms += np.einsum("ij,ij->i", piece, piece)
    return norms


def _matmul(a: torch.Tensor, b: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """``out = a @ b`` in float32, on the fastest BLAS for the device."""
    if out.device.type == "cpu" and _numpy_is_faster():
        np.matmul(a.numpy(), b.numpy(), out=out.numpy())
        return out
    return torch.mm(a, b, out=out)


@functools.lru_cache(maxsize=1)
def _numpy_is_faster() -> bool:
    """Whether numpy's BLAS multiplies float32 matrices faster than torch's on this CPU
    (OpenBLAS with its SkylakeX kernel can reach twice MKL's speed on AMD CPUs)."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((768, 768), dtype=np.float32)
    b = rng.standard_normal((768, 768), dtype=np.float32)
    out = np.empty((768, 768), dtype=np.float32)
    ta, tb, tout = torch.from_numpy(a), torch.from_numpy(b), torch.from_numpy(out)

    def best(run):
        run()
        times = []
        for _ in range(3):
            start = time.perf_counter()
            run()
            times.append(time.perf_counter() - start)
        return min(times)

    return best(lambda: np.matmul(a, b, out=out)) < best(lambda: torch.mm(ta, tb, out=tout))
