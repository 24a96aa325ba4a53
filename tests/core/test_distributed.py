"""Two gloo ranks under ``python -m torch.distributed.run`` share the blocks of the exact
search and return exactly the single-process result on every rank, from a memmap."""

import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO
from fiftyone_intrinsic.core.dimension import intrinsic_dimension
from fiftyone_intrinsic.core.sharpness import label_sharpness

BUDGET_MIB = 0.25  # small tiles: several blocks to share


@pytest.fixture(scope="module")
def memmap_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("distributed")
    rng = np.random.default_rng(5)
    X = np.concatenate([rng.normal(size=(560, 24)), rng.normal(size=(40, 24)) * 1e-3 + 5.0]).astype(np.float32)
    X[100] = X[200]  # an exact duplicate
    labels = rng.integers(0, 3, size=len(X))
    labels[100], labels[200] = 0, 1  # with different labels: a conflicting duplicate
    features = np.lib.format.open_memmap(folder / "features.npy", mode="w+", dtype=np.float32, shape=X.shape)
    features[:] = X
    features.flush()
    np.save(folder / "labels.npy", labels)
    return folder


def test_two_gloo_ranks_return_the_single_process_result(memmap_files):
    X = np.load(memmap_files / "features.npy", mmap_mode="r")
    labels = np.load(memmap_files / "labels.npy")
    budget = int(BUDGET_MIB * 2**20)
    blocks = {"dimension": [], "sharpness": []}
    dimension = intrinsic_dimension(
        X, device="cpu", memory_budget=budget, progress=lambda done, total: blocks["dimension"].append(done)
    )
    sharpness = label_sharpness(
        X, labels, device="cpu", memory_budget=budget, progress=lambda done, total: blocks["sharpness"].append(done)
    )
    assert len(blocks["dimension"]) > 2 and len(blocks["sharpness"]) > 2, "too few blocks to share"

    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
        "-m", "fiftyone_intrinsic.distributed",
        "--features", str(memmap_files / "features.npy"), "--labels", str(memmap_files / "labels.npy"),
        "--dimension", "--sharpness", "--device", "cpu", "--memory-budget-mib", str(BUDGET_MIB),
        "--out", str(memmap_files / "result.json"), "--per-rank", str(memmap_files / "ranks"),
    ]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600,
                          env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]

    ranks = [np.load(memmap_files / "ranks" / f"rank{r}.npz") for r in range(2)]
    for rank, found in enumerate(ranks):
        assert int(found["rank"]) == rank and int(found["world_size"]) == 2
        # every rank computed a share of the blocks, and the shares add up to all of them
        assert 0 < int(found["dimension_blocks"]) < len(blocks["dimension"])
        assert 0 < int(found["sharpness_blocks"]) < len(blocks["sharpness"])
        assert float(found["dimension"]) == dimension.dimension
        np.testing.assert_array_equal(found["local"], dimension.local)
        assert float(found["k_f"]) == sharpness.k_f
        np.testing.assert_array_equal(found["pairs"], [[p.i, p.j] for p in sharpness.pairs])
        np.testing.assert_array_equal(found["pair_distances"], [p.distance for p in sharpness.pairs])
        np.testing.assert_array_equal(found["nearest_distance"], sharpness.nearest_distance)
        np.testing.assert_array_equal(found["nearest_index"], sharpness.nearest_index)
        np.testing.assert_array_equal(found["class_min_distance"], sharpness.class_min_distance)
    assert sum(int(found["dimension_blocks"]) for found in ranks) == len(blocks["dimension"])
    assert sum(int(found["sharpness_blocks"]) for found in ranks) == len(blocks["sharpness"])
    assert sharpness.conflicting_duplicates == [(100, 200)]
    assert (memmap_files / "result.json").exists()
