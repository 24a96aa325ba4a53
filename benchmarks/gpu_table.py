#!/usr/bin/env python
"""Exact kNN + MLE and exact K_F on a GPU against faiss-gpu ``IndexFlatL2``: time and peak
GPU memory, on N × 512 float32 embeddings (default N = 1,000,000).

Meant for the device machine, in one short run after the gpu-marked tests::

    pip install faiss-gpu-cu12           # the peer (from the package registry)
    .venv/bin/python -m pytest -q -m gpu && .venv/bin/python benchmarks/gpu_table.py

``--device cpu --n 20000`` runs the same script on a CPU (to check it before a GPU run).
The data: a smooth 16-dimensional manifold in 512 dimensions plus noise, two classes.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch


def make_embeddings(n: int, d: int = 512, seed: int = 0):
    rng = np.random.default_rng(seed)
    Z = rng.random((n, 16), dtype=np.float32)
    W = rng.standard_normal((16, d), dtype=np.float32)
    X = np.sin(Z @ W) + np.float32(0.05) * rng.standard_normal((n, d), dtype=np.float32)
    labels = (Z[:, 0] > 0.5).astype(np.int64)
    return np.ascontiguousarray(X, dtype=np.float32), labels


def timed(device, run):
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    value = run()
    if device.type == "cuda":
        torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else float("nan")
    return time.perf_counter() - start, peak, value


def faiss_knn_mle(X, k, device):
    import faiss

    index = faiss.IndexFlatL2(X.shape[1])
    if device.type == "cuda":
        index = faiss.index_cpu_to_gpu(faiss.StandardGpuResources(), 0, index)
    index.add(X)
    squared, _ = index.search(X, k + 1)
    T = np.sqrt(np.maximum(squared[:, 1:].astype(np.float64), 1e-300))
    return float(1.0 / np.mean(np.log(T[:, -1:] / T[:, :-1]).sum(axis=1) / (k - 2)))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--k", type=int, default=20)
    args = parser.parse_args(argv)
    import fiftyone_intrinsic as fi

    device = torch.device(args.device)
    X, labels = make_embeddings(args.n)
    fi.intrinsic_dimension(X[:2000], device=device, interval_splits=0)  # warm-up
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"{name}; N = {args.n} × 512 float32; k = {args.k}\n")
    print("| task | method | time (s) | peak GPU memory (MiB) | result |")
    print("|---|---|---|---|---|")
    seconds, peak, result = timed(device, lambda: fi.intrinsic_dimension(X, k=args.k, device=device, interval_splits=0))
    print(f"| kNN + MLE | ours (exact) | {seconds:.1f} | {peak:.0f} | {result.dimension:.6f} |", flush=True)
    try:
        seconds, peak, value = timed(device, lambda: faiss_knn_mle(X, args.k, device))
        print(f"| kNN + MLE | faiss IndexFlatL2 | {seconds:.1f} | {peak:.0f} | {value:.6f} |", flush=True)
    except ImportError:
        print("| kNN + MLE | faiss | not installed | | |")
    seconds, peak, result = timed(device, lambda: fi.label_sharpness(X, labels, device=device))
    print(f"| K_F | ours (exact) | {seconds:.1f} | {peak:.0f} | {result.k_f:.8g} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
