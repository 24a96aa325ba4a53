"""Measured coverage of the nominal 95% d_data interval on manifolds of known dimension.

For each manifold and estimator: independent draws of N = 2000 points, the estimate and its
interval on each, and how often the interval contains the estimator's mean over the draws
(its expected value at this N). Also the coverage that version 0.1's percentile bootstrap
over per-point statistics would have had on the same draws. Prints a markdown table; the
same draws as ``tests/core/test_interval_coverage.py`` (seed 2024).

    .venv/bin/python benchmarks/interval_coverage.py [--draws 100]
"""

import argparse
import pathlib
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "core"))

from test_interval_coverage import N, draw  # noqa: E402

from fiftyone_intrinsic.core.dimension import intrinsic_dimension  # noqa: E402
from fiftyone_intrinsic.core.estimators import get_estimator  # noqa: E402
from fiftyone_intrinsic.core.neighbors import nearest_neighbors  # noqa: E402


def percentile_bootstrap(X, estimator, k, seed, resamples=200):
    """Version 0.1's interval: resample the per-point statistics with replacement."""
    unit = get_estimator(estimator)
    statistic = unit.point_statistics(nearest_neighbors(X, k, device="cpu").distances)
    rng = np.random.default_rng(seed)
    estimates = [unit.combine(statistic[rng.integers(0, len(statistic), len(statistic))], k=k, discard_fraction=0.1)
                 for _ in range(resamples)]
    return np.quantile(estimates, [0.025, 0.975])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=100)
    args = parser.parse_args()
    import torch
    from threadpoolctl import threadpool_info

    pools = sorted({f"{p['internal_api']} {p.get('version')} {p.get('architecture')} x{p['num_threads']}"
                    for p in threadpool_info()})
    print(f"N = {N}, {args.draws} draws each, nominal 95%; torch {torch.get_num_threads()} threads; BLAS: {pools}\n")
    print("| manifold | estimator | mean estimate | sd | coverage (subsamples) | half-width / sd | coverage (0.1 bootstrap) | seconds |")
    print("|---|---|---|---|---|---|---|---|")
    for manifold in ("5-cube", "8-sphere"):
        for estimator in ("mle", "twonn"):
            rng = np.random.default_rng(2024)
            start = time.perf_counter()
            rows, old = [], []
            for i in range(args.draws):
                X = draw(manifold, rng)
                result = intrinsic_dimension(X, estimator=estimator, device="cpu", seed=i)
                rows.append((result.dimension, result.ci_low, result.ci_high))
                old.append(percentile_bootstrap(X, estimator, result.k, i))
            seconds = time.perf_counter() - start
            values = np.array(rows)
            old = np.array(old)
            mean, sd = values[:, 0].mean(), values[:, 0].std()
            covered = np.mean((values[:, 1] <= mean) & (mean <= values[:, 2]))
            covered_old = np.mean((old[:, 0] <= mean) & (mean <= old[:, 1]))
            half = np.mean(values[:, 2] - values[:, 1]) / 2
            print(f"| {manifold} | {estimator} | {mean:.3f} | {sd:.4f} | {covered:.3f} | {half / sd:.2f} | "
                  f"{covered_old:.3f} | {seconds:.0f} |", flush=True)


if __name__ == "__main__":
    main()
