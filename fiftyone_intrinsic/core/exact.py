"""Exact (float64) squared distances of given pairs of rows, from coordinate differences.

The difference of two float32 (or float64) coordinates is computed in float64, scaled by a
power of two (exact) and squared, so near-duplicates keep their full relative precision,
unlike the matrix-product identity. On the CPU the sums run in numpy, whose row sums do not
depend on how many pairs a call holds: the same pair gives the same bits in every call,
on every rank of a distributed run.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .host_threads import by_halves
from .source import FeatureSource, min_and_max, shared_tensor

__all__ = ["ExactDistances"]

#: Bytes of float64 differences formed at once (cache-sized: writing them to memory would
#: cost more than the arithmetic), and the fewest pairs a chunk holds.
_CHUNK_BYTES = 2**20
_MIN_PAIRS = 8
#: Features from which pairs are measured from the rows in place, without a gather.
_IN_PLACE_FEATURES = 8192
#: Pairs per thread from which a call is shared between two threads (host_threads).
_PARALLEL_PAIRS = 64
#: Integers up to 2^24 are exact in float32 (:func:`integer_piece`).
_FLOAT32_EXACT_INTEGERS = 2**24
#: The shortest float32 partial sum worth the integer path.
_MIN_PIECE = 32
#: Pairs in one call from which the rows are scanned for integer values: at least this
#: many, and twice the rows (the scan is a pass over X, repaid only by many pairs).
_INTEGER_SCAN_PAIRS = 4096


def integer_piece(source: FeatureSource) -> int:
    """Features per float32 partial sum that stays exact, when every value of ``source``
    is an integer (byte pixels: 0..255) of span ``S = max − min`` with ``32 · S² ≤ 2^24``;
    else 0.

    Then a difference of two rows is an integer of magnitude at most S, its square at most
    S², and a sum of at most ``2^24 // S²`` squares an integer of at most 2^24: all exact in
    float32, in any order. The float64 sum of those partial sums is exact too (below
    2^53), so the result has exactly the bits of the float64 measurement, which is then
    exact as well. float32 arithmetic on a quarter of the bytes of float64 is what makes it
    faster (35% on 20,000 × 784 byte images)."""
    if np.dtype(source.dtype) != np.float32:
        return 0
    low, high = math.inf, -math.inf
    for _, _, rows in source.chunks():
        chunk_low, chunk_high = min_and_max(rows)
        low, high = min(low, chunk_low), max(high, chunk_high)
        span = high - low
        if _MIN_PIECE * span * span > _FLOAT32_EXACT_INTEGERS or not np.array_equal(np.floor(rows), rows):
            return 0
    span = high - low
    largest = _FLOAT32_EXACT_INTEGERS // max(1, int(span * span))
    n_pieces = -(-source.n_features // largest)
    return -(-source.n_features // n_pieces)  # pieces of nearly equal length


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


class _Scratch:
    """Memory one thread of :class:`ExactDistances` reuses between calls: fresh large
    temporaries cost more in page faults than the arithmetic."""

    def __init__(self):
        self._gathered = None
        self._integer = None
        self._pair_sums = None
        self._first_row = None

    def gathered(self, n_pairs: int, n_features: int, dtype: torch.dtype):
        """``(left, right, difference)``: gather buffers of ``dtype`` and a float64 one,
        ``(n_pairs, D)`` at least."""
        if self._gathered is None or self._gathered[0].shape[0] < n_pairs or self._gathered[0].dtype != dtype:
            shape = (n_pairs, n_features)
            self._gathered = (torch.empty(shape, dtype=dtype), torch.empty(shape, dtype=dtype), torch.zeros(shape, dtype=torch.float64))
        return self._gathered

    def integer_buffer(self, n_pairs: int, n_features: int, piece: int) -> np.ndarray:
        """``(n_pairs, W)`` float32 zeros for the integer path, W the features rounded up to
        whole pieces (only the first D columns are ever written)."""
        width = -(-n_features // piece) * piece
        if self._integer is None or self._integer.shape[0] < n_pairs or self._integer.shape[1] != width:
            self._integer = np.zeros((n_pairs, width), dtype=np.float32)
        return self._integer

    def first_row(self, n_features: int) -> np.ndarray:
        """``(D,)`` float64 memory for the first row of the pairs being measured."""
        if self._first_row is None:
            self._first_row = np.empty(n_features)
        return self._first_row

    def pair_sums(self, n_features: int) -> np.ndarray:
        """``(2, D)`` float64 differences of two pairs (zeros at first)."""
        if self._pair_sums is None:
            self._pair_sums = np.zeros((2, n_features))
        return self._pair_sums


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
        self._scratch = (_Scratch(), _Scratch())  # one per thread (host_threads)
        self._tensor = None
        self._piece = None  # integer_piece(source), found at the first call with many pairs
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
        # within 2^±400 the squares of unscaled differences can neither overflow nor
        # underflow: the scale (a power of two, exact) multiplies the sums instead
        scale_sums = 2.0**-400 <= self.scale <= 2.0**400
        if self._piece is None and keys.shape[0] >= max(_INTEGER_SCAN_PAIRS, 2 * n_rows) and self.source.n_features < _IN_PLACE_FEATURES:
            self._piece = integer_piece(self.source)
        piece = (self._piece or 0) if scale_sums else 0
        # the two halves of the pairs on two threads (each pair's bits depend neither on
        # the thread nor on the pairs beside it)
        by_halves(lambda part, which: self._measure(first[part], second[part], out[part], scale_sums, piece, self._scratch[which]),
                  keys.shape[0], 2 * _PARALLEL_PAIRS)
        if scale_sums:
            out *= self.scale * self.scale
        return out[inverse.ravel()]

    def _measure(self, first: np.ndarray, second: np.ndarray, out: np.ndarray, scale_sums: bool, piece: int, scratch: "_Scratch") -> None:
        """Fill ``out`` with the squared distances of the row pairs ``(first, second)``
        (original rows of the source); with ``piece`` (:func:`integer_piece`) in exact
        float32 partial sums."""
        n_features = self.source.n_features
        if n_features >= _IN_PLACE_FEATURES:
            self._measure_in_place(first, second, out, scale_sums, scratch)
            return
        chunk = max(_MIN_PAIRS, _CHUNK_BYTES // (8 * n_features))
        data = self._data_tensor()
        left, right, difference = scratch.gathered(max(2, min(chunk, first.shape[0])), n_features, data.dtype)
        sums = difference.numpy() if not piece else scratch.integer_buffer(difference.shape[0], n_features, piece)
        first, second = torch.from_numpy(first), torch.from_numpy(second)
        for lo in range(0, first.shape[0], chunk):
            n = min(chunk, first.shape[0] - lo)
            # torch gathers (several times faster than numpy's indexing here); numpy
            # converts, subtracts and sums each row: the same bits on any thread count
            torch.index_select(data, 0, first[lo : lo + n], out=left[:n])
            torch.index_select(data, 0, second[lo : lo + n], out=right[:n])
            if piece:
                np.subtract(left[:n].numpy(), right[:n].numpy(), out=sums[:n, :n_features], dtype=np.float32)
                pieces = sums[:n].reshape(n, -1, piece)  # the columns beyond D stay zero
                partial = np.einsum("ijk,ijk->ij", pieces, pieces)  # exact integers < 2^24
                np.add.reduce(partial, axis=1, dtype=np.float64, out=out[lo : lo + n])
                continue
            # in float64, exact for float32 rows (converting as it subtracts is faster than
            # torch's mixed-type subtraction or a separate conversion pass)
            np.subtract(left[:n].numpy(), right[:n].numpy(), out=sums[:n], dtype=np.float64)
            if not scale_sums:
                np.multiply(sums[:n], self.scale, out=sums[:n])
            _row_sums_of_squares(sums, n, out[lo : lo + n])

    def _measure_in_place(self, first: np.ndarray, second: np.ndarray, out: np.ndarray, scale_sums: bool, scratch: "_Scratch") -> None:
        """Long rows: each pair's difference is formed straight from its two rows, two pairs
        at a time in a cache-sized buffer. Gathering rows of 50,176 features first would
        copy as many bytes as the subtraction reads."""
        data = np.asarray(self.source.data)
        sums = scratch.pair_sums(self.source.n_features)
        first_row, converted = -1, scratch.first_row(self.source.n_features)
        for lo in range(0, first.shape[0], 2):
            n = min(2, first.shape[0] - lo)
            for p in range(n):
                # converting, then subtracting in float64, is 25% faster than numpy's
                # mixed-type subtraction; pairs come sorted by their first row, which is
                # converted once (the same exact difference either way)
                if first[lo + p] != first_row:
                    first_row = first[lo + p]
                    np.copyto(converted, data[first_row])
                np.copyto(sums[p], data[second[lo + p]])
                np.subtract(converted, sums[p], out=sums[p])
            if not scale_sums:
                np.multiply(sums[:n], self.scale, out=sums[:n])
            _row_sums_of_squares(sums, n, out[lo : lo + n])

    def _data_tensor(self) -> torch.Tensor:
        """The source's array as a CPU tensor sharing its memory (a memmap stays on disk)."""
        if self._tensor is None:
            self._tensor = shared_tensor(self.source.data)
        return self._tensor

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
