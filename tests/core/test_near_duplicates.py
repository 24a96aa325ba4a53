"""Near-duplicate merging (fiftyone_intrinsic.core.near_duplicates): the net it builds, the
guard that refuses runaway merging, and the chains that single linkage would swallow
(docs/science.md §3).

The oracle is brute force on all pairwise float64 distances: the definition of the net
(every merged row within the distance of the row it joined, kept rows pairwise at least
that far apart) and single linkage computed from the full distance matrix.
"""

import re

import numpy as np
import pytest
from scipy.sparse.csgraph import connected_components

from fiftyone_intrinsic.core.near_duplicates import merge_near_duplicates
from fiftyone_intrinsic.core.neighbors import find_duplicates


def pairwise(X: np.ndarray) -> np.ndarray:
    """``(N, N)`` float64 distances from coordinate differences, ``inf`` on the diagonal."""
    X = np.asarray(X, dtype=np.float64)
    distances = np.stack([np.sqrt(((X - row) ** 2).sum(axis=1)) for row in X])
    np.fill_diagonal(distances, np.inf)
    return distances


def sphere(n: int, d: int, ambient: int, seed: int) -> np.ndarray:
    """``n`` points of the unit d-sphere, linearly embedded in R^ambient."""
    rng = np.random.default_rng([seed, n, d])
    latent = rng.normal(size=(n, d + 1))
    latent /= np.linalg.norm(latent, axis=1, keepdims=True)
    return latent @ rng.normal(size=(d + 1, ambient))


def with_near_copies(X: np.ndarray, fraction: float, scale: float, seed: int = 1) -> np.ndarray:
    """``X`` and jittered copies of ``fraction`` of its rows, each about ``scale`` away."""
    rng = np.random.default_rng(seed)
    copied = rng.choice(len(X), int(fraction * len(X)), replace=False)
    jitter = rng.normal(size=(copied.size, X.shape[1])) * scale / np.sqrt(X.shape[1])
    return np.concatenate([X, X[copied] + jitter])


def merge(X, tolerance, max_fraction=0.05, **kwargs):
    """Merge the distinct rows of X in the order of their content, as the estimators do;
    returns the merge and the rows."""
    rows = find_duplicates(X).representatives
    return merge_near_duplicates(X, rows, tolerance, max_fraction, device="cpu", **kwargs), rows


def assert_is_a_net(X: np.ndarray, merged) -> None:
    """The definition: each merged row lies within the distance of the row it joined, and
    the kept rows are pairwise at least that far apart."""
    distances = pairwise(X)
    members = np.arange(merged.position.shape[0])
    joined = merged.kept[merged.position]
    moved = joined != members
    assert (distances[members[moved], joined[moved]] < merged.distance).all()
    assert (distances[np.ix_(merged.kept, merged.kept)] >= merged.distance).all()
    assert (joined[merged.kept] == merged.kept).all()


def single_linkage_merges(X: np.ndarray, distance: float) -> int:
    """Rows that single linkage at ``distance`` merges (rows minus connected components)."""
    n_components, _ = connected_components(pairwise(X) < distance, directed=False)
    return X.shape[0] - n_components


# --------------------------------------------------------------------------- hand-derived


def test_star_and_chain_hand_made():
    """A centre with three leaves 0.4 away, one leaf continuing as a chain of steps 0.4,
    and six far points: the 12 nearest-neighbour distances are six of 0.4 and 8.8, 11,
    12, 13, 14, 15, so the median is 4.6 and tolerance 0.1 merges below 0.46. The centre
    (three near-duplicates) is kept and absorbs its leaves; (0.8, 0), whose neighbour
    (0.4, 0) is taken, is kept and absorbs (1.2, 0): 4 merged. Single linkage: 5."""
    X = np.array([
        [0.0, 0.0], [0.4, 0.0], [-0.4, 0.0], [0.0, 0.4], [0.8, 0.0], [1.2, 0.0],
        [10.0, 0.0], [21.0, 0.0], [33.0, 0.0], [46.0, 0.0], [60.0, 0.0], [75.0, 0.0],
    ])
    merged = merge_near_duplicates(X, np.arange(12), 0.1, max_fraction=0.34, device="cpu")
    assert merged.distance == pytest.approx(0.46, rel=1e-12)
    assert merged.n_merged == 4
    assert merged.kept.tolist() == [0, 4, 6, 7, 8, 9, 10, 11]
    assert merged.kept[merged.position].tolist() == [0, 0, 0, 0, 4, 4, 6, 7, 8, 9, 10, 11]
    assert single_linkage_merges(X, merged.distance) == 5
    with pytest.raises(ValueError, match=r"would merge 4 of the 12 distinct samples \(33\.3%\).*to 0\.34\."):
        merge_near_duplicates(X, np.arange(12), 0.1, device="cpu")
    # with k = 3 the centre's list is full: at least 3 merge, known without widening it
    with pytest.raises(ValueError, match=r"would merge at least 3 of the 12 .*to 0\.25 or more\."):
        merge_near_duplicates(X, np.arange(12), 0.1, k=3, device="cpu")


def test_zero_tolerance_merges_nothing_and_searches_nothing():
    X = np.zeros((3, 2))  # would fail a neighbour search: rows are not distinct
    merged = merge_near_duplicates(X, np.arange(3), 0.0)
    assert merged.n_merged == 0 and merged.distance == 0.0
    assert merged.kept.tolist() == merged.position.tolist() == [0, 1, 2]


# --------------------------------------------------------------------------- the net


@pytest.mark.parametrize("tolerance", [0.05, 0.3, 0.9])
def test_the_net_definition_holds_on_clusters_larger_than_k(tolerance):
    """Clusters of 3 to 60 near-copies: a row with more near-duplicates than its k = 5
    listed neighbours makes the search widen until every pair is seen."""
    rng = np.random.default_rng(7)
    X = sphere(300, 3, 10, seed=0)
    clusters = [X[i] + 1e-3 * rng.normal(size=(size, 10)) for i, size in enumerate([60, 25, 3, 3, 8])]
    X = np.concatenate([X, *clusters])
    merged, rows = merge(X, tolerance, max_fraction=1.0, k=5)
    Y = X[rows]
    assert merged.distance == pytest.approx(tolerance * np.median(pairwise(Y).min(axis=1)), rel=1e-12)
    assert_is_a_net(Y, merged)
    assert merged.n_merged >= 60 + 25 + 3 + 3 + 8  # every copy at least


def test_the_result_does_not_depend_on_the_order_of_the_samples():
    X = with_near_copies(sphere(400, 4, 16, seed=2), 0.3, 0.05)
    merged, rows = merge(X, 0.3, max_fraction=1.0)
    order = np.random.default_rng(3).permutation(len(X))
    shuffled, shuffled_rows = merge(X[order], 0.3, max_fraction=1.0)
    assert shuffled.n_merged == merged.n_merged
    kept = {X[rows[i]].tobytes() for i in merged.kept}
    assert {X[order][shuffled_rows[i]].tobytes() for i in shuffled.kept} == kept


# --------------------------------------------------------------------------- chains


def test_a_chain_single_linkage_would_swallow_is_not_merged_whole():
    """301 points 0.1 median spacings apart in a line, beside 2,000 points of a 5-sphere:
    single linkage at 0.25 median spacings merges the whole chain into one sample. The
    net keeps a point every few steps, and merging more than 5% is refused."""
    X = sphere(2000, 5, 64, seed=4)
    spacing = 0.1 * np.median(pairwise(X).min(axis=1))
    direction = np.random.default_rng(5).normal(size=64)
    direction /= np.linalg.norm(direction)
    chain = X[0] + 3.0 * direction + spacing * np.arange(301)[:, None] * direction
    X = np.concatenate([X, chain])
    with pytest.raises(ValueError, match="more than max_merged_fraction=0.05 allows"):
        merge(X, 0.25)
    merged, rows = merge(X, 0.25, max_fraction=0.2)
    chain_positions = np.flatnonzero(rows >= 2000)
    assert single_linkage_merges(X[rows[chain_positions]], merged.distance) == 300
    kept_in_chain = np.intersect1d(merged.kept, chain_positions).size
    # each kept point absorbs at most the two steps on either side within the distance
    steps = int(merged.distance // spacing)
    assert kept_in_chain >= 301 / (2 * steps + 1)
    assert merged.n_merged < 301 - kept_in_chain + 0.01 * 2000
    assert_is_a_net(X[rows], merged)


# --------------------------------------------------------------------------- the guard


@pytest.mark.parametrize("tolerance", [0.01, 0.05, 0.1, 0.3, 0.6, 0.99])
def test_no_tolerance_merges_more_than_the_guard_allows(tolerance):
    """2,000 points of a 5-sphere and jittered copies of 30% of them, 0.001 median
    spacings away: whatever the tolerance, either at most 5% of the samples merge or the
    run is refused with the setting to change."""
    X = with_near_copies(sphere(2000, 5, 64, seed=6), 0.3, 0.02)
    try:
        merged, rows = merge(X, tolerance)
    except ValueError as error:
        assert "raise max_merged_fraction to" in str(error)
    else:
        assert merged.n_merged <= 0.05 * rows.size


def test_the_share_setting_admits_more_explicitly_and_the_suggestion_works():
    X = with_near_copies(sphere(2000, 5, 64, seed=6), 0.3, 0.02)
    with pytest.raises(ValueError) as refused:
        merge(X, 0.05)
    message = str(refused.value)
    assert "would merge 600 of the 2600 distinct samples (23.1%)" in message
    suggested = float(re.search(r"raise max_merged_fraction to ([0-9.]+)\.", message).group(1))
    assert suggested == 0.24
    merged, rows = merge(X, 0.05, max_fraction=suggested)
    assert merged.n_merged == 600  # exactly the copies: each joins its original
    assert_is_a_net(X[rows], merged)


def test_a_crowded_row_is_refused_without_listing_all_its_neighbours():
    """200 near-copies of one point among 1,000: more than 5% around one row. The search
    stops widening once its list holds more than the guard allows."""
    X = sphere(1000, 3, 8, seed=8)
    X = np.concatenate([X, X[0] + 1e-4 * np.random.default_rng(9).normal(size=(200, 8))])
    with pytest.raises(ValueError, match=r"would merge at least \d+ of the 1200 distinct samples.*or more\."):
        merge(X, 0.1)


@pytest.mark.parametrize("tolerance", [1.0, 3.5, -0.1])
def test_a_tolerance_outside_0_1_says_it_is_relative(tolerance):
    """Earlier builds took an absolute distance (e.g. 1.0); now it is a fraction of the
    median nearest-neighbour distance, and the refusal says so and how to convert."""
    from fiftyone_intrinsic.core.settings import DimensionSettings

    with pytest.raises(ValueError, match=r"is not a fraction in \[0, 1\).*relative to the median nearest-neighbour "
                       r"distance.*divide such a distance by that median"):
        DimensionSettings(duplicate_tolerance=tolerance)
