"""Exact (float64) squared distances of given pairs of rows, from coordinate differences.

The difference of two float32 (or float64) coordinates is computed in float64, scaled by a
power of two (exact) and squared, so near-duplicates keep their full relative precision,
unlike the matrix-product identity. On the CPU the sums run in numpy, whose row sums do not
depend on how many pairs a call holds: the same pair gives the same bits in every call,
on every rank of a distributed run.
"""

from __future__ import annotations

import contextlib
import warnings

import numpy as np
import torch

from .source import FeatureSource

__all__ = ["ExactDistances", "one_torch_thread"]

#: Bytes of float64 differences formed at once (cache-sized: writing them to memory would
#: cost more than the arithmetic), and the fewest pairs a chunk holds.
_CHUNK_BYTES = 2**20
_MIN_PAIRS = 8
#: Features from which pairs are measured from the rows in place, without a gather.
_IN_PLACE_FEATURES = 8192


def _row_sums_of_squares(values: np.ndarray, n: int, out: np.ndarray) -> None:
    """``out[:n] = Σ_j values[i, j]²`` for the first ``n`` rows of ``values`` (which has at
    least two). numpy's einsum sums a lone long row in another order than each of several
    rows (a different last bit at D = 50,176), so a lone row is summed as one of two: the
    bits of a pair never depend on how many pairs share its call."""
    if n >= 2:
        np.einsum("ij,ij->i", values[:n], values[:n], out=out)
        return
    pair = np.empty(2)
    np.einsum("ij,ij->i", values[:2], values[:2], out=pair)  # row 1: an earlier pair, or zeros
    out[0] = pair[0]


@contextlib.contextmanager
def one_torch_thread():
    """Run torch operations on this thread only: interleaved with numpy's BLAS calls,
    torch's OpenMP workers would otherwise spin and take the cores from BLAS (2-4x slower
    on two cores)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class ExactDistances:
    """Float64 squared distances ``‖scale · (x_i − x_j)‖²`` between rows of ``source``.

    Args:
        source: the rows, addressed by position.
        scale: the power of two of the search (:func:`~.neighbors.feature_scale`).
        device: where the pairs are measured; on CUDA the rows are copied to the GPU when
            they take at most ``resident_bytes``, else they are measured on the CPU.
    """

    def __init__(self, source: FeatureSource, scale: float, device: torch.device, resident_bytes: int = 0):
        self.source = source
        self.scale = scale
        self.device = device
        self.on_device = None
        self._reused = None
        self._pair_sums = None
        self._tensor = None
        itemsize = np.dtype(source.dtype).itemsize
        if device.type != "cpu" and source.n_rows * source.n_features * itemsize <= resident_bytes:
            self.on_device = torch.empty((source.n_rows, source.n_features), dtype=torch.from_numpy(np.empty(0, source.dtype)).dtype, device=device)
            for lo, hi, rows in source.chunks():
                self.on_device[lo:hi] = torch.from_numpy(rows).to(device)

    def __call__(self, rows, columns) -> np.ndarray:
        """``(P,)`` float64 squared distances (scaled units) of the position pairs
        ``(rows[p], columns[p])``."""
        rows = np.asarray(rows, dtype=np.int64).ravel()
        columns = np.asarray(columns, dtype=np.int64).ravel()
        if self.on_device is not None:
            return self._on_device(rows, columns)
        # a pair listed twice (each row among the other's neighbours) is measured once
        n_rows = self.source.n_rows
        keys, inverse = np.unique(np.minimum(rows, columns) * n_rows + np.maximum(rows, columns), return_inverse=True)
        first, second = (self.source.original(part) for part in np.divmod(keys, n_rows))
        out = np.empty(keys.shape[0])
        n_features = self.source.n_features
        # within 2^±400 the squares of unscaled differences can neither overflow nor
        # underflow: the scale (a power of two, exact) multiplies the sums instead
        scale_sums = 2.0**-400 <= self.scale <= 2.0**400
        if n_features >= _IN_PLACE_FEATURES:
            self._measure_in_place(first, second, out, scale_sums)
        else:
            chunk = max(_MIN_PAIRS, _CHUNK_BYTES // (8 * n_features))
            left, right, difference = self._buffers(max(2, min(chunk, keys.shape[0])))
            data = self._data_tensor()
            first, second = torch.from_numpy(first), torch.from_numpy(second)
            self._measure(data, first, second, left, right, difference.numpy(), out, chunk, scale_sums)
        if scale_sums:
            out *= self.scale * self.scale
        return out[inverse.ravel()]

    def _measure(self, data, first, second, left, right, sums, out, chunk, scale_sums):
        """Fill ``out`` with the squared distances of the row pairs ``(first, second)``."""
        for lo in range(0, first.shape[0], chunk):
            n = min(chunk, first.shape[0] - lo)
            # torch gathers (several times faster than numpy's indexing here); numpy
            # converts, subtracts and sums each row: the same bits on any thread count
            torch.index_select(data, 0, first[lo : lo + n], out=left[:n])
            torch.index_select(data, 0, second[lo : lo + n], out=right[:n])
            # in float64, exact for float32 rows (converting as it subtracts is faster than
            # torch's mixed-type subtraction or a separate conversion pass)
            np.subtract(left[:n].numpy(), right[:n].numpy(), out=sums[:n], dtype=np.float64)
            if not scale_sums:
                np.multiply(sums[:n], self.scale, out=sums[:n])
            _row_sums_of_squares(sums, n, out[lo : lo + n])

    def _measure_in_place(self, first: np.ndarray, second: np.ndarray, out: np.ndarray, scale_sums: bool) -> None:
        """Long rows: each pair's difference is formed straight from its two rows, two pairs
        at a time in a cache-sized buffer. Gathering rows of 50,176 features first would
        copy as many bytes as the subtraction reads."""
        data = np.asarray(self.source.data)
        if self._pair_sums is None:
            self._pair_sums = np.zeros((2, self.source.n_features))
        sums = self._pair_sums
        for lo in range(0, first.shape[0], 2):
            n = min(2, first.shape[0] - lo)
            for p in range(n):
                np.subtract(data[first[lo + p]], data[second[lo + p]], out=sums[p], dtype=np.float64)
            if not scale_sums:
                np.multiply(sums[:n], self.scale, out=sums[:n])
            _row_sums_of_squares(sums, n, out[lo : lo + n])

    def _data_tensor(self) -> torch.Tensor:
        """The source's array as a CPU tensor sharing its memory (a memmap stays on disk)."""
        if self._tensor is None:
            with warnings.catch_warnings():  # a read-only memmap: never written to
                warnings.simplefilter("ignore", UserWarning)
                self._tensor = torch.from_numpy(np.asarray(self.source.data))
        return self._tensor

    def _buffers(self, n_pairs: int):
        """Reused gather and difference buffers of at least ``n_pairs`` rows: fresh large
        temporaries cost more in page faults than the arithmetic."""
        if self._reused is None or self._reused[0].shape[0] < n_pairs:
            shape = (n_pairs, self.source.n_features)
            dtype = self._data_tensor().dtype
            self._reused = (torch.empty(shape, dtype=dtype), torch.empty(shape, dtype=dtype),
                            torch.zeros(shape, dtype=torch.float64))
        return self._reused

    def _on_device(self, rows: np.ndarray, columns: np.ndarray) -> np.ndarray:
        data = self.on_device
        out = torch.empty(rows.shape[0], dtype=torch.float64, device=self.device)
        chunk = max(_MIN_PAIRS, 16 * _CHUNK_BYTES // (8 * data.shape[1]))
        rows_t = torch.from_numpy(rows).to(self.device)
        columns_t = torch.from_numpy(columns).to(self.device)
        for lo in range(0, rows.shape[0], chunk):
            hi = min(rows.shape[0], lo + chunk)
            difference = data[rows_t[lo:hi]].double() - data[columns_t[lo:hi]].double()
            difference.mul_(self.scale)
            out[lo:hi] = (difference * difference).sum(dim=1)
        return out.cpu().numpy()
