"""Known-answer tests of the exact label sharpness K_F (fiftyone_intrinsic.core.sharpness).

The oracle is a brute-force float64 computation over all N(N-1)/2 pairs from coordinate
differences (docs/science.md §2, §4). Inputs include near-duplicates of large norm, which the
float32 matrix product ranks wrongly, and exact duplicates with the same and with
conflicting labels.
"""

import functools
import gzip
import warnings
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from fiftyone_intrinsic.core.sharpness import label_sharpness

RTOL = 1e-9


# --------------------------------------------------------------------------- brute force


def brute_distances(X: np.ndarray) -> np.ndarray:
    """``(N, N)`` float64 Euclidean distances from coordinate differences."""
    X = np.asarray(X, dtype=np.float64)
    return np.stack([np.sqrt(((X - row) ** 2).sum(axis=1)) for row in X])


@dataclass
class Expected:
    distances: np.ndarray  # (N, N)
    admissible: np.ndarray  # (N, N) bool: different labels, not identical rows
    pairs: list  # every admissible (i, j, distance), i < j, by distance then i, j
    conflicts: list  # (i, j), i < j, identical rows with different labels
    nearest_distance: np.ndarray
    nearest_index: np.ndarray  # smallest index among ties
    classes: list
    class_min_distance: np.ndarray


def brute_sharpness(X, labels) -> Expected:
    X = np.asarray(X, dtype=np.float64)
    labels = np.asarray(labels)
    classes, codes = np.unique(labels, return_inverse=True)
    distances = brute_distances(X)
    _, row_id = np.unique(X, axis=0, return_inverse=True)
    identical = row_id.reshape(-1)[:, None] == row_id.reshape(-1)[None, :]
    differ = codes[:, None] != codes[None, :]
    admissible = differ & ~identical
    i, j = np.nonzero(np.triu(admissible, 1))
    order = np.lexsort((j, i, distances[i, j]))
    pairs = [(a, b, distances[a, b]) for a, b in zip(i[order].tolist(), j[order].tolist())]
    conflicts = [tuple(p) for p in np.argwhere(np.triu(differ & identical, 1)).tolist()]
    other_label = np.where(differ, distances, np.inf)  # identical twins count, at distance 0
    class_min = np.full((len(classes), len(classes)), np.inf)
    for a in range(len(classes)):
        for b in range(len(classes)):
            block = np.where(admissible, distances, np.inf)[codes == a][:, codes == b]
            if block.size:
                class_min[a, b] = block.min()
    return Expected(
        distances=distances,
        admissible=admissible,
        pairs=pairs,
        conflicts=conflicts,
        nearest_distance=other_label.min(axis=1),
        nearest_index=other_label.argmin(axis=1),
        classes=classes.tolist(),
        class_min_distance=class_min,
    )


def has_tie(sorted_values, position) -> bool:
    """Whether the value at ``position`` is within RTOL of a neighbour in the sorted list."""
    around = sorted_values[max(0, position - 1) : position + 2]
    return len(around) > 1 and bool(np.any(np.diff(around) <= RTOL * np.abs(around[1:])))


def assert_matches_brute_force(result, X, labels, top, expected=None):
    """Every field of ``result`` equals the brute force, up to exact ties."""
    expected = brute_sharpness(X, labels) if expected is None else expected
    labels = np.asarray(labels)
    assert result.classes == expected.classes
    assert result.n_samples == len(X)
    assert result.conflicting_duplicates == expected.conflicts

    # K_F and the closest pair
    assert result.min_distance == pytest.approx(expected.pairs[0][2], rel=RTOL)
    assert result.k_f == pytest.approx(1.0 / expected.pairs[0][2], rel=RTOL)

    # the top pairs: the m smallest admissible distances, each pair once with i < j
    m = min(top, len(expected.pairs))
    assert len(result.pairs) == m
    expected_d = np.array([d for _, _, d in expected.pairs[: m + 1]])
    np.testing.assert_allclose([p.distance for p in result.pairs], expected_d[:m], rtol=RTOL, atol=0)
    got = [(p.i, p.j) for p in result.pairs]
    assert len(set(got)) == m
    for p in result.pairs:
        assert p.i < p.j and expected.admissible[p.i, p.j]
        assert p.distance == pytest.approx(expected.distances[p.i, p.j], rel=RTOL)
        assert (p.label_i, p.label_j) == (labels[p.i], labels[p.j])
        assert p.sharpness == 1.0 / p.distance
    for rank, (pair, want) in enumerate(zip(got, expected.pairs)):
        if not has_tie(expected_d, rank):
            assert pair == want[:2], f"pair of rank {rank}"

    # each sample's nearest sample with another label (an identical one at distance 0)
    np.testing.assert_allclose(result.nearest_distance, expected.nearest_distance, rtol=RTOL, atol=0)
    rows = np.arange(len(X))
    assert (labels[result.nearest_index] != labels).all()
    np.testing.assert_allclose(
        expected.distances[rows, result.nearest_index], result.nearest_distance, rtol=RTOL, atol=0
    )
    other_label = np.sort(np.where(labels[:, None] != labels[None, :], expected.distances, np.inf), axis=1)
    unique_nearest = other_label[:, 1] > other_label[:, 0] * (1 + RTOL)
    np.testing.assert_array_equal(
        result.nearest_index[unique_nearest], expected.nearest_index[unique_nearest]
    )

    np.testing.assert_allclose(result.class_min_distance, expected.class_min_distance, rtol=RTOL, atol=0)
    return expected


def float32_matmul_distances(X: np.ndarray) -> np.ndarray:
    """The fast, inexact distances a plain implementation computes: float32 matmul identity."""
    X32 = np.asarray(X, dtype=np.float32)
    squared_norms = (X32 * X32).sum(axis=1)
    squared = squared_norms[:, None] + squared_norms[None, :] - 2.0 * (X32 @ X32.T)
    return np.sqrt(np.maximum(squared, 0.0))


def near_duplicates_of_large_norm(rng, n_bases=40, n_features=16, n_copies=3):
    """Base points with coordinates of 1e3..1e4 and copies perturbed by 1e-4..1e-6."""
    bases = rng.uniform(1e3, 1e4, size=(n_bases, n_features)) * rng.choice([-1, 1], size=(n_bases, n_features))
    rows = [bases]
    for _ in range(n_copies):
        scale = 10.0 ** rng.uniform(-6, -4, size=(n_bases, 1))
        direction = rng.normal(size=(n_bases, n_features))
        direction /= np.linalg.norm(direction, axis=1, keepdims=True)
        rows.append(bases + scale * direction)
    X = np.concatenate(rows)
    return X[rng.permutation(len(X))]


def sharpness(X, labels, top=10):
    return label_sharpness(X, labels, top=top, device="cpu")


# --------------------------------------------------------------------------- real data


@functools.lru_cache(maxsize=None)
def mnist_case(folder, n):
    """The first ``n`` MNIST test images (IDX, gzip: 16- and 8-byte headers), flattened,
    pixels in [0, 1], their labels and the brute force (cached: several tests share it)."""
    with gzip.open(f"{folder}/t10k-images-idx3-ubyte.gz") as f:
        images = np.frombuffer(f.read(), dtype=np.uint8, offset=16).reshape(-1, 784)
    with gzip.open(f"{folder}/t10k-labels-idx1-ubyte.gz") as f:
        labels = np.frombuffer(f.read(), dtype=np.uint8, offset=8)
    X, labels = images[:n].astype(np.float64) / 255.0, labels[:n].astype(np.int64)
    return X, labels, brute_sharpness(X, labels)


def load_breastmnist(shared_data):
    """All 780 BreastMNIST images (train + val + test), flattened, pixels in [0, 1]."""
    with np.load(shared_data("medical/breastmnist_28.npz")) as data:
        splits = ("train", "val", "test")
        images = np.concatenate([data[f"{s}_images"] for s in splits])
        labels = np.concatenate([data[f"{s}_labels"].reshape(-1) for s in splits])
    return images.reshape(len(images), -1).astype(np.float64) / 255.0, labels.astype(np.int64)


# --------------------------------------------------------------------------- hand-derived


def test_hand_computed_1d_case():
    # different-label pairs: (0,1) 2, (0,2) 5, (1,3) 3.5, (2,3) 0.5
    X = np.array([[0.0], [2.0], [5.0], [5.5]])
    result = sharpness(X, [0, 1, 1, 0])
    assert result.k_f == 2.0 and result.min_distance == 0.5
    pairs = [(p.i, p.j, p.distance) for p in result.pairs]
    assert pairs == [(2, 3, 0.5), (0, 1, 2.0), (1, 3, 3.5), (0, 2, 5.0)]
    assert [(p.label_i, p.label_j) for p in result.pairs] == [(1, 0), (0, 1), (1, 0), (0, 1)]
    assert result.nearest_distance.tolist() == [2.0, 2.0, 0.5, 0.5]
    assert result.nearest_index.tolist() == [1, 0, 3, 2]
    assert result.classes == [0, 1]
    assert result.class_min_distance.tolist() == [[np.inf, 0.5], [0.5, np.inf]]
    assert result.conflicting_duplicates == [] and result.n_duplicates == 0


def test_hand_computed_conflicting_duplicate():
    X = np.array([[0.0], [1.0], [3.0], [3.0]])
    result = sharpness(X, ["a", "a", "b", "a"], top=2)
    assert result.conflicting_duplicates == [(2, 3)]
    assert result.k_f == 0.5  # over the non-identical pairs: (1, 2) at distance 2
    assert [(p.i, p.j, p.distance) for p in result.pairs] == [(1, 2, 2.0), (0, 2, 3.0)]
    assert result.nearest_distance.tolist() == [3.0, 2.0, 0.0, 0.0]
    assert result.nearest_index.tolist() == [2, 2, 3, 2]
    assert result.n_duplicates == 1
    assert result.class_min_distance.tolist() == [[np.inf, 2.0], [2.0, np.inf]]


def test_equally_distant_pairs_are_ordered_by_index():
    # (0, 3) and (1, 2) are both 1 apart; the pairs at 4 and 6 follow
    result = sharpness(np.array([[0.0], [5.0], [6.0], [1.0]]), [0, 0, 1, 1])
    assert [(p.i, p.j, p.distance) for p in result.pairs] == [(0, 3, 1.0), (1, 2, 1.0), (1, 3, 4.0), (0, 2, 6.0)]


def test_only_conflicting_duplicates_give_nan_k_f():
    X = np.array([[1.0, 2.0], [1.0, 2.0], [1.0, 2.0]])
    result = sharpness(X, [0, 1, 1])
    assert np.isnan(result.k_f) and result.min_distance == np.inf and result.pairs == []
    assert result.conflicting_duplicates == [(0, 1), (0, 2)]
    assert result.nearest_distance.tolist() == [0.0, 0.0, 0.0]
    assert result.nearest_index.tolist() == [1, 0, 0]
    assert np.isinf(result.class_min_distance).all()
    assert result.n_duplicates == 2


def test_binary_definition_equals_one_over_the_closest_pair():
    """max |y_j - y_k| / ||x_j - x_k|| over all pairs, straight from the paper's formula."""
    rng = np.random.default_rng(4)
    X, y = rng.normal(size=(60, 3)), rng.integers(0, 2, size=60)
    distances = brute_distances(X)
    np.fill_diagonal(distances, np.inf)
    k_f = np.max(np.abs(y[:, None] - y[None, :]) / distances)
    assert sharpness(X, y).k_f == pytest.approx(k_f, rel=RTOL)


# --------------------------------------------------------------------------- brute-force parity


@pytest.mark.parametrize(
    "n_rows, n_features, n_classes, top",
    [(300, 2, 2, 10), (400, 10, 2, 50), (500, 30, 5, 20), (200, 784, 3, 5), (120, 5, 10, 1000)],
)
def test_random_data_matches_brute_force(n_rows, n_features, n_classes, top):
    rng = np.random.default_rng(n_rows)
    X = rng.normal(size=(n_rows, n_features)) * 3.0 + 100.0
    labels = rng.integers(0, n_classes, size=n_rows)
    assert_matches_brute_force(sharpness(X, labels, top=top), X, labels, top)


@pytest.mark.filterwarnings("ignore:.*K_F expects class labels")  # many small classes on purpose
def test_hundreds_of_small_classes_match_brute_force():
    """Small classes share blocks (their own pairs computed, then masked) and the
    class-pair minima of 150 classes are refined in one pass; singletons, a same-label
    duplicate and a conflicting duplicate included."""
    rng = np.random.default_rng(11)
    X = near_duplicates_of_large_norm(rng, n_bases=60, n_features=8)
    labels = rng.integers(0, 150, size=len(X))
    X[5], labels[5] = X[6], labels[6]
    X[7], labels[7] = X[8], (labels[8] + 1) % 150
    result = sharpness(X, labels)
    assert len(result.classes) > 100 and (np.bincount(labels) == 1).any()
    assert_matches_brute_force(result, X, labels, top=10)


@pytest.mark.parametrize(
    "scale, dtype", [(1e20, np.float32), (1e-20, np.float32), (1e-300, np.float64), (1e250, np.float64)]
)
def test_extreme_magnitudes_give_the_scaled_exact_answer(scale, dtype):
    """Features of 1e20 (float32 squares would overflow) or 1e-300 (float64 squares
    underflow): the same pairs, and distances exact for the values given."""
    rng = np.random.default_rng(12)
    base = rng.normal(size=(100, 8))
    X = np.concatenate([base, base[:20] + 1e-6 * rng.normal(size=(20, 8))])  # near-duplicates
    labels = rng.integers(0, 3, size=len(X))
    given = (X * scale).astype(dtype)
    # the reference: brute force on the same values times an exact power of two
    power = 2.0 ** -np.frexp(np.abs(given.astype(np.float64)).max())[1]
    expected = brute_sharpness(given.astype(np.float64) * power, labels)
    result = sharpness(given, labels)
    assert np.isfinite(result.k_f) and np.isfinite(result.nearest_distance).all()
    assert result.min_distance * power == pytest.approx(expected.pairs[0][2], rel=RTOL)
    assert result.conflicting_duplicates == expected.conflicts
    assert [(p.i, p.j) for p in result.pairs[:5]] == [pair[:2] for pair in expected.pairs[:5]]
    np.testing.assert_allclose(result.nearest_distance * power, expected.nearest_distance, rtol=RTOL, atol=0)
    np.testing.assert_allclose(result.class_min_distance * power, expected.class_min_distance, rtol=RTOL, atol=0)


def test_magnitudes_beyond_float64_range_are_refused():
    X = np.array([[0.0, 1e305], [1.0, 0.0], [2.0, 5.0]])
    with pytest.raises(ValueError, match=r"largest magnitude is 1e\+305, outside \[1e-301, 1e301\].*Rescale"):
        sharpness(X, [0, 1, 0])
    # a closest pair so close that 1/distance overflows: refused, never reported as inf
    tiny = np.array([[1e-300], [1e-300 + 1e-310], [3e-300]])
    with pytest.raises(ValueError, match=r"K_F = 1/distance overflows float64.*Rescale"):
        sharpness(tiny, [0, 1, 0])


def test_string_labels_match_integer_labels():
    rng = np.random.default_rng(5)
    X, y = rng.normal(size=(150, 4)), rng.integers(0, 3, size=150)
    names = np.array(["cat", "dog", "emu"])[y]
    by_code, by_name = sharpness(X, y), sharpness(X, names.tolist())
    assert by_name.classes == ["cat", "dog", "emu"]
    assert [(p.i, p.j, p.distance) for p in by_name.pairs] == [(p.i, p.j, p.distance) for p in by_code.pairs]
    assert by_name.pairs[0].label_i == names[by_name.pairs[0].i]
    np.testing.assert_array_equal(by_name.class_min_distance, by_code.class_min_distance)


def test_float32_matmul_ranks_large_norm_near_duplicates_wrongly():
    """Makes the next test meaningful: the fast distances alone get the sharpest pairs wrong."""
    rng = np.random.default_rng(6)
    X = near_duplicates_of_large_norm(rng)
    labels = rng.integers(0, 3, size=len(X))
    expected = brute_sharpness(X, labels)
    approx = np.where(np.triu(expected.admissible, 1), float32_matmul_distances(X), np.inf)
    approx_top = np.argsort(approx, axis=None, kind="stable")[:10]
    approx_pairs = [tuple(np.unravel_index(flat, approx.shape)) for flat in approx_top]
    true_pairs = [(i, j) for i, j, _ in expected.pairs[:10]]
    assert approx_pairs[0] != true_pairs[0]
    assert len(set(approx_pairs) & set(true_pairs)) < 5


def test_large_norm_near_duplicates_match_brute_force():
    rng = np.random.default_rng(6)
    X = near_duplicates_of_large_norm(rng)
    labels = rng.integers(0, 3, size=len(X))
    result = sharpness(X, labels, top=25)
    expected = assert_matches_brute_force(result, X, labels, 25)
    assert result.min_distance < 1e-5  # a pair of copies decides K_F
    assert [(p.i, p.j) for p in result.pairs] == [(i, j) for i, j, _ in expected.pairs[:25]]


def test_large_clusters_of_near_duplicates_match_brute_force():
    """Clusters of 40 near-duplicates: more candidates than top + 8 per row, which takes
    the neighbour engine's per-row fallback under the class mask."""
    rng = np.random.default_rng(9)
    X = near_duplicates_of_large_norm(rng, n_bases=5, n_copies=39)
    labels = rng.integers(0, 2, size=len(X))
    assert_matches_brute_force(sharpness(X, labels, top=5), X, labels, 5)


@pytest.mark.filterwarnings("ignore:.*K_F expects class labels")
def test_many_classes_of_near_duplicates_match_brute_force():
    """Clusters of 6 near-copies of large norm spread over 12 classes: float32 cannot tell
    a class pair's closest pair from its other candidates, so several candidates on each
    side are re-measured against each other."""
    rng = np.random.default_rng(11)
    X = near_duplicates_of_large_norm(rng, n_bases=30, n_copies=5)
    labels = rng.integers(0, 12, size=len(X))
    assert_matches_brute_force(sharpness(X, labels, top=20), X, labels, 20)


def test_same_label_and_conflicting_duplicates():
    rng = np.random.default_rng(7)
    X = rng.normal(size=(200, 6))
    labels = rng.integers(0, 3, size=200)
    # rows 200-204 copy rows 5, 5, 17, 40 and 5: row 5 has three copies, with mixed labels
    copies = np.array([5, 5, 17, 40, 5])
    label_shift = np.array([0, 1, 2, 0, 2])  # 0: same label as the original
    X = np.concatenate([X, X[copies]])
    labels = np.concatenate([labels, (labels[copies] + label_shift) % 3])
    result = sharpness(X, labels, top=40)
    expected = assert_matches_brute_force(result, X, labels, 40)
    assert result.n_duplicates == 5
    assert result.conflicting_duplicates == [(5, 201), (5, 204), (17, 202), (200, 201), (200, 204), (201, 204)]
    for row, twin in [(5, 201), (200, 201), (201, 5), (204, 5), (17, 202), (202, 17)]:
        assert (result.nearest_distance[row], result.nearest_index[row]) == (0.0, twin)
    assert result.nearest_distance[40] > 0
    assert result.nearest_distance[203] == pytest.approx(result.nearest_distance[40], rel=RTOL)
    assert result.min_distance == expected.pairs[0][2] > 0


@pytest.mark.parametrize("top", [1, 10, 200])
def test_mnist_test_images_match_brute_force(shared_data, top):
    shared_data("natural/mnist_t10k/t10k-labels-idx1-ubyte.gz")  # skips when missing
    folder = shared_data("natural/mnist_t10k/t10k-images-idx3-ubyte.gz").parent
    X, labels, expected = mnist_case(str(folder), 1000)
    result = sharpness(X, labels, top=top)
    assert_matches_brute_force(result, X, labels, top, expected)
    assert len(result.classes) == 10


def test_breastmnist_matches_brute_force_and_reports_its_conflicting_duplicate(shared_data):
    X, labels = load_breastmnist(shared_data)
    result = sharpness(X, labels, top=50)
    assert_matches_brute_force(result, X, labels, 50)
    # one exact duplicate pair, labelled malignant (0) and benign/normal (1)
    assert result.conflicting_duplicates == [(115, 700)] and result.n_duplicates == 1
    assert result.nearest_distance[115] == result.nearest_distance[700] == 0.0
    assert 0.0 < result.min_distance < 0.5  # a near-duplicate across classes


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "labels, message",
    [
        ([1, 1, 1, 1], r"at least two classes; every sample is labelled 1"),
        (["a", None, "b", None], r"2 of 4 labels are missing \(first rows: \[1, 3\]\)"),
        ([0, 1, 0], r"one label per row of X: got shape \(3,\) for 4 rows"),
        (np.array([[0], [1], [0], [1]]), r"one label per row of X: got shape \(4, 1\)"),
    ],
)
def test_bad_labels_raise(labels, message):
    with pytest.raises(ValueError, match=message):
        sharpness(np.arange(8.0).reshape(4, 2), labels)


def test_labels_mixing_strings_and_numbers_are_refused():
    """numpy would compare them as strings: 1 and "1" would silently be one class."""
    X = np.arange(8.0).reshape(4, 2)
    with pytest.raises(ValueError, match=r"mix strings with other types \(str: '1'; int: 1\)"):
        sharpness(X, [1, "1", 0, "0"])
    with pytest.raises(ValueError, match="mix strings"):
        sharpness(X, np.array([1, "1", 0, "0"], dtype=object))
    assert sharpness(X, ["1", "1", "0", "0"]).classes == ["0", "1"]  # one type: fine


def test_continuous_labels_warn_that_k_f_expects_classes():
    """As many labels as samples (a regression target given as labels) took minutes."""
    rng = np.random.default_rng(3)
    X = rng.normal(size=(40, 3))
    with pytest.warns(UserWarning, match="40 distinct labels for 40 samples.*K_F expects class labels"):
        sharpness(X, rng.normal(size=40))
    with pytest.warns(UserWarning, match="21 distinct labels for 40 samples"):
        sharpness(X, np.r_[np.arange(20), np.full(20, 20)])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sharpness(X, np.arange(40) % 20)  # 20 classes of two samples: classes, no warning
        sharpness(X[:3], [0, 1, 1])  # two classes never warn


def test_bad_input_raises():
    with pytest.raises(ValueError, match="NaN or inf"):
        sharpness(np.array([[0.0], [np.inf]]), [0, 1])
    with pytest.raises(ValueError, match="top"):
        label_sharpness(np.eye(2), [0, 1], top=0, device="cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU is visible")
def test_cuda_without_a_gpu_raises():
    with pytest.raises(ValueError, match="no CUDA GPU"):
        label_sharpness(np.eye(2), [0, 1], device="cuda")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_matches_brute_force():
    rng = np.random.default_rng(8)
    X = np.concatenate([near_duplicates_of_large_norm(rng), rng.normal(size=(300, 16)) * 1e3])
    labels = rng.integers(0, 3, size=len(X))
    X, labels = np.concatenate([X, X[:3]]), np.concatenate([labels, (labels[:3] + 1) % 3])
    result = label_sharpness(X, labels, top=25, device="cuda")
    assert_matches_brute_force(result, X, labels, 25)
    assert len(result.conflicting_duplicates) == 3


@pytest.mark.parametrize("n_classes", [2, 5])
@pytest.mark.parametrize("budget", [None, 64 * 2**10])  # a tiny budget: small tiles, streamed
def test_high_dimension_and_streamed_tiles_match_brute_force(n_classes, budget):
    """D = 5000 (products summed over D-chunks), near-duplicates of large norm across
    labels, a conflicting duplicate, more top pairs than a block's rows."""
    rng = np.random.default_rng(41)
    X = near_duplicates_of_large_norm(rng, n_bases=25, n_features=5000, n_copies=2)
    X = np.concatenate([X, X[:1]])  # an exact duplicate of row 0 ...
    labels = rng.integers(0, n_classes, size=len(X))
    labels[-1] = (labels[0] + 1) % n_classes  # ... with another label
    result = label_sharpness(X, labels, top=40, device="cpu", memory_budget=budget)
    assert_matches_brute_force(result, X, labels, top=40)


def test_the_device_selection_kernels_agree_with_the_host_ones(monkeypatch):
    """The selections a GPU runs (torch nonzero, topk, segment_reduce) give the same exact
    result as the CPU's numpy ones: run here on the CPU by switching the host kernels off."""
    from fiftyone_intrinsic.core import engine

    rng = np.random.default_rng(43)
    X = near_duplicates_of_large_norm(rng, n_bases=30, n_features=12, n_copies=2)
    labels = rng.integers(0, 4, size=len(X))
    host = label_sharpness(X, labels, top=15, device="cpu", memory_budget=64 * 2**10)
    monkeypatch.setattr(engine, "host_kernels", lambda tensor: False)
    device_kernels = label_sharpness(X, labels, top=15, device="cpu", memory_budget=64 * 2**10)
    assert [(p.i, p.j, p.distance) for p in device_kernels.pairs] == [(p.i, p.j, p.distance) for p in host.pairs]
    np.testing.assert_array_equal(device_kernels.nearest_distance, host.nearest_distance)
    np.testing.assert_array_equal(device_kernels.class_min_distance, host.class_min_distance)
    assert_matches_brute_force(device_kernels, X, labels, top=15)
