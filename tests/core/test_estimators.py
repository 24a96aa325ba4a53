"""The estimator registry: a new intrinsic-dimension estimator is one unit registered in one
place, and the settings, the array function, the bootstrap, the command line and the
operator form all offer it."""

import numpy as np
import pytest
from sklearn.neighbors import NearestNeighbors

import fiftyone_intrinsic as fi
from fiftyone_intrinsic.core.estimators import (
    ESTIMATORS,
    Estimator,
    get_estimator,
    register_estimator,
    unregister_estimator,
)
from fiftyone_intrinsic.core.settings import DimensionSettings, setting_spec


class TwoNNMaximumLikelihood(Estimator):
    """Toy unit: the maximum-likelihood estimate of the Pareto law of μ = T2/T1 over all
    points, d = N / Σ log μ_i (no discarding)."""

    name = "twonn_ml"
    label = "TwoNN (maximum likelihood)"
    description = "N / Σ log(T2/T1)"
    parameters = ()

    def neighbors_needed(self, k):
        return 2

    def point_statistics(self, distances):
        return np.log(distances[:, 1] / distances[:, 0])

    def combine(self, statistics, *, k, discard_fraction):
        return float(statistics.shape[0] / statistics.sum())

    def local(self, statistics, *, k):
        return 1.0 / statistics


@pytest.fixture
def toy():
    unit = register_estimator(TwoNNMaximumLikelihood())
    yield unit
    unregister_estimator(unit.name)


def test_the_built_in_estimators_are_registered_in_form_order():
    assert list(ESTIMATORS) == ["mle", "mle_mg", "twonn"]
    assert setting_spec(DimensionSettings, "estimator").choices == ("mle", "mle_mg", "twonn")


def test_a_registered_estimator_is_accepted_everywhere(toy):
    rng = np.random.default_rng(0)
    X = rng.uniform(size=(3000, 3)) @ rng.normal(size=(3, 30))
    result = fi.intrinsic_dimension(X, estimator="twonn_ml", interval_splits=1, device="cpu")

    # known answer from an independent neighbour search on the same points
    distances, _ = NearestNeighbors(n_neighbors=3).fit(X).kneighbors(X)
    expected = X.shape[0] / np.log(distances[:, 2] / distances[:, 1]).sum()
    assert result.dimension == pytest.approx(expected, rel=1e-9)
    assert 2.5 < result.dimension < 3.5  # a 3-dimensional cube
    assert result.ci_low < result.dimension < result.ci_high
    assert result.k == 2 and result.discard_fraction is None and result.by_k == []
    np.testing.assert_allclose(result.local, 1 / np.log(distances[:, 2] / distances[:, 1]), rtol=1e-6)

    assert DimensionSettings(estimator="twonn_ml").neighbors_needed == 2
    assert setting_spec(DimensionSettings, "estimator").choices[-1] == "twonn_ml"

    from fiftyone_intrinsic.datasets.cli import build_parser

    args = build_parser().parse_args(["audit", "--estimator", "twonn_ml"])
    assert args.estimator == "twonn_ml"


def test_the_operator_form_offers_a_registered_estimator(toy):
    from fiftyone.operators import types

    from operators import forms

    class Ctx:
        params = {"estimator": "twonn_ml"}

    inputs = types.Object()
    prop, unit = forms.registry_choice(Ctx(), inputs, DimensionSettings, "estimator", ESTIMATORS, "Estimator")
    assert unit is toy and not getattr(prop, "invalid", False)
    offered = [choice.value for choice in inputs.properties["estimator"].view.choices]
    assert offered == ["mle", "mle_mg", "twonn", "twonn_ml"]


def test_unknown_and_duplicate_names_are_refused(toy):
    with pytest.raises(ValueError, match="already registered"):
        register_estimator(TwoNNMaximumLikelihood())
    with pytest.raises(ValueError, match=r"Unknown estimator 'pca'; use one of \['mle', 'mle_mg', 'twonn', 'twonn_ml'\]"):
        get_estimator("pca")
    with pytest.raises(ValueError, match="estimator"):
        DimensionSettings(estimator="pca")


def test_unregistered_estimators_are_gone():
    assert "twonn_ml" not in ESTIMATORS
    with pytest.raises(ValueError):
        DimensionSettings(estimator="twonn_ml")
