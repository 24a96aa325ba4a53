#!/usr/bin/env python
"""Exact K_F with many classes, its memory on a memmap, and extreme feature magnitudes.

Prints four tables (issue 10's "top and classes", "memory" and "extreme values" items):

1. ``label_sharpness`` time for 2 … 1000 classes at one (N, D), beside a float32 blocked
   brute force over the cross-class pairs (numpy matmul identity, not exact: the floor any
   exact method is measured against), with the BLAS threadpoolctl reports.
2. ``label_sharpness`` time and anonymous memory growth for ``top`` = 10 and 2000.
3. growth of the process's anonymous memory (``RssAnon``, sampled every 10 ms) while
   ``label_sharpness`` runs on a float32 ``.npy`` memmap, in a fresh interpreter (memory
   freed by the earlier tables but kept by the allocator would hide the growth: it read
   +1 MiB after them, +242 MiB alone), and the answer beside a float64 check of the pair
   it returns (``--part memmap`` runs this table only).
4. K_F of features scaled by 1e20 (float32) and 1e-300 (float64) against the unscaled
   answer.

``--part floor`` prints where the classes check meets the arithmetic instead: per class
count, the pairs with different labels (1000 random classes have twice as many as two),
the time a float32 GEMM at a 5000² tile's rate needs for them, the exact float64 distances
our run measures (about one per class pair), and our time.

Run from the repository root::

    .venv/bin/python benchmarks/classes_memory_table.py                  # N=20000, D=784
    .venv/bin/python benchmarks/classes_memory_table.py --n 5000 --d 64 --memmap-n 10000
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np
import torch
from threadpoolctl import threadpool_info

import fiftyone_intrinsic as fi


def brute_force_k_f(X: np.ndarray, labels: np.ndarray, block: int = 2048) -> float:
    """float32 ‖a‖² + ‖b‖² − 2a·b over the cross-class pairs, in row blocks."""
    X = np.ascontiguousarray(X, dtype=np.float32)
    norms = np.einsum("ij,ij->i", X, X)
    best = np.inf
    for lo in range(0, len(X), block):
        squared = norms[lo : lo + block, None] + norms[None, :] - 2.0 * (X[lo : lo + block] @ X.T)
        squared[labels[lo : lo + block, None] == labels[None, :]] = np.inf
        best = min(best, float(squared.min()))
    return 1.0 / np.sqrt(max(best, 0.0))


def timed(function, *args, **kwargs):
    start = time.perf_counter()
    value = function(*args, **kwargs)
    return time.perf_counter() - start, value


def anonymous_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def best_of(repeat: int, function, *args, **kwargs):
    """``(fastest seconds, value)`` over ``repeat`` calls."""
    runs = [timed(function, *args, **kwargs) for _ in range(repeat)]
    return min(seconds for seconds, _ in runs), runs[-1][1]


def classes_table(n: int, d: int, class_counts, repeat: int = 1) -> list[str]:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, d)).astype(np.float32)
    fi.label_sharpness(X[:256], np.arange(256) % 2, device="cpu")  # imports and one-off choices
    rows = ["| classes | ours (s) | float32 brute force (s) | ours / brute | K_F ours | K_F brute |",
            "|---|---|---|---|---|---|"]
    for count in class_counts:
        labels = rng.integers(0, count, size=n)
        ours_s, ours = best_of(repeat, fi.label_sharpness, X, labels, device="cpu")
        brute_s, brute = best_of(repeat, brute_force_k_f, X, labels)
        rows.append(f"| {count} | {ours_s:.2f} | {brute_s:.2f} | {ours_s / brute_s:.2f} | {ours.k_f:.6g} | {brute:.6g} |")
    return rows


def admissible_pairs(labels: np.ndarray) -> int:
    """Unordered pairs of rows whose labels differ: the products any exact K_F must form."""
    counts = np.bincount(labels).astype(np.int64)
    return int((counts.sum() ** 2 - (counts**2).sum()) // 2)


def gemm_seconds_per_product(d: int, tile: int = 5000, repeat: int = 3) -> float:
    """Seconds per entry of a float32 ``(tile, d) @ (d, tile)`` numpy product (the fastest
    BLAS here), best of ``repeat``: the rate a perfect tiling would reach."""
    rng = np.random.default_rng(5)
    a = rng.standard_normal((tile, d), dtype=np.float32)
    b = rng.standard_normal((tile, d), dtype=np.float32)
    out = np.empty((tile, tile), dtype=np.float32)
    seconds, _ = best_of(repeat, np.matmul, a, b.T, out=out)
    return seconds / tile**2


def exact_seconds_in(function, *args, **kwargs):
    """``(total seconds, seconds in exact float64 distances, exact pairs measured)`` of one
    call, timing every call of :class:`ExactDistances` it makes."""
    from fiftyone_intrinsic.core import exact

    spent = [0.0, 0]
    original = exact.ExactDistances.__call__

    def counted(self, rows, columns):
        start = time.perf_counter()
        distances = original(self, rows, columns)
        spent[0] += time.perf_counter() - start
        spent[1] += len(distances)
        return distances

    exact.ExactDistances.__call__ = counted
    try:
        seconds, _ = timed(function, *args, **kwargs)
    finally:
        exact.ExactDistances.__call__ = original
    return seconds, spent[0], spent[1]


def floor_table(n: int, d: int, class_counts, repeat: int = 1) -> list[str]:
    """Where the check "1000 classes take at most 2× the time of 2 classes" meets the
    arithmetic: the float32 products over the admissible pairs at a perfect tiling's rate,
    and the exact float64 distances (at least one per class pair) of our own run."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, d)).astype(np.float32)
    fi.label_sharpness(X[:256], np.arange(256) % 2, device="cpu")
    per_product = gemm_seconds_per_product(d)
    rows = ["| classes | admissible pairs | float32 GEMM floor (s) | exact pairs | exact distances (s) "
            "| GEMM floor + exact (s) | ours (s) | ours / first row's ours | ours per admissible pair (ns) |",
            "|---|---|---|---|---|---|---|---|---|"]
    first = None
    for count in class_counts:
        labels = rng.integers(0, count, size=n)
        pairs = admissible_pairs(labels)
        ours_s, exact_s, exact_pairs = min(exact_seconds_in(fi.label_sharpness, X, labels, device="cpu")
                                           for _ in range(repeat))
        first = first or ours_s
        floor = pairs * per_product
        rows.append(f"| {count} | {pairs:,} | {floor:.2f} | {exact_pairs:,} | {exact_s:.2f} | {floor + exact_s:.2f} "
                    f"| {ours_s:.2f} | {ours_s / first:.2f} | {ours_s / pairs * 1e9:.1f} |")
    return rows


def peak_growth(function, *args, **kwargs):
    """``(seconds, anonymous memory growth in MiB, value)`` of one call (RssAnon sampled
    every 10 ms)."""
    base, peak, done = anonymous_mib(), [0.0], threading.Event()

    def watch():
        while not done.is_set():
            peak[0] = max(peak[0], anonymous_mib())
            time.sleep(0.01)

    watcher = threading.Thread(target=watch)
    watcher.start()
    seconds, value = timed(function, *args, **kwargs)
    done.set()
    watcher.join()
    return seconds, max(0.0, peak[0] - base), value


def top_table(n: int, d: int, tops, repeat: int = 1) -> list[str]:
    """``label_sharpness`` time and memory growth by ``top`` (two random classes)."""
    rng = np.random.default_rng(4)
    X = rng.normal(size=(n, d)).astype(np.float32)
    labels = rng.integers(0, 2, size=n)
    fi.label_sharpness(X[:256], labels[:256], device="cpu")
    rows = ["| top | time (s) | anonymous memory growth (MiB) | pairs returned | K_F |", "|---|---|---|---|---|"]
    for top in tops:
        runs = [peak_growth(fi.label_sharpness, X, labels, top=top, device="cpu") for _ in range(repeat)]
        seconds, growth = min(r[0] for r in runs), max(r[1] for r in runs)
        result = runs[-1][2]
        rows.append(f"| {top} | {seconds:.2f} | {growth:.0f} | {len(result.pairs)} | {result.k_f:.6g} |")
    return rows


def memory_table(n: int, d: int) -> list[str]:
    folder = tempfile.mkdtemp()
    path = os.path.join(folder, "features.npy")
    data = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, d))
    rng = np.random.default_rng(1)
    for lo in range(0, n, 4096):
        data[lo : lo + 4096] = rng.random((min(4096, n - lo), d), dtype=np.float32)
    data.flush()
    del data
    X = np.load(path, mmap_mode="r")
    labels = np.random.default_rng(2).integers(0, 2, size=n)
    fi.label_sharpness(np.asarray(X[:64]), labels[:64], device="cpu")  # imports and warm-up
    seconds, growth, result = peak_growth(fi.label_sharpness, X, labels, device="cpu")
    pair = result.pairs[0]
    check = float(np.linalg.norm(np.asarray(X[pair.i], np.float64) - np.asarray(X[pair.j], np.float64)))
    os.remove(path)
    return [
        "| N × D | data (MiB) | time (s) | anonymous memory growth (MiB) | closest pair | its distance, float64 check |",
        "|---|---|---|---|---|---|",
        f"| {n} × {d} | {n * d * 4 / 2**20:.0f} | {seconds:.1f} | {growth:.0f} | ({pair.i}, {pair.j}) "
        f"| {pair.distance:.9g} vs {check:.9g} |",
    ]


def extremes_table() -> list[str]:
    rng = np.random.default_rng(3)
    X = rng.normal(size=(2000, 64))
    labels = rng.integers(0, 2, size=2000)
    base = fi.label_sharpness(X, labels, device="cpu").k_f
    rows = ["| features | K_F | K_F × scale / K_F(unscaled) − 1 |", "|---|---|---|"]
    for scale, dtype in ((1e20, np.float32), (1e-300, np.float64)):
        value = fi.label_sharpness((X * scale).astype(dtype), labels, device="cpu").k_f
        rows.append(f"| X × {scale:g} ({np.dtype(dtype).name}) | {value:.6g} | {value * scale / base - 1:.2e} |")
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--d", type=int, default=784)
    parser.add_argument("--classes", type=int, nargs="+", default=[2, 10, 100, 1000])
    parser.add_argument("--memmap-n", type=int, default=30000)
    parser.add_argument("--memmap-d", type=int, default=2048)
    parser.add_argument("--tops", type=int, nargs="+", default=[10, 2000])
    parser.add_argument("--repeat", type=int, default=1, help="runs per class count; the best time is reported")
    parser.add_argument("--part", choices=["all", "classes", "top", "memmap", "extremes", "floor"], default="all",
                        help="one table only; with 'all' the memmap table runs in a fresh interpreter, so that "
                             "memory the earlier tables freed but the allocator kept cannot hide its growth")
    args = parser.parse_args()
    if args.part == "memmap":
        print("\n".join(memory_table(args.memmap_n, args.memmap_d)))
        return
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; numpy {np.__version__}")
    for pool in threadpool_info():
        print(f"  {pool.get('internal_api')} {pool.get('version')}: {pool.get('num_threads')} threads, "
              f"kernel {pool.get('architecture')} ({os.path.basename(pool.get('filepath', ''))})")
    if args.part in ("all", "classes"):
        print(f"\n### Exact K_F by number of classes, N = {args.n}, D = {args.d}, best of {args.repeat}\n")
        print("\n".join(classes_table(args.n, args.d, args.classes, args.repeat)))
    if args.part == "floor":
        print(f"\n### The classes check against its floor, N = {args.n}, D = {args.d}, best of {args.repeat}\n")
        print("\n".join(floor_table(args.n, args.d, args.classes, args.repeat)))
    if args.part in ("all", "top"):
        print(f"\n### Exact K_F by top, N = {args.n}, D = {args.d}, two classes, best of {args.repeat}\n")
        print("\n".join(top_table(args.n, args.d, args.tops, args.repeat)))
    if args.part == "all":
        print("\n### Anonymous memory on a float32 memmap (a fresh interpreter)\n", flush=True)
        subprocess.run([sys.executable, __file__, "--part", "memmap", "--memmap-n", str(args.memmap_n),
                        "--memmap-d", str(args.memmap_d)], check=True)
    if args.part in ("all", "extremes"):
        print("\n### Extreme magnitudes\n")
        print("\n".join(extremes_table()))


if __name__ == "__main__":
    main()
