"""Known-answer tests of the exact neighbour engine (fiftyone_intrinsic.core.neighbors).

The oracle is a brute-force float64 search that subtracts coordinates directly, never the
``‖a‖² + ‖b‖² − 2a·b`` identity, so it is exact to float64 rounding even for near-duplicates
of large norm (docs/science.md §4).
"""

import threading

import numpy as np
import pytest
import torch

from fiftyone_intrinsic.core.devices import resolve_device
from fiftyone_intrinsic.core.neighbors import (
    approximation_error_bound,
    feature_scale,
    as_feature_matrix,
    find_duplicates,
    nearest_neighbors,
)

RTOL = 1e-9


# --------------------------------------------------------------------------- helpers


def brute_distances(X: np.ndarray) -> np.ndarray:
    """``(N, N)`` float64 Euclidean distances from coordinate differences."""
    X = np.asarray(X, dtype=np.float64)
    return np.stack([np.sqrt(((X - row) ** 2).sum(axis=1)) for row in X])


def brute_neighbors(X: np.ndarray, k: int):
    """Exact k nearest neighbours, the row itself excluded, ties to the smaller index."""
    distances = brute_distances(X)
    np.fill_diagonal(distances, np.inf)
    order = np.argsort(distances, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(distances, order, axis=1), order


def float32_matmul_distances(X: np.ndarray, center: bool = False) -> np.ndarray:
    """The fast, inexact distances a plain implementation computes: float32 matmul identity."""
    X32 = np.asarray(X, dtype=np.float64)
    if center:
        X32 = X32 - X32.mean(axis=0)
    X32 = X32.astype(np.float32)
    squared_norms = (X32 * X32).sum(axis=1)
    squared = squared_norms[:, None] + squared_norms[None, :] - 2.0 * (X32 @ X32.T)
    np.fill_diagonal(squared, np.inf)
    return np.sqrt(np.maximum(squared, 0.0))


def near_duplicates_of_large_norm(rng, n_bases=40, n_features=16, n_copies=3):
    """Base points with coordinates of 1e3..1e4 and copies perturbed by 1e-4..1e-6.

    The perturbations are far below float32 resolution at these norms, so the order of the
    near-duplicate pairs is decided by float64 coordinates alone.
    """
    bases = rng.uniform(1e3, 1e4, size=(n_bases, n_features)) * rng.choice([-1, 1], size=(n_bases, n_features))
    rows = [bases]
    for _ in range(n_copies):
        scale = 10.0 ** rng.uniform(-6, -4, size=(n_bases, 1))
        direction = rng.normal(size=(n_bases, n_features))
        direction /= np.linalg.norm(direction, axis=1, keepdims=True)
        rows.append(bases + scale * direction)
    X = np.concatenate(rows)
    return X[rng.permutation(len(X))]


def assert_exact_neighbors(nn, X, k):
    """``nn`` equals the brute-force neighbours: distances to RTOL, indices up to ties."""
    expected_d, expected_i = brute_neighbors(X, k)
    np.testing.assert_allclose(nn.distances, expected_d, rtol=RTOL, atol=0)
    # indices may differ only between neighbours at the same exact distance
    all_d = brute_distances(X)
    np.testing.assert_allclose(np.take_along_axis(all_d, nn.indices, axis=1), nn.distances, rtol=RTOL, atol=0)
    assert not (nn.indices == np.arange(len(X))[:, None]).any(), "a row is its own neighbour"
    assert all(len(set(row)) == k for row in nn.indices.tolist()), "a neighbour is listed twice"
    return expected_i


# --------------------------------------------------------------------------- nearest_neighbors


@pytest.mark.parametrize(
    "n_rows, n_features, k",
    [(200, 1, 3), (300, 2, 1), (300, 20, 5), (500, 784, 20), (64, 5, 63)],
)
def test_nearest_neighbors_equal_brute_force_on_random_data(rng, n_rows, n_features, k):
    X = rng.normal(size=(n_rows, n_features)) * rng.uniform(0.1, 10.0)
    nn = nearest_neighbors(X, k, device="cpu")
    expected_i = assert_exact_neighbors(nn, X, k)
    np.testing.assert_array_equal(nn.indices, expected_i)  # continuous data: no ties
    assert nn.distances.dtype == np.float64 and nn.indices.dtype == np.int64


@pytest.mark.parametrize("tile_rows", [1, 7, 128])
def test_nearest_neighbors_do_not_depend_on_tile_size(rng, tile_rows):
    X = rng.normal(size=(150, 12))
    nn = nearest_neighbors(X, 4, device="cpu", tile_rows=tile_rows)
    expected_i = assert_exact_neighbors(nn, X, 4)
    np.testing.assert_array_equal(nn.indices, expected_i)


def test_nearest_neighbors_accept_float32_integer_and_tensor_input(rng):
    X = rng.integers(-50, 50, size=(120, 6))
    expected = nearest_neighbors(X.astype(np.float64), 3, device="cpu")
    for variant in (X, X.astype(np.float32), torch.as_tensor(X, dtype=torch.float32)):
        nn = nearest_neighbors(variant, 3, device="cpu")
        np.testing.assert_array_equal(nn.distances, expected.distances)
        np.testing.assert_array_equal(nn.indices, expected.indices)


def test_float32_matmul_ranks_large_norm_near_duplicates_wrongly(rng):
    """Makes the next test meaningful: the fast distances alone get these pairs wrong."""
    X = near_duplicates_of_large_norm(rng)
    _, true_nearest = brute_neighbors(X, 1)
    for center in (False, True):  # centring, as the engine does, does not save float32
        approx_nearest = np.argmin(float32_matmul_distances(X, center=center), axis=1)
        assert (approx_nearest != true_nearest[:, 0]).mean() > 0.3


@pytest.mark.parametrize("k", [1, 3, 5])
def test_nearest_neighbors_exact_on_large_norm_near_duplicates(rng, k):
    X = near_duplicates_of_large_norm(rng)
    nn = nearest_neighbors(X, k, device="cpu")
    expected_i = assert_exact_neighbors(nn, X, k)
    np.testing.assert_array_equal(nn.indices, expected_i)
    # the first 3 neighbours are the other copies, at most 2e-4 away; the next base is far
    assert (nn.distances[:, : min(k, 3)] < 2.1e-4).all()
    if k > 3:
        assert (nn.distances[:, 3:] > 1.0).all()


def test_nearest_neighbors_exact_when_near_ties_overflow_the_candidates(rng):
    """A cluster of 40 near-duplicates of large norm: every member is a candidate of every
    other (more than k + 8 of them), which takes the engine's per-row fallback."""
    base = rng.uniform(1e3, 1e4, size=(1, 10))
    cluster = base + 10.0 ** rng.uniform(-6, -4, size=(40, 1)) * rng.normal(size=(40, 10))
    X = np.concatenate([cluster, rng.uniform(-1e4, 1e4, size=(60, 10))])
    nn = nearest_neighbors(X, 5, device="cpu")
    expected_i = assert_exact_neighbors(nn, X, 5)
    np.testing.assert_array_equal(nn.indices, expected_i)


def test_exact_duplicates_are_neighbours_at_distance_exactly_zero(rng):
    X = rng.normal(size=(100, 8))
    X = np.concatenate([X, X[[3, 3, 50]], X[:1] * 1.0])  # rows 100, 101 copy 3; 102 copies 50; 103 copies 0
    nn = nearest_neighbors(X, 3, device="cpu")
    expected_i = assert_exact_neighbors(nn, X, 3)
    np.testing.assert_array_equal(nn.indices, expected_i)  # exact ties go to the smaller index
    assert nn.distances[3, 0] == 0.0 and nn.distances[3, 1] == 0.0 and nn.distances[3, 2] > 0
    assert nn.indices[3, :2].tolist() == [100, 101]
    assert nn.indices[101, :2].tolist() == [3, 100]
    assert (nn.indices[50, 0], nn.distances[50, 0]) == (102, 0.0)
    assert (nn.indices[103, 0], nn.distances[103, 0]) == (0, 0.0)


def test_nearest_neighbors_hand_computed():
    X = np.array([[0.0], [1.0], [-1.0], [1.0], [3.5]])
    nn = nearest_neighbors(X, 2, device="cpu")
    # row 0: three rows at distance 1, the smaller indices win; rows 1 and 3 coincide
    assert nn.indices.tolist() == [[1, 2], [3, 0], [0, 1], [1, 0], [1, 3]]
    assert nn.distances.tolist() == [[1.0, 1.0], [0.0, 1.0], [1.0, 2.0], [0.0, 1.0], [2.5, 2.5]]


@pytest.mark.parametrize("tile_rows", [None, 16])
def test_custom_mask_excludes_pairs_and_pads_with_inf(rng, tile_rows):
    X = rng.normal(size=(40, 3))
    parity = np.arange(40) % 2

    def other_parity_only(block, rows, columns):
        same = parity[rows[0] : rows[1], None] == parity[None, columns[0] : columns[1]]
        block[torch.as_tensor(same)] = float("inf")

    nn = nearest_neighbors(X, 25, device="cpu", mask=other_parity_only, tile_rows=tile_rows)
    distances = brute_distances(X)
    distances[parity[:, None] == parity[None, :]] = np.inf
    order = np.argsort(distances, axis=1, kind="stable")[:, :20]
    np.testing.assert_array_equal(nn.indices[:, :20], order)
    np.testing.assert_allclose(nn.distances[:, :20], np.take_along_axis(distances, order, 1), rtol=RTOL)
    # only 20 rows of the other parity exist: the rest is padding
    assert np.isinf(nn.distances[:, 20:]).all() and (nn.indices[:, 20:] == -1).all()


def test_observed_blocks_cover_every_pair_within_the_error_bound():
    """The float32 distances the engine observes differ from the exact squared distances
    (of the features times feature_scale) by no more than approximation_error_bound, also
    for near-duplicates of large norm; every ordered pair is seen exactly once."""
    X = near_duplicates_of_large_norm(np.random.default_rng(1), n_bases=30)
    scale = feature_scale(X)
    assert scale != 1.0  # the units matter in this test
    exact_squared = brute_distances(X * scale) ** 2
    bound = approximation_error_bound(torch.as_tensor(X))
    seen = np.zeros((len(X), len(X)), dtype=int)

    def observe(block, rows, columns):
        (r0, r1), (c0, c1) = rows, columns
        approx = block.double().numpy()
        finite = np.isfinite(approx)
        error = np.abs(approx - exact_squared[r0:r1, c0:c1])
        assert (error[finite] <= np.broadcast_to(bound[r0:r1, None], error.shape)[finite]).all()
        seen[r0:r1, c0:c1] += 1

    calls = []
    nearest_neighbors(
        X, 2, device="cpu", observe=observe, tile_rows=16,
        progress=lambda done, total: calls.append((done, total)),
    )
    assert (seen == 1).all()
    assert calls[-1] == (len(X), len(X)) and [done for done, _ in calls] == sorted({d for d, _ in calls})


def test_small_groups_share_blocks_and_exclude_their_own_pairs():
    """Groups of 1 to 9 rows packed into shared blocks, and one group larger than a block:
    every row's neighbours are the nearest rows of other groups."""
    rng = np.random.default_rng(21)
    sizes = np.r_[rng.integers(1, 10, size=40), 130]
    bounds = np.r_[0, np.cumsum(sizes)]
    X = rng.normal(size=(bounds[-1], 5))
    group = np.repeat(np.arange(len(sizes)), sizes)
    distances = brute_distances(X)
    distances[group[:, None] == group[None, :]] = np.inf
    order = np.argsort(distances, axis=1, kind="stable")[:, :3]
    nn = nearest_neighbors(X, 3, groups=bounds, tile_rows=32, device="cpu")
    np.testing.assert_allclose(nn.distances, np.take_along_axis(distances, order, axis=1), rtol=1e-12)
    np.testing.assert_array_equal(nn.indices, order)


@pytest.mark.parametrize("scale, dtype", [(1e20, np.float32), (1e-300, np.float64)])
def test_extreme_magnitudes_are_searched_exactly(scale, dtype):
    X = (np.random.default_rng(22).normal(size=(200, 6)) * scale).astype(dtype)
    power = 2.0 ** -np.frexp(np.abs(X.astype(np.float64)).max())[1]
    expected_d, expected_i = brute_neighbors(X.astype(np.float64) * power, 4)
    nn = nearest_neighbors(X, 4, device="cpu")
    np.testing.assert_array_equal(nn.indices, expected_i)
    np.testing.assert_allclose(nn.distances * power, expected_d, rtol=1e-12)
    assert nn.scale == power


@pytest.mark.parametrize("k", [0, -1, 10, 11])
def test_k_out_of_range_raises(rng, k):
    with pytest.raises(ValueError, match=rf"k={k} neighbours need 1 <= k < N; X has N=10 rows"):
        nearest_neighbors(rng.normal(size=(10, 3)), k, device="cpu")


# --------------------------------------------------------------------------- find_duplicates


def test_find_duplicates_compares_bytes_when_hashes_collide(monkeypatch):
    """Equal hashes only propose a group: the bytes decide (here every row hashes to 0)."""
    import fiftyone_intrinsic.core.neighbors as engine

    monkeypatch.setattr(engine, "_hash_multipliers", lambda n_words: np.zeros((2, n_words), dtype=np.uint32))
    X = np.array([[1.0, 2.0], [0.0, 1.0], [1.0, 2.0], [-0.0, 1.0], [3.0, 3.0]])
    groups = engine.find_duplicates(X)
    assert (groups.n_distinct, groups.n_duplicates) == (3, 2)
    assert groups.inverse[0] == groups.inverse[2] and groups.inverse[1] == groups.inverse[3]
    assert len({int(groups.inverse[0]), int(groups.inverse[1]), int(groups.inverse[4])}) == 3
    assert sorted(groups.representatives.tolist()) == [0, 1, 4]


def test_find_duplicates_hand_made():
    X = np.array([[1.0, 2.0], [0.0, 1.0], [1.0, 2.0], [1.0, 2.0], [5.0, 5.0], [0.0, 1.0]])
    groups = find_duplicates(X)
    assert groups.n_rows == 6 and groups.n_distinct == 3 and groups.n_duplicates == 3
    # every row maps to the first row with its content
    np.testing.assert_array_equal(groups.representatives[groups.inverse], [0, 1, 0, 0, 4, 1])
    assert sorted(g.tolist() for g in groups.groups()) == [[0, 2, 3], [1, 5]]


def test_find_duplicates_treats_negative_zero_as_zero():
    X = np.array([[0.0, 1.0], [-0.0, 1.0], [0.0, -0.0], [-0.0, 0.0]])
    groups = find_duplicates(X)
    assert groups.n_duplicates == 2
    assert sorted(g.tolist() for g in groups.groups()) == [[0, 1], [2, 3]]


def test_find_duplicates_separates_rows_one_ulp_apart():
    x = np.array([1e4, -3.0, 0.5])
    X = np.stack([x, np.nextafter(x, np.inf), x, x.copy()])
    groups = find_duplicates(X)
    assert groups.n_duplicates == 2
    assert [g.tolist() for g in groups.groups()] == [[0, 2, 3]]


def test_find_duplicates_without_duplicates(rng):
    groups = find_duplicates(rng.normal(size=(50, 4)))
    assert groups.n_duplicates == 0 and groups.groups() == []
    assert sorted(groups.representatives.tolist()) == list(range(50))


# --------------------------------------------------------------------------- as_feature_matrix


@pytest.mark.parametrize(
    "X, error, message",
    [
        (
            np.array([[1.0, np.nan], [0.0, 1.0]]),
            ValueError,
            r"NaN or inf values in 1 of 2 rows \(first rows: \[0\]\)",
        ),
        (
            np.array([[1.0, 2.0], [np.inf, 1.0], [0.0, -np.inf]]),
            ValueError,
            r"NaN or inf values in 2 of 3 rows \(first rows: \[1, 2\]\)",
        ),
        (np.arange(5.0), ValueError, r"must be a 2-D \(N, D\) array .* got shape \(5,\)\. Flatten"),
        (np.zeros((2, 3, 4)), ValueError, r"must be a 2-D .* got shape \(2, 3, 4\)"),
        (np.zeros((0, 4)), ValueError, r"X is empty \(shape \(0, 4\)\)"),
        (np.zeros((3, 0)), ValueError, r"X is empty \(shape \(3, 0\)\)"),
        (
            np.array([[1, "a"], [2, None]], dtype=object),
            TypeError,
            r"X must be a numeric \(N, D\) array; got dtype object",
        ),
        (np.array([["1", "2"]]), TypeError, r"numeric .* got dtype <U1"),
    ],
)
def test_as_feature_matrix_rejects_bad_input(X, error, message):
    with pytest.raises(error, match=message):
        as_feature_matrix(X)


def test_as_feature_matrix_names_the_argument():
    with pytest.raises(ValueError, match=r"embeddings has NaN"):
        as_feature_matrix(np.array([[np.nan]]), name="embeddings")


def test_as_feature_matrix_keeps_float32_only_where_exact():
    out = as_feature_matrix(torch.tensor([[1, 2], [3, 4]], dtype=torch.uint8))
    assert out.dtype == np.float32 and out.tolist() == [[1.0, 2.0], [3.0, 4.0]]
    assert as_feature_matrix([[True, False]]).tolist() == [[1.0, 0.0]]
    assert as_feature_matrix(np.ones((2, 2), dtype=np.float32)).dtype == np.float32
    assert as_feature_matrix(np.ones((2, 2), dtype=np.int64)).dtype == np.float64
    assert as_feature_matrix([[0.1, 0.2]]).dtype == np.float64


def test_float32_input_gives_the_same_neighbours_as_its_float64_copy():
    X = near_duplicates_of_large_norm(np.random.default_rng(3), n_bases=40).astype(np.float32)
    single = nearest_neighbors(X, 3, device="cpu")
    double = nearest_neighbors(X.astype(np.float64), 3, device="cpu")
    np.testing.assert_array_equal(single.indices, double.indices)
    np.testing.assert_array_equal(single.distances, double.distances)


def test_nearest_neighbors_validate_their_input():
    with pytest.raises(ValueError, match="NaN or inf"):
        nearest_neighbors(np.array([[0.0], [np.nan], [1.0]]), 1, device="cpu")


# --------------------------------------------------------------------------- devices


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU is visible")
def test_cuda_without_a_gpu_raises():
    with pytest.raises(ValueError, match=r"Device 'cuda' was requested but no CUDA GPU is visible"):
        resolve_device("cuda")
    with pytest.raises(ValueError, match="no CUDA GPU"):
        nearest_neighbors(np.eye(3), 1, device="cuda")


def test_resolve_device_names():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto") == resolve_device(None)
    with pytest.raises(ValueError, match=r"Unknown device 'gpu0'. Use 'auto', 'cpu', 'cuda'"):
        resolve_device("gpu0")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_nearest_neighbors_on_cuda_equal_brute_force(rng):
    X = np.concatenate([near_duplicates_of_large_norm(rng), rng.normal(size=(200, 16)) * 1e3])
    X = np.concatenate([X, X[:5]])  # exact duplicates too
    nn = nearest_neighbors(X, 5, device="cuda")
    expected_i = assert_exact_neighbors(nn, X, 5)
    np.testing.assert_array_equal(nn.indices, expected_i)
    cpu = nearest_neighbors(X, 5, device="cpu")
    np.testing.assert_array_equal(nn.indices, cpu.indices)


def test_find_duplicates_at_high_dimension_reads_every_word():
    """Rows that agree on the sampled words of the first hash but differ elsewhere stay
    apart; true copies (200 of one row, more than one comparison chunk) are grouped."""
    import fiftyone_intrinsic.core.neighbors as engine

    X = np.zeros((205, 3000), dtype=np.float32)
    sampled = set(np.linspace(0, 2999, engine._SAMPLED_WORDS).astype(int).tolist())
    hidden = next(column for column in range(3000) if column not in sampled)
    X[1, hidden] = 1.0  # differs from row 0 only where the first hash does not look
    X[2] = X[1]
    X[5:] = np.random.default_rng(0).normal(size=3000)  # rows 5..204: 200 copies
    X[3, hidden] = -0.0  # equal to row 0 (−0.0 is 0.0)
    groups = find_duplicates(X)
    assert groups.inverse[0] != groups.inverse[1] == groups.inverse[2]
    assert groups.inverse[0] == groups.inverse[3] == groups.inverse[4]
    assert (groups.inverse[5:] == groups.inverse[5]).all()
    assert groups.n_distinct == 3


# --------------------------------------------------------------------------- tiles, memmaps, budgets


@pytest.mark.parametrize("n_features", [300, 5000])  # 5000 > 4096: products summed over D-chunks
@pytest.mark.parametrize("budget", [None, 64 * 2**10])  # a tiny budget: tiles prepared as used
def test_split_products_and_streamed_tiles_stay_exact(n_features, budget):
    """Near-duplicates of large norm at high D, with the prepared rows resident or streamed:
    the neighbours equal the brute force's."""
    rng = np.random.default_rng(31)
    bases = rng.uniform(1e3, 1e4, size=(30, n_features))
    X = np.concatenate([bases, bases + rng.normal(size=bases.shape) * 1e-5, rng.normal(size=(20, n_features)) * 1e3])
    nn = nearest_neighbors(X, 3, device="cpu", memory_budget=budget)
    expected_i = assert_exact_neighbors(nn, X, 3)
    np.testing.assert_array_equal(nn.indices, expected_i)


def test_a_memmap_and_a_subset_of_its_rows_are_searched_in_place(tmp_path, rng):
    X = rng.normal(size=(300, 20)).astype(np.float32)
    memmap = np.lib.format.open_memmap(tmp_path / "X.npy", mode="w+", dtype=np.float32, shape=X.shape)
    memmap[:] = X
    memmap.flush()
    on_disk = np.load(tmp_path / "X.npy", mmap_mode="r")
    rows = np.sort(rng.choice(300, size=120, replace=False))[::-1].copy()  # a subset, reordered
    found = nearest_neighbors(on_disk, 4, rows=rows, device="cpu", memory_budget=32 * 2**10)
    expected = nearest_neighbors(X[rows], 4, device="cpu")
    np.testing.assert_array_equal(found.indices, expected.indices)
    np.testing.assert_array_equal(found.distances, expected.distances)
    assert isinstance(on_disk, np.memmap) and on_disk.flags.writeable is False


@pytest.mark.parametrize("transposed", [False, True])
@pytest.mark.parametrize("shape", [(5, 7), (40, 31), (33, 32), (64, 65), (97, 100), (300, 1000), (1, 50), (50, 1)])
def test_host_selection_of_entries_equals_the_device_one(shape, transposed):
    """The numpy selection of a block's entries within their rows' limits (which reads the
    last, short group of columns as a window overlapping the group before it) returns the
    entries of torch's selection, in row order, with every column of the short group found."""
    from fiftyone_intrinsic.core import engine

    rng = np.random.default_rng(sum(shape) + transposed)
    block = torch.from_numpy(rng.random(shape, dtype=np.float32))
    block[:, ::3] = float("inf")  # masked entries never qualify
    minima = engine._group_minima(block, transposed)
    limits = engine._mth_smallest(minima, min(3, minima.shape[1]))
    limits[::5] = float("inf")  # rows with free places take every finite entry
    host = engine._entries_at_most_host(block.numpy(), transposed, minima.numpy(), limits.numpy())
    view = (block.T if transposed else block).numpy()
    expected = np.nonzero(view <= np.minimum(limits.numpy(), np.finfo(np.float32).max)[:, None])
    assert np.all(np.diff(host[0]) >= 0)
    order = np.lexsort((host[1], host[0]))
    np.testing.assert_array_equal(host[0][order], expected[0])
    np.testing.assert_array_equal(host[1][order], expected[1])
    np.testing.assert_array_equal(host[2][order], view[expected])


@pytest.mark.parametrize("n_features", [784, 50_176])
def test_a_pair_measures_the_same_bits_alone_and_among_others(n_features):
    """The exact squared distance of a pair does not depend on which other pairs share the
    call (a rank of a distributed run measures other groups of pairs than a single process),
    nor on the pair's orientation. At large D numpy's einsum sums a single row another way
    than several; the measurement must not take that path."""
    from fiftyone_intrinsic.core.exact import ExactDistances
    from fiftyone_intrinsic.core.source import FeatureSource

    rng = np.random.default_rng(5)
    X = rng.random((12, n_features), dtype=np.float32)
    exact = ExactDistances(FeatureSource(X), 1.0, torch.device("cpu"))
    rows, columns = np.arange(0, 11), np.arange(1, 12)
    together = exact(rows, columns)
    alone = np.array([exact([i], [j])[0] for i, j in zip(rows, columns)])
    reversed_ = exact(columns[::-1], rows[::-1])[::-1]
    np.testing.assert_array_equal(alone, together)
    np.testing.assert_array_equal(reversed_, together)
    reference = ((X[rows].astype(np.float64) - X[columns]) ** 2).sum(axis=1)
    np.testing.assert_allclose(together, reference, rtol=1e-13)


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_byte_images_are_measured_in_exact_float32_pieces(dtype):
    """Integer features of small span (byte pixels) are measured in float32 partial sums
    that stay exact: every squared distance equals the exact integer, as the float64
    measurement gives it, bit for bit. Other features take the float64 path."""
    from fiftyone_intrinsic.core.exact import ExactDistances, integer_piece
    from fiftyone_intrinsic.core.source import FeatureSource

    rng = np.random.default_rng(8)
    X = rng.integers(0, 256, size=(300, 784)).astype(dtype)
    X[0], X[1] = 0, 255  # the largest difference in every feature
    source = FeatureSource(X)
    assert integer_piece(source) == 196  # 4 pieces of 196 ≤ 2^24 // 255² = 258 squares
    exact = ExactDistances(source, 1.0, torch.device("cpu"))
    rows, columns = np.triu_indices(300, 1)
    measured = exact(rows, columns)
    assert exact._piece == 196  # the call was large enough to take the integer path
    expected = np.array([np.sum((X[i].astype(np.int64) - X[j]) ** 2) for i, j in zip(rows, columns)], dtype=np.float64)
    np.testing.assert_array_equal(measured, expected)
    assert measured[0] == 784 * 255.0**2  # rows 0 and 1
    assert integer_piece(FeatureSource(X.astype(np.float32) + 1000)) == 196  # a common shift keeps the span
    assert integer_piece(FeatureSource(X.astype(np.float32) * 0.5)) == 0  # halves: not integers
    assert integer_piece(FeatureSource(X.astype(np.float32) * 3)) == 0  # span 765: 32 · 765² > 2^24
    assert integer_piece(FeatureSource(X.astype(np.float64))) == 0  # float64 rows: the float64 path


def test_host_merge_of_running_lists_keeps_the_m_smallest_in_order():
    """The numpy merge of new entries into the rows' running lists keeps, per row, the m
    smallest of the old and new values, ascending, with their columns."""
    from fiftyone_intrinsic.core import engine

    rng = np.random.default_rng(12)
    n_rows, m = 40, 5
    kept_values = np.sort(rng.random((n_rows, m), dtype=np.float32), axis=1)
    kept_values[::7] = np.inf  # rows with free places
    kept_columns = np.where(np.isinf(kept_values), -1, rng.integers(0, 1000, (n_rows, m)))
    rows = np.sort(rng.integers(0, n_rows, 300))
    values = rng.random(300, dtype=np.float32)
    columns = 1000 + np.arange(300)
    expected = []
    for row in range(n_rows):
        mine = rows == row
        all_values = np.concatenate([kept_values[row], values[mine]])
        all_columns = np.concatenate([kept_columns[row], columns[mine]])
        order = np.argsort(all_values, kind="stable")[:m]
        expected.append((all_values[order], all_columns[order]))
    engine._merge_host(kept_values, kept_columns, rows, values, columns)
    for row, (want_values, want_columns) in enumerate(expected):
        np.testing.assert_array_equal(kept_values[row], want_values)
        np.testing.assert_array_equal(kept_columns[row][np.isfinite(want_values)], want_columns[np.isfinite(want_values)])


# --------------------------------------------------------------------------- two threads


@pytest.mark.parametrize("n_features", [16, 5000])  # 5000: split products, centred by halves
def test_two_threads_give_the_bits_of_one(monkeypatch, n_features):
    """The CPU work between matrix products runs on two threads (both sides of a block,
    the halves of a tile's block with itself, the halves of the exact pairs, of the
    centring): neighbours, distances, sharpest pairs and class minima have exactly the
    bits of one thread, and the helper thread really ran part of the work."""
    from fiftyone_intrinsic.core import engine, host_threads
    from fiftyone_intrinsic.core.sharpness import label_sharpness

    rng = np.random.default_rng(41)
    X = np.concatenate([
        near_duplicates_of_large_norm(rng, n_bases=40, n_features=n_features),
        rng.normal(size=(100, n_features)) * 1e3,
    ])
    labels = rng.integers(0, 6, size=len(X))

    def run(helpers: int):
        monkeypatch.setattr(host_threads, "helper_threads", lambda device: helpers)
        monkeypatch.setattr(engine, "helper_threads", lambda device: helpers)
        threads = set()

        def observe(block, rows, columns):
            threads.add(threading.current_thread().name)

        nn = nearest_neighbors(X, 5, device="cpu", observe=observe, tile_rows=64)
        kf = label_sharpness(X, labels, top=20, device="cpu", memory_budget=2**20)
        return nn, kf, threads

    nn_one, kf_one, threads_one = run(0)
    nn_two, kf_two, threads_two = run(1)
    assert threads_one == {threading.main_thread().name}
    assert any(name.startswith("fiftyone-intrinsic") for name in threads_two)
    np.testing.assert_array_equal(nn_two.distances, nn_one.distances)
    np.testing.assert_array_equal(nn_two.indices, nn_one.indices)
    np.testing.assert_array_equal(kf_two.class_min_distance, kf_one.class_min_distance)
    np.testing.assert_array_equal(kf_two.nearest_distance, kf_one.nearest_distance)
    assert [(p.i, p.j, p.distance) for p in kf_two.pairs] == [(p.i, p.j, p.distance) for p in kf_one.pairs]
    assert_exact_neighbors(nn_two, X, 5)


def test_one_torch_thread_restores_the_count_when_callers_overlap():
    """Two threads inside one_torch_thread at once (as in a server running two audits),
    the first leaving first: afterwards torch's thread count, which is the process's, is
    the original again, seen from any thread. Each caller saving and restoring its own
    left it at one for good."""
    from fiftyone_intrinsic.core.host_threads import one_torch_thread

    original = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()

        def first():
            with one_torch_thread():
                first_in.set()
                second_in.wait(10)
            first_out.set()

        def second():
            first_in.wait(10)
            with one_torch_thread():
                second_in.set()
                first_out.wait(10)

        threads = [threading.Thread(target=first), threading.Thread(target=second)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(20)
        fresh = []
        probe = threading.Thread(target=lambda: fresh.append(torch.get_num_threads()))
        probe.start()
        probe.join()
        assert (torch.get_num_threads(), fresh) == (2, [2])
    finally:
        torch.set_num_threads(original)
