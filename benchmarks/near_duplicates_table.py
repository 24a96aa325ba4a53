"""Near-duplicate merging: how much each rule merges, and how MLE and TwoNN move.

Two markdown tables (docs/science.md §3):

1. Real images, BreastMNIST (780 x 28 x 28) and the MNIST test set resized to 8 x 8
   (10,000 images), pixels in [0, 1]: rows merged by the old rule (single linkage at an
   absolute distance, over each row's 20 nearest neighbours) and by the current one (a
   greedy net at a fraction of the median nearest-neighbour distance), with MLE (k = 20)
   and TwoNN on the rows kept, and whether the default guard (5%) refuses.
2. A 5-sphere (2,000 points in R^784) with jittered copies of a fraction of its points:
   MLE and TwoNN without merging (the sensitivity of each estimator to near-copies), and
   after merging at 2.5 times the copies' distance, the share allowed explicitly.

    .venv/bin/python benchmarks/near_duplicates_table.py        # about 1.5 min on 2 cores
"""

import pathlib
import sys
import time

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fiftyone_intrinsic.core.dimension import estimate_from_distances, intrinsic_dimension  # noqa: E402
from fiftyone_intrinsic.core.near_duplicates import merge_near_duplicates  # noqa: E402
from fiftyone_intrinsic.core.neighbors import find_duplicates, nearest_neighbors  # noqa: E402
from fiftyone_intrinsic.core.preprocessing import preprocess_image  # noqa: E402
from fiftyone_intrinsic.core.settings import Preprocessing  # noqa: E402
from fiftyone_intrinsic.datasets.importers import read_idx  # noqa: E402

DATA = ROOT.parent / "shared" / "data"


def breastmnist() -> np.ndarray:
    with np.load(DATA / "medical" / "breastmnist_28.npz") as archive:
        images = np.concatenate([archive[f"{split}_images"] for split in ("train", "val", "test")])
    return images.reshape(len(images), -1) / 255.0


def mnist_8x8() -> np.ndarray:
    from PIL import Image

    images = read_idx(DATA / "natural" / "mnist_t10k" / "t10k-images-idx3-ubyte.gz")
    resize = Preprocessing(size=8, channels=1)
    return np.stack([preprocess_image(Image.fromarray(image), resize).ravel() for image in images])


def old_rule(X, rows, distance) -> np.ndarray:
    """Positions kept by single linkage at an absolute ``distance`` over 20-NN lists
    (what ``duplicate_tolerance`` did before it was relative)."""
    found = nearest_neighbors(X, 20, rows=rows, device="cpu")
    close = found.distances <= distance
    n = rows.shape[0]
    graph = coo_matrix((np.ones(close.sum()), (np.repeat(np.arange(n), 20)[close.ravel()], found.indices[close])), shape=(n, n))
    _, component = connected_components(graph, directed=False)
    return np.unique(component, return_index=True)[1]


def estimates(X, rows) -> str:
    distances = nearest_neighbors(X, 20, rows=rows, device="cpu").distances
    mle = estimate_from_distances(distances, "mle")[0]
    twonn = estimate_from_distances(distances[:, :2], "twonn")[0]
    return f"{mle:.2f} | {twonn:.2f}"


def real_table():
    print("| data | rule | setting | merged | of distinct | MLE | TwoNN | default guard |")
    print("|---|---|---|---:|---:|---:|---:|---|")
    for name, X in (("BreastMNIST 28x28", breastmnist()), ("MNIST test 8x8", mnist_8x8())):
        rows = find_duplicates(X).representatives
        print(f"| {name} | exact duplicates only | | 0 | {rows.size} | {estimates(X, rows)} | |")
        for distance in (0.5, 1.0):
            kept = old_rule(X, rows, distance)
            merged = rows.size - kept.size
            print(f"| {name} | old: single linkage | {distance} (absolute) | {merged} | {merged / rows.size:.1%} "
                  f"| {estimates(X, rows[kept])} | (none) |")
        for tolerance in (0.1, 0.2, 0.3, 0.5):
            net = merge_near_duplicates(X, rows, tolerance, 1.0, device="cpu")
            verdict = "refused" if net.n_merged > 0.05 * rows.size else "runs"
            print(f"| {name} | net | {tolerance} x median NN = {net.distance:.3g} | {net.n_merged} "
                  f"| {net.n_merged / rows.size:.1%} | {estimates(X, rows[net.kept])} | {verdict} |")


def sphere(n=2000, d=5, ambient=784, seed=0):
    rng = np.random.default_rng(seed)
    latent = rng.normal(size=(n, d + 1))
    latent /= np.linalg.norm(latent, axis=1, keepdims=True)
    return latent @ rng.normal(size=(d + 1, ambient))


def with_copies(X, fraction, scale, seed=1):
    rng = np.random.default_rng(seed)
    copied = rng.choice(len(X), int(fraction * len(X)), replace=False)
    return np.concatenate([X, X[copied] + scale / np.sqrt(X.shape[1]) * rng.normal(size=(copied.size, X.shape[1]))])


def synthetic_tables():
    X = sphere()
    median = float(np.median(nearest_neighbors(X, 1, device="cpu").distances))
    estimate = {e: intrinsic_dimension(X, estimator=e, device="cpu", interval_splits=0).dimension for e in ("mle", "twonn")}
    print(f"\n5-sphere, 2,000 points in R^784, median NN distance {median:.3g}: "
          f"MLE {estimate['mle']:.2f}, TwoNN {estimate['twonn']:.2f}\n")
    print("| copies | copy distance | MLE | TwoNN | tolerance | merged | MLE merged | TwoNN merged |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|")
    for fraction in (0.01, 0.03, 0.05, 0.1, 0.2, 0.3):
        for scale in (0.01, 0.1):
            Y = with_copies(X, fraction, scale * median)
            raw = [intrinsic_dimension(Y, estimator=e, device="cpu", interval_splits=0) for e in ("mle", "twonn")]
            merge = dict(duplicate_tolerance=2.5 * scale, max_merged_fraction=min(1.0, fraction + 0.05))
            merged = [intrinsic_dimension(Y, estimator=e, device="cpu", interval_splits=0, **merge) for e in ("mle", "twonn")]
            print(f"| {fraction:.0%} | {scale} x median NN | {raw[0].dimension:.2f} | {raw[1].dimension:.2f} "
                  f"| {2.5 * scale:g} | {merged[0].n_near_duplicates} | {merged[0].dimension:.2f} | {merged[1].dimension:.2f} |")


if __name__ == "__main__":
    start = time.perf_counter()
    real_table()
    synthetic_tables()
    import torch
    from threadpoolctl import threadpool_info

    pools = sorted({f"{p['internal_api']} {p.get('version')} {p.get('architecture')} x{p['num_threads']}"
                    for p in threadpool_info()})
    print(f"\n({time.perf_counter() - start:.0f} s; torch {torch.get_num_threads()} threads; BLAS: {pools})")
