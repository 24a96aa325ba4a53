"""Row access to an ``(N, D)`` feature matrix held in memory or on disk.

The exact search never copies the whole matrix: it reads row ranges (tiles) and single
rows through a :class:`FeatureSource`, which may wrap a ``numpy.memmap`` on local or shared
storage. Pages of a memmap are file-backed, so reading them does not grow the process's
anonymous memory; only the tiles converted for the arithmetic do.
"""

from __future__ import annotations

import warnings
from typing import Iterator

import numpy as np
import torch

__all__ = ["FeatureSource", "min_and_max", "shared_tensor", "working_dtype"]

#: Bytes of float64 values converted at once by the chunked passes over the data.
CHUNK_BYTES = 4 * 2**20


def shared_tensor(array: np.ndarray) -> torch.Tensor:
    """A CPU tensor sharing the memory of ``array`` (a memmap stays on disk). torch warns
    about read-only arrays; these are only ever read."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return torch.from_numpy(np.asarray(array))


def min_and_max(values: np.ndarray) -> tuple[float, float]:
    """The smallest and largest of a floating-point array in one pass (torch's aminmax,
    twice as fast as numpy's min and max); NaN when there is one."""
    low, high = torch.aminmax(shared_tensor(np.ascontiguousarray(values)))
    return float(low), float(high)


def working_dtype(dtype) -> type:
    """``np.float32`` when every value of ``dtype`` is exactly a float32 (float32, float16,
    bool, 8- and 16-bit integers), else ``np.float64``.

    >>> working_dtype(np.uint8), working_dtype(np.int32)
    (<class 'numpy.float32'>, <class 'numpy.float64'>)
    """
    dtype = np.dtype(dtype)
    exact = dtype in (np.float32, np.float16, np.bool_) or (np.issubdtype(dtype, np.integer) and dtype.itemsize <= 2)
    return np.float32 if exact else np.float64


class FeatureSource:
    """The rows ``data[rows]`` of a feature matrix, addressed by position.

    Args:
        data: ``(N, D)`` numeric numpy array or memmap (not copied).
        rows (None): ``(M,)`` int64 row indices of ``data`` that the positions ``0..M-1``
            stand for (a subset, or an order such as rows sorted by label); ``None``: all
            rows in order.
    """

    def __init__(self, data: np.ndarray, rows: np.ndarray | None = None):
        self.data = data
        self.rows = None if rows is None else np.asarray(rows, dtype=np.int64)
        self.dtype = working_dtype(data.dtype)

    @property
    def n_rows(self) -> int:
        return int(self.data.shape[0] if self.rows is None else self.rows.shape[0])

    @property
    def n_features(self) -> int:
        return int(self.data.shape[1])

    def original(self, positions: np.ndarray) -> np.ndarray:
        """Row indices of ``data`` at ``positions`` (int64, same shape)."""
        positions = np.asarray(positions, dtype=np.int64)
        return positions if self.rows is None else self.rows[positions]

    def read(self, lo: int, hi: int) -> np.ndarray:
        """``(hi − lo, D)`` rows at positions ``lo..hi`` in the working dtype."""
        if self.rows is None:
            block = self.data[lo:hi]
        else:
            rows = self.rows[lo:hi]
            consecutive = rows.size and rows[-1] - rows[0] == rows.size - 1 and (np.diff(rows) == 1).all()
            block = self.data[rows[0] : rows[-1] + 1] if consecutive else self.data[rows]
        return np.asarray(block).astype(self.dtype, copy=False)

    def take(self, positions: np.ndarray) -> np.ndarray:
        """``(P, D)`` rows at ``positions`` in the working dtype."""
        return np.asarray(self.data[self.original(positions)]).astype(self.dtype, copy=False)

    def chunks(self) -> Iterator[tuple[int, int, np.ndarray]]:
        """``(lo, hi, rows)`` over all positions, in chunks of about ``CHUNK_BYTES`` of
        float64 values."""
        step = max(1, CHUNK_BYTES // (8 * self.n_features))
        for lo in range(0, self.n_rows, step):
            hi = min(self.n_rows, lo + step)
            yield lo, hi, self.read(lo, hi)

    def peak_magnitude(self) -> float:
        """``max |x|`` over the rows (0.0 when all are zero)."""
        return max((max(-low, high) for _, _, rows in self.chunks() for low, high in (min_and_max(rows),)), default=0.0)

    def mean(self, scale: float, max_rows: int | None = None) -> np.ndarray:
        """``(D,)`` float64 mean of ``scale · rows``, summed in chunks; with ``max_rows``,
        of at most that many evenly spaced rows (the same on every process)."""
        if max_rows is not None and self.n_rows > max_rows:
            sample = np.linspace(0, self.n_rows - 1, max_rows).astype(np.int64)
            total = np.zeros(self.n_features)
            step = max(1, CHUNK_BYTES // (8 * self.n_features))
            for lo in range(0, sample.size, step):
                total += self.take(sample[lo : lo + step]).sum(axis=0, dtype=np.float64)
            return total * scale / sample.size
        total = np.zeros(self.n_features)
        for _, _, rows in self.chunks():
            total += rows.sum(axis=0, dtype=np.float64)
        return total * scale / self.n_rows
