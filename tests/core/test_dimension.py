"""Known-answer tests of the intrinsic-dimension estimators (fiftyone_intrinsic.core.dimension).

Three kinds, kept apart (style.md): reference parity with scikit-dimension on identical
input, ground truth on manifolds of known dimension, and tiny hand-derived cases. Duplicates
are part of the input because image datasets have them (docs/science.md §3-4).
"""

import functools
import warnings

import numpy as np
import pytest
import skdim
import torch

from fiftyone_intrinsic.core.dimension import estimate_from_distances, intrinsic_dimension
from fiftyone_intrinsic.core.neighbors import find_duplicates

AMBIENT = 784
PARITY_RTOL = 1e-6


# --------------------------------------------------------------------------- data


@functools.lru_cache(maxsize=None)
def manifold(shape: str, d: int, n: int, seed: int = 0) -> np.ndarray:
    """``n`` points of a d-dimensional cube or sphere, linearly embedded in R^784.

    The sphere is the normalised Gaussian vectors of R^(d+1): a d-manifold without boundary.
    Cached and read-only: several tests share the same cloud.
    """
    rng = np.random.default_rng([seed, d, n])
    if shape == "cube":
        latent = rng.uniform(size=(n, d))
    else:
        latent = rng.normal(size=(n, d + 1))
        latent /= np.linalg.norm(latent, axis=1, keepdims=True)
    X = latent @ rng.normal(size=(latent.shape[1], AMBIENT))
    X.setflags(write=False)
    return X


def skdim_reference(X: np.ndarray, estimator: str) -> float:
    """scikit-dimension's estimate under the name our estimator is documented to match."""
    if estimator == "mle":
        return skdim.id.MLE(unbiased=True).fit(X, n_neighbors=20).dimension_
    if estimator == "mle_mg":
        return skdim.id.MLE().fit(X, n_neighbors=20).dimension_
    return skdim.id.TwoNN().fit(X).dimension_


def estimate(X, estimator, **kwargs):
    kwargs.setdefault("interval_splits", 0)
    return intrinsic_dimension(X, estimator=estimator, k=20, device="cpu", **kwargs)


def with_duplicates(X: np.ndarray, rng, n_copies: int):
    """``X`` with ``n_copies`` exact copies of random rows (some copied more than once),
    shuffled.

    Returns the rows and, for each, the index of the row of ``X`` it equals.
    """
    copied = rng.choice(len(X), n_copies, replace=True)
    copied[: n_copies // 4] = copied[n_copies // 4 : 2 * (n_copies // 4)]  # some rows thrice
    origin = np.concatenate([np.arange(len(X)), copied])
    order = rng.permutation(len(origin))
    return X[origin[order]], origin[order]


def load_breastmnist(path) -> np.ndarray:
    """All 780 BreastMNIST images, train + val + test, flattened, pixels in [0, 1]."""
    with np.load(path) as data:
        images = np.concatenate([data[f"{split}_images"] for split in ("train", "val", "test")])
    return images.reshape(len(images), -1).astype(np.float64) / 255.0


# --------------------------------------------------------------------------- parity


ESTIMATORS = ["mle", "mle_mg", "twonn"]
DIMENSIONS = [2, 5, 10, 20]
SHAPES = ["cube", "sphere"]


@pytest.mark.parametrize("estimator", ESTIMATORS)
@pytest.mark.parametrize("d", DIMENSIONS)
@pytest.mark.parametrize("shape", SHAPES)
def test_parity_with_scikit_dimension(shape, d, estimator):
    X = manifold(shape, d, 2000)
    ours = estimate(X, estimator).dimension
    assert ours == pytest.approx(skdim_reference(X, estimator), rel=PARITY_RTOL)


@pytest.mark.slow
@pytest.mark.parametrize("estimator", ESTIMATORS)
@pytest.mark.parametrize("d", DIMENSIONS)
@pytest.mark.parametrize("shape", SHAPES)
def test_parity_with_scikit_dimension_10000_points(shape, d, estimator):
    """Two blocks of the neighbour search at the default block size."""
    X = manifold(shape, d, 10_000)
    ours = estimate(X, estimator).dimension
    assert ours == pytest.approx(skdim_reference(X, estimator), rel=PARITY_RTOL)


# --------------------------------------------------------------------------- ground truth

# Relative tolerances around the true d for 2000 points, k = 20. The sphere has no boundary;
# the cube's boundary makes every estimator low (mle by 15% at d = 5). mle is (k-2)/(k-1) of
# mle_mg by construction, hence its larger bias. Observed worst cases over 6 seeds:
# sphere 8% / 3% / 5%, cube 16% / 11% / 13% (mle / mle_mg / twonn).
GROUND_TRUTH_RTOL = {
    ("sphere", "mle"): 0.10,
    ("sphere", "mle_mg"): 0.05,
    ("sphere", "twonn"): 0.08,
    ("cube", "mle"): 0.20,
    ("cube", "mle_mg"): 0.15,
    ("cube", "twonn"): 0.15,
}


@pytest.mark.parametrize("estimator", ESTIMATORS)
@pytest.mark.parametrize("d", [2, 5])
@pytest.mark.parametrize("shape", SHAPES)
def test_estimate_near_true_dimension_with_interval(shape, d, estimator):
    result = estimate(manifold(shape, d, 2000), estimator, interval_splits=1)
    assert result.dimension == pytest.approx(d, rel=GROUND_TRUTH_RTOL[shape, estimator])
    assert result.ci_low < result.dimension < result.ci_high
    assert result.confidence == 0.95
    assert result.n_samples == 2000 and result.n_duplicates == 0
    assert result.local.shape == (2000,) and np.isfinite(result.local).all()
    assert result.estimator == estimator
    assert result.k == (2 if estimator == "twonn" else 20)
    assert result.discard_fraction == (0.1 if estimator == "twonn" else None)


def test_estimates_increase_with_the_true_dimension():
    estimates = [estimate(manifold("sphere", d, 2000), "mle_mg").dimension for d in DIMENSIONS]
    assert estimates == sorted(estimates)
    assert estimates[-1] > 14  # biased low at d = 20, but far from the d = 10 estimate


@pytest.mark.parametrize("estimator", ["mle", "twonn"])  # mle_mg combines its statistic as mle does
def test_interval_is_seeded_and_nested(estimator):
    X = manifold("sphere", 5, 2000)
    wide = estimate(X, estimator, interval_splits=1, confidence=0.95, seed=3)
    again = estimate(X, estimator, interval_splits=1, confidence=0.95, seed=3)
    narrow = estimate(X, estimator, interval_splits=1, confidence=0.5, seed=3)
    assert (wide.ci_low, wide.ci_high) == (again.ci_low, again.ci_high)
    assert wide.ci_low < narrow.ci_low < narrow.dimension < narrow.ci_high < wide.ci_high
    assert narrow.dimension == wide.dimension
    none = estimate(X, estimator, interval_splits=0)
    assert np.isnan(none.ci_low) and np.isnan(none.ci_high)


# --------------------------------------------------------------------------- hand-derived


def test_mle_is_mle_mg_times_k_minus_2_over_k_minus_1():
    X = manifold("cube", 5, 2000)
    ratio = estimate(X, "mle").dimension / estimate(X, "mle_mg").dimension
    assert ratio == pytest.approx(18 / 19, rel=1e-12)


def test_mle_from_hand_made_distances():
    T = np.array([[1.0, 2.0, 4.0], [1.0, 1.0, 2.0], [3.0, 3.0, 3.0 * np.e]])
    S = np.array([np.log(4) + np.log(2), 2 * np.log(2), 2.0])
    for estimator, numerator in (("mle", 1), ("mle_mg", 2)):
        dimension, local, statistic = estimate_from_distances(T, estimator)
        np.testing.assert_allclose(statistic, S, rtol=1e-15)
        np.testing.assert_allclose(local, numerator / S, rtol=1e-15)
        assert dimension == pytest.approx(numerator / S.mean(), rel=1e-15)


def test_twonn_from_hand_made_distances():
    # log mu = 1, 2, 3, 4; N = 4 with the largest discarded (f = 0.25): F_i = 1/4, 2/4, 3/4
    T = np.array([[1.0, np.e**4], [2.0, 2 * np.e**2], [1.0, np.e], [5.0, 5 * np.e**3]])
    log_mu = np.array([1.0, 2.0, 3.0])
    targets = -np.log(1 - np.array([1, 2, 3]) / 4)
    dimension, local, ratios = estimate_from_distances(T, "twonn", discard_fraction=0.25)
    assert dimension == pytest.approx(log_mu @ targets / (log_mu @ log_mu), rel=1e-14)
    np.testing.assert_allclose(local, 1 / np.array([4.0, 2.0, 1.0, 3.0]), rtol=1e-14)
    np.testing.assert_allclose(ratios, np.exp([4.0, 2.0, 1.0, 3.0]), rtol=1e-14)


def test_twonn_on_a_uniform_line_is_about_one():
    x = np.random.default_rng(0).uniform(size=(4000, 1))
    assert estimate(x, "twonn").dimension == pytest.approx(1.0, rel=0.1)  # observed: 1.05


@pytest.mark.parametrize("estimator", ["mle", "mle_mg"])
def test_id_versus_k_curve_equals_separate_estimates(estimator):
    X = manifold("sphere", 5, 2000)
    result = estimate(X, estimator)
    assert [k for k, _ in result.by_k] == list(range(3, 21))
    assert result.by_k[-1][1] == pytest.approx(result.dimension, rel=1e-12)
    curve = dict(result.by_k)
    for k in (3, 10):
        alone = intrinsic_dimension(X, estimator=estimator, k=k, device="cpu", interval_splits=0)
        assert curve[k] == pytest.approx(alone.dimension, rel=1e-12)
    unbiased = estimator == "mle"
    reference = skdim.id.MLE(unbiased=unbiased).fit(X, n_neighbors=10).dimension_
    assert curve[10] == pytest.approx(reference, rel=PARITY_RTOL)
    assert list(estimate(X, "twonn").by_k) == []


# --------------------------------------------------------------------------- duplicates


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_exact_duplicates_change_nothing_but_the_count(estimator):
    X = manifold("sphere", 5, 2000)
    X_dup, origin = with_duplicates(X, np.random.default_rng(1), n_copies=40)
    clean = estimate(X, estimator, interval_splits=1)
    dup = estimate(X_dup, estimator, interval_splits=1)
    assert dup.dimension == clean.dimension  # identical, not merely close
    assert (dup.ci_low, dup.ci_high) == (clean.ci_low, clean.ci_high)
    assert dup.n_duplicates == 40 and dup.n_samples == 2040
    assert dup.local.shape == (2040,)
    # every row, original or copy, carries its original's local estimate
    np.testing.assert_array_equal(dup.local, clean.local[origin])


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_row_order_does_not_matter(estimator):
    X = manifold("cube", 5, 2000)
    order = np.random.default_rng(4).permutation(len(X))
    result, shuffled = estimate(X, estimator, interval_splits=1), estimate(X[order], estimator, interval_splits=1)
    assert shuffled.dimension == result.dimension
    assert (shuffled.ci_low, shuffled.ci_high) == (result.ci_low, result.ci_high)
    np.testing.assert_array_equal(shuffled.local, result.local[order])


def test_scikit_dimension_mle_is_biased_by_duplicates():
    """Why we deduplicate: 1% exact copies wreck scikit-dimension's MLE, not ours."""
    X = manifold("sphere", 5, 2000)
    X_dup, _ = with_duplicates(X, np.random.default_rng(2), n_copies=20)
    reference_clean = skdim.id.MLE().fit(X, n_neighbors=20).dimension_
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # log of a zero distance
        reference_dup = skdim.id.MLE().fit(X_dup, n_neighbors=20).dimension_
    assert not reference_dup > 0.9 * reference_clean  # observed: 0.0 (also catches nan)
    assert estimate(X_dup, "mle_mg").dimension == pytest.approx(reference_clean, rel=PARITY_RTOL)


def test_all_rows_identical_but_too_few_distinct_raises():
    X = np.repeat(np.eye(5), 5, axis=0)  # 25 rows, 5 distinct
    with pytest.raises(ValueError, match=r"needs at least 21 distinct samples; got 5 of 25 rows"):
        estimate(X, "mle")


# --------------------------------------------------------------------------- near-duplicates


def near_duplicated(X, rng, n_copies, scale):
    copies = rng.choice(len(X), n_copies, replace=False)
    return np.concatenate([X, X[copies] + scale * rng.normal(size=(n_copies, X.shape[1]))])


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_near_duplicates_bias_the_estimate_unless_merged(estimator):
    X = manifold("sphere", 5, 2000)  # nearest-neighbour distances are about 1 or more
    X_near = near_duplicated(X, np.random.default_rng(3), 100, 1e-6)
    clean = estimate(X, estimator).dimension
    assert estimate(X_near, estimator).dimension < 0.8 * clean
    merged = estimate(X_near, estimator, duplicate_tolerance=1e-3)
    assert merged.n_near_duplicates == 100 and merged.n_duplicates == 0
    assert merged.duplicate_tolerance == 1e-3
    assert merged.dimension == pytest.approx(clean, rel=1e-6)


def test_near_duplicate_merging_hand_made():
    """A centre with three leaves 0.4 away, one leaf continuing as a chain of steps 0.4,
    six far points, and an exact copy of the first far point. The median nearest-neighbour
    distance of the 12 distinct rows is 4.6 (six of 0.4; 8.8, 11, ..., 15), so tolerance
    0.1 merges below 0.46: the centre absorbs its leaves and (0.8, 0) absorbs (1.2, 0).
    Single linkage would have merged all six into one."""
    X = np.array([
        [0.0, 0.0], [0.4, 0.0], [-0.4, 0.0], [0.0, 0.4], [0.8, 0.0], [1.2, 0.0],
        [10.0, 0.0], [21.0, 0.0], [33.0, 0.0], [46.0, 0.0], [60.0, 0.0], [75.0, 0.0], [10.0, 0.0],
    ])
    merge = functools.partial(
        intrinsic_dimension, estimator="mle", k=3, device="cpu", interval_splits=0, duplicate_tolerance=0.1,
    )
    # 4 of the 12 distinct rows is 33%: refused unless allowed explicitly
    with pytest.raises(ValueError, match=r"would merge 4 of the 12 distinct samples.*max_merged_fraction to 0\.34"):
        merge(X)
    result = merge(X, max_merged_fraction=0.34)
    assert (result.n_duplicates, result.n_near_duplicates) == (1, 4)
    assert result.duplicate_tolerance == 0.1
    assert result.duplicate_distance == pytest.approx(0.46, rel=1e-12)
    assert result.local[0] == result.local[1] == result.local[2] == result.local[3]
    assert result.local[4] == result.local[5] != result.local[0]
    assert result.local[12] == result.local[6]
    kept = [0, 4, 6, 7, 8, 9, 10, 11]
    alone = intrinsic_dimension(X[kept], estimator="mle", k=3, device="cpu", interval_splits=0)
    assert result.dimension == pytest.approx(alone.dimension, rel=1e-12)
    np.testing.assert_allclose(result.local[kept], alone.local, rtol=1e-12)
    order = np.random.default_rng(0).permutation(len(X))
    assert merge(X[order], max_merged_fraction=0.34).dimension == result.dimension


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_merging_near_copies_recovers_the_estimate_of_the_clean_data(estimator):
    """A 5-sphere and jittered copies of 30% of its points, 1% of a nearest-neighbour
    distance away: TwoNN collapses, MLE sinks; merging them (explicitly allowed: 23% of
    the samples) gives back the clean estimate, whichever of each pair is kept."""
    X = manifold("sphere", 5, 2000)
    rng = np.random.default_rng(4)
    X_near = near_duplicated(X, rng, 600, 0.01 / np.sqrt(AMBIENT))
    clean = estimate(X, estimator).dimension
    assert estimate(X_near, estimator).dimension < 0.8 * clean
    with pytest.raises(ValueError, match="would merge 600 of the 2600 distinct samples"):
        estimate(X_near, estimator, duplicate_tolerance=0.05)
    merged = estimate(X_near, estimator, duplicate_tolerance=0.05, max_merged_fraction=0.25)
    assert merged.n_near_duplicates == 600
    assert merged.dimension == pytest.approx(clean, rel=0.02)


# --------------------------------------------------------------------------- real data


@pytest.fixture
def breastmnist(shared_data):
    return load_breastmnist(shared_data("medical/breastmnist_28.npz"))


def test_breastmnist_exact_duplicates_are_found(breastmnist):
    """BreastMNIST holds one exact duplicate pair (and ~170 near-duplicates, below)."""
    assert breastmnist.shape == (780, 784)
    assert [len(group) for group in find_duplicates(breastmnist).groups()] == [2]
    assert estimate(breastmnist, "mle").n_duplicates == 1


@pytest.mark.parametrize("estimator", ["mle", "mle_mg"])
def test_breastmnist_mle_is_not_collapsed(breastmnist, estimator):
    result = estimate(breastmnist, estimator)
    assert 5.0 < result.dimension < 12.0  # observed: mle 7.61, mle_mg 8.04
    distinct = breastmnist[np.sort(find_duplicates(breastmnist).representatives)]
    assert result.dimension == pytest.approx(skdim_reference(distinct, estimator), rel=PARITY_RTOL)


def test_breastmnist_twonn_collapses_on_near_duplicates_until_merged(breastmnist):
    """Exact deduplication removes one row; TwoNN still collapses to ~1.1, as scikit-dimension
    does on the raw data, because a third of the images have a neighbour within 0.3 of the
    median nearest-neighbour distance (2.59). Merging them takes more than the default 5%:
    tolerance 0.5 merges 175 (22.5%) and brings TwoNN to ~16, MLE from 7.6 to ~13."""
    raw = estimate(breastmnist, "twonn")
    distinct = breastmnist[np.sort(find_duplicates(breastmnist).representatives)]
    assert raw.dimension == pytest.approx(skdim_reference(distinct, "twonn"), rel=PARITY_RTOL)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # skdim drops the duplicate pair
        skdim_raw = skdim_reference(breastmnist, "twonn")
    assert raw.dimension < 2.0 and skdim_raw < 2.0  # observed: 1.11 and 1.11
    with pytest.raises(ValueError, match=r"would merge 175 of the 779 distinct samples \(22\.5%\)"):
        estimate(breastmnist, "twonn", duplicate_tolerance=0.5)
    merged = estimate(breastmnist, "twonn", duplicate_tolerance=0.5, max_merged_fraction=0.25)
    assert merged.n_near_duplicates == 175
    assert merged.duplicate_distance == pytest.approx(0.5 * 2.5879, rel=1e-4)
    assert merged.dimension > 10.0  # observed: 16.2


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("estimator", ESTIMATORS)
@pytest.mark.parametrize("scale", [1e-300, 1e250])
def test_extreme_magnitudes_do_not_change_the_estimate(estimator, scale):
    """A scale-free estimate of features of 1e-300 or 1e250 (float64 squares under- or
    overflow) equals that of the unscaled features."""
    X = manifold("cube", 3, 2000)
    base = estimate(X, estimator).dimension
    assert estimate(X * scale, estimator).dimension == pytest.approx(base, rel=1e-9)


def test_discard_fraction_zero_is_refused():
    """The last TwoNN target -log(1 - N/N) is infinite, so discard_fraction=0 would give
    an infinite estimate; it is refused with the field named."""
    X = manifold("cube", 2, 2000)
    with pytest.raises(ValueError, match="discard_fraction"):
        estimate(X, "twonn", discard_fraction=0.0)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"estimator": "pca"}, r"estimator\n.*'mle', 'mle_mg', 'twonn'"),
        ({"k": 2}, r"k\n.*greater than or equal to 3"),
        ({"interval_splits": -1}, r"interval_splits"),
        ({"confidence": 1.0}, r"confidence"),
        ({"discard_fraction": 1.0}, r"discard_fraction"),
        ({"duplicate_tolerance": -0.1}, r"duplicate_tolerance"),
    ],
)
def test_invalid_settings_raise_value_error_naming_the_field(kwargs, message):
    with pytest.raises(ValueError, match=message):
        intrinsic_dimension(manifold("cube", 2, 2000)[:50], device="cpu", **kwargs)


def test_bad_input_raises():
    with pytest.raises(ValueError, match="NaN or inf"):
        intrinsic_dimension(np.array([[np.nan, 1.0]] * 30), device="cpu")
    with pytest.raises(TypeError, match="numeric"):
        intrinsic_dimension(np.array([["a", "b"]] * 30), device="cpu")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_cuda_equals_cpu(estimator):
    X = manifold("sphere", 10, 10_000)
    cuda = intrinsic_dimension(X, estimator=estimator, device="cuda", interval_splits=1)
    cpu = intrinsic_dimension(X, estimator=estimator, device="cpu", interval_splits=1)
    assert cuda.dimension == pytest.approx(cpu.dimension, rel=1e-12)
    np.testing.assert_allclose(cuda.local, cpu.local, rtol=1e-12)
