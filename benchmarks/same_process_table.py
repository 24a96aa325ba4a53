#!/usr/bin/env python
"""Ours against the peers of issue 10's speed checks, in the same process, interleaved.

The checks read "in the same process": kNN + MLE against faiss-cpu ``IndexFlatL2``, exact
K_F against a float32 blocked brute force (20k × 784), and at the paper's resolution
against a float64 brute force. ``scale_table.py`` runs each method in a process of its
own, one after the other; on a machine whose speed drifts by up to 2× from minute to
minute, that compares methods at different moments. Here the methods take turns, round
after round, in one process, so each round meets the same conditions; the table gives the
best and the median round of each, and their ratios.

Run from the repository root::

    .venv/bin/python benchmarks/same_process_table.py --cell real --rounds 5
    .venv/bin/python benchmarks/same_process_table.py --cell paper --rounds 6
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
from threadpoolctl import threadpool_info

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from scale_table import make_cell, run_method  # noqa: E402

#: (task, ours, peer) per cell, as the checks of issue 10 name them.
CHECKS = {
    "real": [("mle", "faiss"), ("K_F", "float32 brute")],
    "paper": [("mle", "faiss"), ("K_F", "float64 brute"), ("K_F", "float32 brute")],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cell", choices=sorted(CHECKS), default="real")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    import faiss  # noqa: F401  (loads its BLAS before the pools are listed)

    X, labels, description = make_cell(args.cell)
    runs = [(task, method) for task, peer in CHECKS[args.cell] for method in ("ours", peer)]
    runs = list(dict.fromkeys(runs))
    few = np.r_[np.flatnonzero(labels == 0)[:300], np.flatnonzero(labels == 1)[:300]]
    for task, method in runs:  # imports, BLAS start-up, one-off choices
        run_method(task, method, np.ascontiguousarray(X[few]), labels[few])
    times: dict[tuple[str, str], list[float]] = {run: [] for run in runs}
    for _ in range(args.rounds):
        for task, method in runs:
            start = time.perf_counter()
            run_method(task, method, X, labels)
            times[(task, method)].append(time.perf_counter() - start)
    print(f"{args.cell}: {X.shape[0]} × {X.shape[1]}, {description}; {os.cpu_count()} cores, "
          f"{args.rounds} interleaved rounds in one process")
    for pool in threadpool_info():
        print(f"  {pool.get('internal_api')} {pool.get('version')}: {pool.get('num_threads')} threads, "
              f"kernel {pool.get('architecture')} ({os.path.basename(pool.get('filepath', ''))})")
    print("\n| task | peer | ours best (s) | peer best (s) | best / best | ours median (s) | peer median (s) | median / median |")
    print("|---|---|---|---|---|---|---|---|")
    for task, peer in CHECKS[args.cell]:
        ours, theirs = np.array(times[(task, "ours")]), np.array(times[(task, peer)])
        print(f"| {task} | {peer} | {ours.min():.2f} | {theirs.min():.2f} | {ours.min() / theirs.min():.2f} | "
              f"{np.median(ours):.2f} | {np.median(theirs):.2f} | {np.median(ours) / np.median(theirs):.2f} |")


if __name__ == "__main__":
    main()
