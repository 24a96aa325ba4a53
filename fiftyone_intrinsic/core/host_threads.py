"""Two threads for the CPU work between matrix products.

BLAS multiplies on every core, but what the search does with a block (group minima,
selections, merges into the running lists) and the exact re-measurement run numpy and
torch kernels on one thread each: on two cores, one core sat idle for 40% of a kNN search.
Work on disjoint rows runs here on two threads instead; numpy and torch release the GIL
in their kernels. Each row is computed exactly as on one thread, so results do not change.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import threading
from typing import Callable, Iterator, TypeVar

import torch

__all__ = ["one_torch_thread", "side_by_side", "by_halves", "helper_threads"]

T = TypeVar("T")
U = TypeVar("U")

_NAME = "fiftyone-intrinsic-helper"
_lock = threading.Lock()
_pool: concurrent.futures.ThreadPoolExecutor | None = None
_entered = 0  # callers inside one_torch_thread
_saved_threads = 1  # torch's thread count before the first of them entered


@contextlib.contextmanager
def one_torch_thread() -> Iterator[None]:
    """Run torch operations on one thread each: interleaved with numpy's BLAS calls, or
    beside another thread of ours, torch's OpenMP workers would otherwise spin and take
    the cores (2-4x slower on two cores). torch's thread count is the process's: when
    callers overlap (threads of a server), the first to enter saves it and the last to
    leave restores it; each saving and restoring its own would leave it at one."""
    global _entered, _saved_threads
    with _lock:
        if _entered == 0:
            _saved_threads = torch.get_num_threads()
        _entered += 1
        torch.set_num_threads(1)
    try:
        yield
    finally:
        with _lock:
            _entered -= 1
            if _entered == 0:
                torch.set_num_threads(_saved_threads)


def helper_threads(device: torch.device) -> int:
    """Threads besides the caller's that :func:`side_by_side` uses on ``device``: one on a
    CPU where torch may use several cores, else none (a GPU does the work itself; a
    process limited to one core would only switch between the threads)."""
    return 1 if device.type == "cpu" and torch.get_num_threads() > 1 else 0


def _helper() -> concurrent.futures.ThreadPoolExecutor:
    global _pool
    with _lock:
        if _pool is None:
            _pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix=_NAME)
        return _pool


def side_by_side(first: Callable[[], T], second: Callable[[], U] | None, device: torch.device) -> tuple[T, U | None]:
    """``(first(), second())``, the two run at once on the CPU (:func:`helper_threads`),
    one after the other elsewhere. They must touch disjoint memory. An exception of either
    is raised once both have finished."""
    if second is None:
        return first(), None
    if not helper_threads(device) or threading.current_thread().name.startswith(_NAME):
        return first(), second()  # (from the helper itself: waiting on it would deadlock)
    with one_torch_thread():
        future = _helper().submit(second)
        try:
            result = first()
        except BaseException:
            concurrent.futures.wait([future])
            raise
        return result, future.result()


def by_halves(work: Callable[[slice, int], None], n_items: int, fewest: int) -> None:
    """``work(items, which)`` for the first half (``which`` 0) and the second half (1) of
    ``n_items`` items of host memory, at once (:func:`side_by_side`); all of them as one
    half when there are fewer than ``fewest``."""
    if n_items < fewest:
        work(slice(0, n_items), 0)
        return
    half = n_items // 2
    side_by_side(lambda: work(slice(0, half), 0), lambda: work(slice(half, n_items), 1), torch.device("cpu"))
