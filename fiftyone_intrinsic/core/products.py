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
import time

import numpy as np
import torch

from .source import FeatureSource

__all__ = ["TileProducts", "FLOAT32_UNIT_ROUNDOFF", "error_bound_factor"]

#: Unit roundoff of IEEE float32 (round to nearest).
FLOAT32_UNIT_ROUNDOFF = 2.0**-24
#: Features per float32 partial product when D is large; products longer than
#: ``2 · D_CHUNK`` are split.
D_CHUNK = 2048
#: Rows prepared (centred, scaled, rounded to float32) at once.
_PREPARE_ROWS_BYTES = 4 * 2**20


def error_bound_factor(n_features: int, d_chunk: int = D_CHUNK) -> float:
    """``c`` such that ``|approximate − exact| ≤ c · (‖a‖² + ‖b‖²)`` for the squared
    distance of two centred rows ``a, b``: γ for a float32 dot product of the summed
    length (``d_chunk`` when split, plus one for the float64 sum of the chunks), a few
    roundings for the norms, the float32 copy of the data and the combination, all
    doubled for safety (docs/science.md §4)."""
    length = n_features if n_features <= 2 * d_chunk else d_chunk + 1
    return 2.0 * (length + 12) * FLOAT32_UNIT_ROUNDOFF


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
        n_rows, n_features = source.n_rows, source.n_features
        self.mean = source.mean(scale)
        self.split = n_features > 2 * d_chunk
        resident = n_rows * n_features * 4 <= resident_bytes
        self.resident = torch.empty((n_rows, n_features), dtype=torch.float32, device=device) if resident else None
        norms = np.empty(n_rows)
        step = max(1, _PREPARE_ROWS_BYTES // (8 * n_features))
        for lo in range(0, n_rows, step):
            hi = min(n_rows, lo + step)
            rows = self._prepare(lo, hi)
            norms[lo:hi] = np.einsum("ij,ij->i", rows, rows, dtype=np.float64)
            if resident:
                self.resident[lo:hi] = torch.from_numpy(rows).to(device)
        self.norms = norms
        self._norms64 = torch.from_numpy(norms).to(device)
        self._norms32 = self._norms64.float()
        self.error_bound = error_bound_factor(n_features, d_chunk) * (norms + (norms.max() if n_rows else 0.0))

    @property
    def bytes_resident(self) -> int:
        return 0 if self.resident is None else self.resident.numel() * 4

    def _prepare(self, lo: int, hi: int) -> np.ndarray:
        """``(hi − lo, D)`` float32 ``scale · x − mean`` (rounded once, from float64)."""
        out = np.empty((hi - lo, self.source.n_features), dtype=np.float32)
        step = max(1, _PREPARE_ROWS_BYTES // (8 * self.source.n_features))
        for at in range(lo, hi, step):
            rows = self.source.read(at, min(hi, at + step)).astype(np.float64)
            rows *= self.scale
            rows -= self.mean
            out[at - lo : at - lo + rows.shape[0]] = rows
        return out

    def tile(self, lo: int, hi: int) -> torch.Tensor:
        """``(hi − lo, D)`` prepared float32 rows on the device."""
        if self.resident is not None:
            return self.resident[lo:hi]
        return torch.from_numpy(self._prepare(lo, hi)).to(self.device)

    def block(self, rows: torch.Tensor, columns: torch.Tensor, row_range, column_range) -> torch.Tensor:
        """``(R, S)`` float32 approximate squared distances between the prepared ``rows``
        (positions ``row_range``) and ``columns`` (positions ``column_range``)."""
        (r0, r1), (c0, c1) = row_range, column_range
        out = torch.empty((r1 - r0, c1 - c0), dtype=torch.float32, device=self.device)
        if not self.split:
            _matmul(rows, columns.T, out)
            out.mul_(-2.0).add_(self._norms32[r0:r1, None]).add_(self._norms32[None, c0:c1])
            return out
        total = torch.zeros(out.shape, dtype=torch.float64, device=self.device)
        n_features = rows.shape[1]
        for lo in range(0, n_features, self.d_chunk):
            hi = min(n_features, lo + self.d_chunk)
            total.add_(_matmul(rows[:, lo:hi], columns[:, lo:hi].T, out))
        total.mul_(-2.0).add_(self._norms64[r0:r1, None]).add_(self._norms64[None, c0:c1])
        return out.copy_(total)


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
