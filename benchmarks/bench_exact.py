#!/usr/bin/env python
"""Benchmark exact kNN + MLE intrinsic dimension and exact label sharpness K_F against peers.

One run measures, for every (N, D) cell of a synthetic image-like dataset:

- task ``mle``: exact k = 20 nearest neighbours + the Levina-Bickel / MacKay-Ghahramani MLE
  with the ``k - 2`` numerator (science.md §3), by
  ``fiftyone_intrinsic.dimension.intrinsic_dimension`` (ours), scikit-dimension
  ``MLE(unbiased=True)``, scikit-learn ``NearestNeighbors(algorithm="brute")`` + the formula,
  and faiss ``IndexFlatL2`` (k = 21, self removed) + the formula;
- task ``K_F``: the smallest distance between differently-labelled samples, by
  ``fiftyone_intrinsic.sharpness.label_sharpness`` (ours) and, for sklearn and faiss, one
  1-NN search per class against the other classes (scikit-dimension has no K_F);

checks every peer's result against ours (global value and per-row values, relative
difference), spot-checks ours against direct float64 coordinate differences on a few rows,
and measures a float32 matmul peak on the same device in the same run, to express every
time as GFLOP/s over the ``N²·D`` multiply-add floor and as a multiple of the matmul floor
time ``2·N²·D / peak``.

Run from the repository root::

    .venv/bin/python benchmarks/bench_exact.py --quick               # smoke run, ~1 min
    .venv/bin/python benchmarks/bench_exact.py --out bench.md         # N in {10k, 50k} x D in {784, 3072}
    .venv/bin/python benchmarks/bench_exact.py --profile --sizes 10000 --dims 3072

A peer whose time, extrapolated (``t ∝ N²·D``) from its largest measured smaller cell,
exceeds ``--peer-budget`` seconds is not run; its row shows the extrapolated time, marked
as such. Ours is always run.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import hashlib
import importlib.util
import io
import math
import os
import platform
import pstats
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
if importlib.util.find_spec("fiftyone_intrinsic") is None:  # not installed: use this checkout
    sys.path.insert(0, str(REPO))

from fiftyone_intrinsic.core.devices import exact_float32_matmul, resolve_device  # noqa: E402
from fiftyone_intrinsic.core.dimension import intrinsic_dimension  # noqa: E402
from fiftyone_intrinsic.core.sharpness import label_sharpness  # noqa: E402

try:
    import skdim
except ImportError:  # pragma: no cover - optional peer
    skdim = None
try:
    from sklearn.neighbors import NearestNeighbors
except ImportError:  # pragma: no cover - optional peer
    NearestNeighbors = None
try:
    import faiss
except ImportError:  # pragma: no cover - optional peer
    faiss = None

K = 20  # neighbours for the MLE
TOP = 10  # sharpest pairs ours reports
#: A peer is "exact" when its global value and every per-row value are within this
#: relative difference of ours: float64 rounding level (ours agrees with direct float64
#: coordinate differences to ~1e-14).
EXACT_RTOL = 1e-9
LATENT_DIM = 10
N_NEAR_PAIRS = 16
N_SPOT_RANDOM = 16


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- data


@dataclass
class Dataset:
    X: np.ndarray  # (N, D) float32, C-contiguous
    labels: np.ndarray  # (N,) int64, classes 0 and 1
    near_rows: np.ndarray  # rows that belong to a planted near-duplicate pair
    description: str


def make_dataset(n: int, d: int, seed: int = 0) -> Dataset:
    """An image-like float32 point cloud: a smooth 10-dimensional manifold
    ``127.5 + 100·sin(Z·W + φ)`` in ``[0, 255]``-ish pixel units, plus Gaussian pixel noise
    of σ = 1, two classes split along the manifold, and ``N_NEAR_PAIRS`` planted
    near-duplicate pairs (per-pixel offsets log-spaced from 1e-3 to 1e-1); half of the pairs
    carry different labels (a label conflict: these decide K_F). Costs ``N·10·D`` flops plus
    one ``sin`` and one normal draw per entry."""
    rng = np.random.default_rng([seed, n, d])
    Z = rng.random((n, LATENT_DIM), dtype=np.float32)
    W = rng.standard_normal((LATENT_DIM, d), dtype=np.float32) * np.float32(2.0)
    phase = rng.uniform(0.0, 2.0 * np.pi, size=d).astype(np.float32)
    X = Z @ W
    X += phase
    np.sin(X, out=X)
    X *= np.float32(100.0)
    X += np.float32(127.5)
    X += rng.standard_normal((n, d), dtype=np.float32)
    labels = (Z[:, 0] + 0.2 * Z[:, 1] > 0.6).astype(np.int64)

    rows = rng.choice(n, size=2 * N_NEAR_PAIRS, replace=False)
    sources, targets = rows[:N_NEAR_PAIRS], rows[N_NEAR_PAIRS:]
    scales = np.logspace(-3, -1, N_NEAR_PAIRS).astype(np.float32)
    for pair, (src, dst) in enumerate(zip(sources, targets)):
        X[dst] = X[src] + scales[pair] * rng.standard_normal(d, dtype=np.float32)
        labels[dst] = 1 - labels[src] if pair % 2 == 0 else labels[src]
    description = (
        f"127.5 + 100·sin(Z·W + φ), Z ~ U[0,1]^{LATENT_DIM}, W ~ N(0, 2²), + N(0,1) noise; "
        f"{N_NEAR_PAIRS} near-duplicate pairs (offsets 1e-3..1e-1 per pixel, "
        f"{(N_NEAR_PAIRS + 1) // 2} of them cross-label); class 1 share "
        f"{labels.mean():.2f}"
    )
    return Dataset(np.ascontiguousarray(X), labels, np.sort(rows), description)


# ----------------------------------------------------------------------------- methods


def mle_from_distances(T: np.ndarray):
    """``(N, k)`` ascending neighbour distances → (global d, local d_i), numerator k − 2."""
    T = np.asarray(T, dtype=np.float64)
    numerator = T.shape[1] - 2
    with np.errstate(divide="ignore", invalid="ignore"):
        S = np.log(T[:, -1:] / T[:, :-1]).sum(axis=1)
        return float(numerator / S.mean()), numerator / S


def ours_mle(data: Dataset, device):
    result = intrinsic_dimension(data.X, estimator="mle", k=K, interval_splits=0, device=device)
    return result.dimension, result.local


def skdim_mle(data: Dataset, device):
    est = skdim.id.MLE(unbiased=True).fit(data.X, n_neighbors=K)
    return float(est.dimension_), np.asarray(est.dimension_pw_, dtype=np.float64)


def sklearn_mle(data: Dataset, device):
    nn = NearestNeighbors(n_neighbors=K, algorithm="brute").fit(data.X)
    distances, _ = nn.kneighbors()  # without X: each row's own index is excluded
    return mle_from_distances(distances)


def faiss_mle(data: Dataset, device):
    index = faiss.IndexFlatL2(data.X.shape[1])
    index.add(data.X)
    squared, indices = index.search(data.X, K + 1)
    # drop each row's own index (not necessarily first: float32 cancellation can rank a
    # near-duplicate before the point itself); where it is absent, drop the last column
    is_self = indices == np.arange(indices.shape[0])[:, None]
    drop = np.where(is_self.any(axis=1), is_self.argmax(axis=1), K)
    keep = np.ones_like(is_self)
    keep[np.arange(keep.shape[0]), drop] = False
    squared = squared[keep].reshape(-1, K)
    return mle_from_distances(np.sqrt(np.maximum(squared.astype(np.float64), 0.0)))


def ours_kf(data: Dataset, device):
    result = label_sharpness(data.X, data.labels, top=TOP, device=device)
    return result.min_distance, result.nearest_distance


def _per_class_nearest(data: Dataset, search_one_class):
    nearest = np.full(data.X.shape[0], np.inf)
    for c in np.unique(data.labels):
        inside = data.labels == c
        nearest[inside] = search_one_class(
            np.ascontiguousarray(data.X[~inside]), np.ascontiguousarray(data.X[inside])
        )
    return float(nearest.min()), nearest


def sklearn_kf(data: Dataset, device):
    def search(others, queries):
        nn = NearestNeighbors(n_neighbors=1, algorithm="brute").fit(others)
        return nn.kneighbors(queries)[0][:, 0]

    return _per_class_nearest(data, search)


def faiss_kf(data: Dataset, device):
    def search(others, queries):
        index = faiss.IndexFlatL2(others.shape[1])
        index.add(others)
        squared, _ = index.search(queries, 1)
        return np.sqrt(np.maximum(squared[:, 0].astype(np.float64), 0.0))

    return _per_class_nearest(data, search)


@dataclass(frozen=True)
class Method:
    task: str  # "mle" or "K_F"
    name: str
    fn: object  # (Dataset, device) -> (global value, per-row values); None: not available
    ours: bool = False
    missing: str = ""  # why fn is None


def methods() -> list[Method]:
    def peer(task, name, fn, module, why):
        return Method(task, name, fn if module is not None else None, missing="" if module is not None else why)

    return [
        Method("mle", "ours intrinsic_dimension(mle)", ours_mle, ours=True),
        peer("mle", "skdim MLE(unbiased=True)", skdim_mle, skdim, "skdim not installed"),
        peer("mle", "sklearn NN brute + formula", sklearn_mle, NearestNeighbors, "sklearn not installed"),
        peer("mle", "faiss IndexFlatL2 + formula", faiss_mle, faiss, "faiss not installed"),
        Method("K_F", "ours label_sharpness", ours_kf, ours=True),
        Method("K_F", "skdim", None, missing="n/a (no K_F in skdim)"),
        peer("K_F", "sklearn NN brute per class", sklearn_kf, NearestNeighbors, "sklearn not installed"),
        peer("K_F", "faiss IndexFlatL2 per class", faiss_kf, faiss, "faiss not installed"),
    ]


# ----------------------------------------------------------------------------- checks


def relative_difference(a, b) -> np.ndarray:
    """Elementwise ``|a − b| / |b|``; 0 where both are equal (inf included), inf where one
    is not finite and they differ, ``|a − b|`` where b is 0."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.abs(a - b) / np.where(b == 0, 1.0, np.abs(b))
    rel = np.where(a == b, 0.0, rel)
    return np.where(np.isnan(rel), np.inf, rel)


def exactness(value, per_row, ref_value, ref_per_row) -> tuple[bool, str]:
    global_rel = float(relative_difference(value, ref_value))
    rows_rel = relative_difference(per_row, ref_per_row)
    ok = global_rel <= EXACT_RTOL and bool((rows_rel <= EXACT_RTOL).all())
    text = (
        f"{'yes' if ok else 'no'} (global rel {global_rel:.1e}; rows: max rel "
        f"{rows_rel.max():.1e}, {int((rows_rel > 1e-6).sum())}/{rows_rel.size} > 1e-6, "
        f"{int((rows_rel > 1e-2).sum())} > 1e-2)"
    )
    return ok, text


def spot_check_ours(data: Dataset, mle_local, kf_nearest, kf_min, device) -> str:
    """Ours vs. distances computed directly from float64 coordinate differences (no matmul
    identity) for the planted near-duplicate rows and a few random rows."""
    rng = np.random.default_rng(1)
    n = data.X.shape[0]
    rows = np.unique(np.concatenate([data.near_rows, rng.choice(n, N_SPOT_RANDOM, replace=False)]))
    X64 = torch.as_tensor(data.X, device=device).double()
    labels = torch.as_tensor(data.labels, device=device)
    worst_mle = worst_kf = 0.0
    best_cross = math.inf
    for chunk in np.array_split(rows, max(1, len(rows) // 8)):
        q = torch.as_tensor(chunk, device=device)
        d = torch.cdist(X64[q], X64, compute_mode="donot_use_mm_for_euclid_dist")
        d[torch.arange(len(chunk), device=device), q] = math.inf
        T = torch.topk(d, K, dim=1, largest=False).values.cpu().numpy()
        _, local = mle_from_distances(T)
        worst_mle = max(worst_mle, float(relative_difference(local, mle_local[chunk]).max()))
        other = torch.where(labels[None, :] != labels[q][:, None], d, torch.full_like(d, math.inf))
        nearest = other.min(dim=1).values.cpu().numpy()
        worst_kf = max(worst_kf, float(relative_difference(nearest, kf_nearest[chunk]).max()))
        best_cross = min(best_cross, float(nearest.min()))
    del X64
    min_rel = float(relative_difference(best_cross, kf_min))
    return (
        f"ours vs direct float64 differences on {len(rows)} rows (all {2 * N_NEAR_PAIRS} "
        f"near-duplicate rows + random): MLE local max rel {worst_mle:.1e}, nearest other-label "
        f"max rel {worst_kf:.1e}, K_F min distance rel {min_rel:.1e}"
    )


# ----------------------------------------------------------------------------- timing


def synchronize(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, *args):
    gc.collect()
    start = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - start, out


def matmul_peak(device, dtype, n: int = 4096, reps: int = 5) -> float:
    """Best-of-``reps`` GFLOP/s of an ``n×n`` by ``n×n`` torch.mm (TF32 off)."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    c = torch.empty(n, n, device=device, dtype=dtype)
    best = math.inf
    with exact_float32_matmul():
        torch.mm(a, b, out=c)  # warm-up
        synchronize(device)
        for _ in range(reps):
            start = time.perf_counter()
            torch.mm(a, b, out=c)
            synchronize(device)
            best = min(best, time.perf_counter() - start)
    return 2.0 * n**3 / best / 1e9


@dataclass
class Row:
    task: str
    n: int
    d: int
    method: str
    seconds: float | None = None  # measured
    estimate: float | None = None  # extrapolated, never measured
    estimate_from: str = ""
    exact: str = ""
    note: str = ""
    ours: bool = False
    runs: int = 1


@dataclass
class History:
    """Measured peer times, for extrapolating ``t ∝ N²·D`` to larger cells."""

    points: dict = field(default_factory=dict)

    def add(self, task, method, n, d, seconds):
        self.points.setdefault((task, method), []).append((n, d, seconds))

    def estimate(self, task, method, n, d):
        points = self.points.get((task, method), [])
        if not points:
            return None, ""
        same_d = [p for p in points if p[1] == d]
        n0, d0, t0 = max(same_d or points, key=lambda p: (p[0] * p[0] * p[1], p[0]))
        return t0 * (n / n0) ** 2 * (d / d0), f"N={n0}, D={d0}"


def run_cell(n, d, device, args, history: History) -> tuple[list[Row], list[str]]:
    log(f"cell N={n} D={d}: generating data")
    seconds, data = timed(make_dataset, n, d, args.seed)
    notes = [f"N={n} D={d}: data generated in {seconds:.1f} s: {data.description}"]
    rows: list[Row] = []
    reference = {}
    for method in methods():
        row = Row(method.task, n, d, method.name, ours=method.ours)
        rows.append(row)
        if method.fn is None:
            row.exact, row.note = "n/a", method.missing
            continue
        if not method.ours:
            estimate, source = history.estimate(method.task, method.name, n, d)
            if estimate is not None and estimate > args.peer_budget:
                row.estimate, row.estimate_from = estimate, source
                row.exact = "not run"
                log(f"  skip {method.task} {method.name}: extrapolated {estimate:.0f} s > budget")
                continue
        log(f"  run {method.task} {method.name}")
        seconds, (value, per_row) = timed(lambda: _call(method, data, device))
        log(f"    {seconds:.2f} s, value {value:.6g}")
        runs = 1
        while seconds * runs < args.repeat_under and runs < 3:  # cheap: best of 3
            again, _ = timed(lambda: _call(method, data, device))
            log(f"    again {again:.2f} s")
            seconds, runs = min(seconds, again), runs + 1
        row.seconds, row.runs = seconds, runs
        if method.ours:
            reference[method.task] = (value, per_row)
            row.exact = "reference"
            row.note = (
                f"d_MLE = {value:.4f}" if method.task == "mle" else f"K_F = {1.0 / value:.6g} (min dist {value:.6g})"
            )
        else:
            history.add(method.task, method.name, n, d, seconds)
            ref_value, ref_rows = reference[method.task]
            _, row.exact = exactness(value, per_row, ref_value, ref_rows)
            row.note = f"d_MLE = {value:.4f}" if method.task == "mle" else f"K_F = {1.0 / value if value > 0 else math.inf:.6g}"
    if not args.no_spot_check and "mle" in reference and "K_F" in reference:
        log("  spot-check ours against direct float64 differences")
        seconds, text = timed(
            spot_check_ours, data, reference["mle"][1], reference["K_F"][1], reference["K_F"][0], device
        )
        notes.append(f"N={n} D={d}: {text} ({seconds:.1f} s)")
        log("    " + text)
    del data
    gc.collect()
    return rows, notes


def _call(method: Method, data: Dataset, device):
    out = method.fn(data, device)
    synchronize(device)
    return out


def warm_up(device) -> None:
    """Each method once on a tiny set: loads libraries, spins up thread pools."""
    data = make_dataset(600, 64, seed=123)
    for method in methods():
        if method.fn is not None:
            method.fn(data, device)
    synchronize(device)


# ----------------------------------------------------------------------------- table


def format_table(rows: list[Row], peak32: float) -> str:
    header = "| task | N | D | method | seconds | ratio vs ours | GFLOP/s | × matmul floor | exact? | note |"
    lines = [header, "|---|---|---|---|---|---|---|---|---|---|"]
    ours_time = {(r.task, r.n, r.d): r.seconds for r in rows if r.ours}
    for r in rows:
        flops = 2.0 * r.n * r.n * r.d
        floor = flops / (peak32 * 1e9)
        t = r.seconds if r.seconds is not None else r.estimate
        if t is None:
            cells = ["—", "—", "—", "—"]
        else:
            mark = "" if r.seconds is not None else "≈"
            ours = ours_time.get((r.task, r.n, r.d))
            ratio = "1.00" if r.ours else (f"{mark}{t / ours:.2f}" if ours else "—")
            best = f" (best of {r.runs})" if r.runs > 1 else ""
            seconds = f"{t:.2f}{best}" if r.seconds is not None else f"≈{t:.3g} (extrapolated from {r.estimate_from}, not measured)"
            cells = [seconds, ratio, f"{mark}{flops / t / 1e9:.1f}", f"{mark}{t / floor:.2f}"]
        lines.append(
            f"| {r.task} | {r.n} | {r.d} | {r.method} | " + " | ".join(cells) + f" | {r.exact} | {r.note} |"
        )
    return "\n".join(lines)


def environment(device, peaks) -> list[str]:
    try:
        from threadpoolctl import threadpool_info

        pools = ", ".join(
            sorted({f"{p['internal_api']}={p['num_threads']}" for p in threadpool_info()})
        )
    except ImportError:  # pragma: no cover
        pools = "threadpoolctl not installed"
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    versions = [f"torch {torch.__version__}", f"numpy {np.__version__}"]
    if skdim is not None:
        versions.append(f"skdim {getattr(skdim, '__version__', '?')}")
    if NearestNeighbors is not None:
        import sklearn

        versions.append(f"scikit-learn {sklearn.__version__}")
    if faiss is not None:
        versions.append(f"faiss {faiss.__version__} (omp threads {faiss.omp_get_max_threads()})")
    return [
        f"- library: {library_version()}",
        f"- device: {device} ({name}); os.cpu_count() = {os.cpu_count()}; "
        f"torch threads = {torch.get_num_threads()}; thread pools: {pools}",
        f"- versions: {', '.join(versions)}",
        f"- matmul peak on {device} (torch.mm 4096², best of 5, TF32 off), before / after the "
        f"benchmark: float32 {peaks['f32 before']:.1f} / {peaks['f32 after']:.1f} GFLOP/s, float64 "
        f"{peaks['f64 before']:.1f} / {peaks['f64 after']:.1f} GFLOP/s; the floor uses the larger "
        f"float32 value, {max(peaks['f32 before'], peaks['f32 after']):.1f} GFLOP/s",
    ]


def library_version() -> str:
    """Where the benchmarked ``fiftyone_intrinsic`` was imported from, its git commit and
    whether its engine modules differ from that commit (the library may be mid-edit)."""
    import fiftyone_intrinsic

    package = Path(fiftyone_intrinsic.__file__).resolve().parent
    digest = hashlib.sha1(
        b"".join((package / f"{m}.py").read_bytes() for m in ("neighbors", "dimension", "sharpness"))
    ).hexdigest()[:10]
    text = f"{package} (neighbors+dimension+sharpness sha1 {digest})"
    try:
        git = ["git", "-C", str(package.parent)]
        commit = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True)
        dirty = subprocess.run(
            [*git, "status", "--porcelain", "--", "neighbors.py", "dimension.py", "sharpness.py"],
            capture_output=True, text=True, check=True, cwd=package,
        )
        state = "uncommitted changes in the engine modules" if dirty.stdout.strip() else "clean"
        text += f", git {commit.stdout.strip()} ({state})"
    except (OSError, subprocess.CalledProcessError):
        text += ", not a git checkout"
    return text


LEGEND = [
    "- GFLOP/s counts the floor of an exact all-pairs method, N²·D multiply-adds (2·N²·D flops), "
    "for every row alike; × matmul floor = seconds / (2·N²·D / float32 peak). For K_F with two "
    "balanced classes only the cross-class pairs are needed (≈ half the floor), which the "
    "per-class peers and ours both exploit, so a K_F value below 1 × floor is possible.",
    "- ratio vs ours = peer seconds / our seconds (> 1: ours is faster).",
    f"- exact? yes: the peer's global value (d_MLE, or K_F's min distance) and every per-row value "
    f"(local MLE d_i, or distance to the nearest other-label sample) within rel. {EXACT_RTOL:.0e} of "
    "ours (float64 rounding level); otherwise no, with the global relative difference, the largest "
    "per-row one and how many rows are off by more than 1e-6 and 1e-2. Ours is checked "
    "separately against direct float64 coordinate differences (notes).",
    "- seconds: one run, or the best of up to 3 where a run took under --repeat-under seconds. "
    "Each method was warmed up once on a 600 × 64 set first.",
    "- ≈ rows were NOT run: their time is extrapolated as t ∝ N²·D from the named measured cell.",
    "- All inputs are the same float32 arrays; ours converts to float64 internally (in its time).",
]


# ----------------------------------------------------------------------------- profile


def profile(n, d, device, args) -> str:
    data = make_dataset(n, d, args.seed)
    out = [f"library: {library_version()}"]
    for method in (m for m in methods() if m.ours):
        profiler = cProfile.Profile()
        start = time.perf_counter()
        profiler.enable()
        method.fn(data, device)
        synchronize(device)
        profiler.disable()
        total = time.perf_counter() - start
        stream = io.StringIO()
        stats = pstats.Stats(profiler, stream=stream).strip_dirs()
        stats.sort_stats("tottime").print_stats(18)
        stats.sort_stats("cumulative").print_stats(25)
        out.append(f"### profile {method.name}, N={n} D={d}: {total:.2f} s\n```\n{stream.getvalue()}\n```")
    return "\n".join(out)


# ----------------------------------------------------------------------------- main


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=None, help="N values (default 10000 50000)")
    parser.add_argument("--dims", type=int, nargs="+", default=None, help="D values (default 784 3072)")
    parser.add_argument("--device", default="auto", help="device for ours and the matmul peak: auto, cpu, cuda")
    parser.add_argument("--quick", action="store_true", help="smoke run: N in {2000, 5000}, D in {784, 3072}")
    parser.add_argument(
        "--peer-budget",
        type=float,
        default=300.0,
        help="skip a peer whose extrapolated time exceeds this many seconds (default 300)",
    )
    parser.add_argument(
        "--repeat-under",
        type=float,
        default=20.0,
        help="repeat a measurement (best of up to 3) while the runs so far took under this many seconds",
    )
    parser.add_argument("--skip-slow-peers", action="store_true", help="same as --peer-budget 60")
    parser.add_argument("--no-spot-check", action="store_true", help="skip checking ours against direct differences")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--profile", action="store_true", help="only cProfile ours on each cell; no peers, no table")
    parser.add_argument("--out", type=Path, default=None, help="also write the markdown report here")
    args = parser.parse_args(argv)
    if args.skip_slow_peers:
        args.peer_budget = min(args.peer_budget, 60.0)
    sizes = args.sizes or ([2000, 5000] if args.quick else [10000, 50000])
    dims = args.dims or [784, 3072]
    device = resolve_device(args.device)

    if args.profile:
        report = "\n\n".join(profile(n, d, device, args) for n in sorted(sizes) for d in sorted(dims))
        print(report)
        if args.out:
            args.out.write_text(report + "\n")
        return 0

    log(f"device {device}, torch threads {torch.get_num_threads()}; measuring matmul peak")
    peaks = {"f32 before": matmul_peak(device, torch.float32), "f64 before": matmul_peak(device, torch.float64)}
    log(f"float32 peak {peaks['f32 before']:.1f} GFLOP/s, float64 {peaks['f64 before']:.1f} GFLOP/s; warm-up")
    warm_up(device)

    history = History()
    rows: list[Row] = []
    notes: list[str] = []
    started = time.perf_counter()
    for n in sorted(sizes):
        for d in sorted(dims):
            cell_rows, cell_notes = run_cell(n, d, device, args, history)
            rows += cell_rows
            notes += cell_notes
    elapsed = time.perf_counter() - started
    peaks["f32 after"] = matmul_peak(device, torch.float32)
    peaks["f64 after"] = matmul_peak(device, torch.float64)
    peak32 = max(peaks["f32 before"], peaks["f32 after"])

    command = " ".join([Path(sys.executable).name, *sys.argv]) if argv is None else " ".join(argv)
    rows.sort(key=lambda r: (r.task != "mle", r.n, r.d))
    report = "\n".join(
        [
            "# Exact kNN + MLE and exact K_F: fiftyone_intrinsic vs peers",
            "",
            f"Command: `{command}` (total {elapsed / 60:.1f} min, peer budget {args.peer_budget:.0f} s)",
            "",
            *environment(device, peaks),
            "",
            format_table(rows, peak32),
            "",
            *LEGEND,
            "",
            "Notes:",
            *[f"- {note}" for note in notes],
        ]
    )
    print(report)
    if args.out:
        args.out.write_text(report + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
