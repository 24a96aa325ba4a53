"""The power-law fit on synthetic curves of known exponent (ground truth), hand-derived
cases, the comparison with the law and the labeling planner (fiftyone_intrinsic.core.scaling)."""

import json
import math

import numpy as np
import pytest

from fiftyone_intrinsic.core.scaling import compare_with_law, fit_power_law, plan_budget, predict_exponent


PAPER_SIZES = np.array([500, 750, 1000, 1250, 1500, 1750])


def synthetic(exponent, n_seeds, noise, rng, sizes=PAPER_SIZES, scale=2.0):
    """Losses ``scale · N^exponent``, log-normal noise of ``noise`` per (size, seed)."""
    log_losses = math.log(scale) + exponent * np.log(sizes)[:, None]
    return np.exp(log_losses + rng.normal(0.0, noise, size=(len(sizes), n_seeds)))


# --- the fit: ground truth ----------------------------------------------------------


@pytest.mark.parametrize("n_seeds", [1, 2, 3, 5])
def test_fit_recovers_a_known_exponent_within_its_interval(n_seeds):
    rng = np.random.default_rng(n_seeds)
    exponent = -1.0 / 8.0  # a d_data of 8
    fit = fit_power_law(PAPER_SIZES, synthetic(exponent, n_seeds, 0.02, rng))
    assert fit.exponent_low <= exponent <= fit.exponent_high
    assert fit.exponent_low < fit.exponent < fit.exponent_high
    assert abs(fit.exponent - exponent) < 0.1
    assert fit.offset_low <= math.log(2.0) <= fit.offset_high
    assert fit.interval_method == ("parametric_t" if n_seeds == 1 else "bootstrap_seeds")


def noisy_curves(model, n_seeds, rng, exponent=-0.2, sizes=PAPER_SIZES):
    """Log-losses under one of three noise models, around ``exponent``:

    - ``"independent"``: noise 0.05 per (size, seed);
    - ``"seed_slope"``: each seed's curve has its own slope (sd 0.03), as nested subsets of
      one seed make its losses correlated across sizes, plus noise 0.01;
    - ``"seed_offset"``: each seed's curve is shifted (sd 0.1), plus noise 0.01.
    """
    log_n = np.log(sizes)[:, None]
    centred = log_n - log_n.mean()
    base = math.log(2.0) + exponent * log_n
    if model == "independent":
        return np.exp(base + rng.normal(0.0, 0.05, size=(len(sizes), n_seeds)))
    small = rng.normal(0.0, 0.01, size=(len(sizes), n_seeds))
    if model == "seed_slope":
        return np.exp(base + rng.normal(0.0, 0.03, size=(1, n_seeds)) * centred + small)
    return np.exp(base + rng.normal(0.0, 0.1, size=(1, n_seeds)) + small)


# one seed cannot tell a seed's own slope or offset from the law's: independent noise only
@pytest.mark.parametrize("model, n_seeds", [("independent", 1)] + [
    (model, n_seeds) for model in ("independent", "seed_slope", "seed_offset") for n_seeds in (2, 3, 5)
])
def test_interval_coverage_is_near_its_nominal_level(model, n_seeds):
    """Coverage of the nominal 95% exponent interval over 300 simulated learning curves.
    Resampling each size's seeds independently (version 0.1) covered 0.73–0.79 with
    per-seed slopes and 1.00 (too wide) with per-seed offsets."""
    rng = np.random.default_rng(7)
    replicates = 300
    covered = 0
    for r in range(replicates):
        fit = fit_power_law(PAPER_SIZES, noisy_curves(model, n_seeds, rng), n_bootstrap=400, seed=r)
        covered += fit.exponent_low <= -0.2 <= fit.exponent_high
    # nominal 0.95; 300 replicates give a standard error of about 0.013
    assert 0.92 <= covered / replicates <= 0.98, covered / replicates


def test_an_exact_power_law_is_fitted_exactly():
    losses = 3.0 * PAPER_SIZES[:, None] ** -0.3 * np.ones((1, 2))
    fit = fit_power_law(PAPER_SIZES, losses)
    assert fit.exponent == pytest.approx(-0.3, abs=1e-12)
    assert fit.offset == pytest.approx(math.log(3.0), abs=1e-12)
    assert fit.r_squared == pytest.approx(1.0) and fit.residual_std == pytest.approx(0.0, abs=1e-12)
    # identical seeds leave nothing to resample
    assert fit.exponent_high - fit.exponent_low == pytest.approx(0.0, abs=1e-12)
    np.testing.assert_allclose(fit.predict(PAPER_SIZES), losses[:, 0])


def test_hand_derived_least_squares():
    # log N = 1, 2, 3 and mean log L = 0, -1, -1.5 (seeds -0.1/+0.1 around it):
    # slope = Σ(x - 2)(y - ȳ) / Σ(x - 2)² = -1.5 / 2 = -0.75; intercept = ȳ + 0.75·2 = 2/3
    sizes = np.exp([1.0, 2.0, 3.0])
    losses = np.exp(np.array([0.0, -1.0, -1.5])[:, None] + np.array([[-0.1, 0.1]]))
    fit = fit_power_law(sizes, losses)
    assert fit.exponent == pytest.approx(-0.75)
    assert fit.offset == pytest.approx(2.0 / 3.0)
    np.testing.assert_allclose(fit.mean_log_loss, [0.0, -1.0, -1.5], atol=1e-12)


def test_sizes_are_sorted_and_one_dimensional_losses_are_one_seed():
    order = np.array([3, 0, 5, 1, 4, 2])
    losses = 2.0 * PAPER_SIZES ** -0.5 * np.exp([0.01, -0.02, 0.0, 0.02, -0.01, 0.01])
    shuffled = fit_power_law(PAPER_SIZES[order], losses[order])
    ordered = fit_power_law(PAPER_SIZES, losses)
    assert shuffled.exponent == pytest.approx(ordered.exponent)
    assert shuffled.sizes.tolist() == PAPER_SIZES.tolist() and shuffled.n_seeds == 1


@pytest.mark.parametrize(
    "sizes, losses, reason",
    [
        ([100, 200], [[0.5], [0.4]], "at least 3 distinct"),
        ([100, 100, 200], [[0.5], [0.5], [0.4]], "at least 3 distinct"),
        ([100, 100, 200, 300], [[0.5], [0.5], [0.4], [0.3]], "repeat"),
        ([100, 200, 300], [[0.5], [0.0], [0.3]], "not positive and finite"),
        ([100, 200, 300], [[0.5], [np.nan], [0.3]], "not positive and finite"),
        ([100, 200, 300], [[0.5, 0.4]], "shape"),
        ([0, 200, 300], [[0.5], [0.4], [0.3]], "positive"),
    ],
)
def test_bad_curves_are_refused(sizes, losses, reason):
    with pytest.raises(ValueError, match=reason):
        fit_power_law(sizes, losses)


def test_one_seed_on_three_sizes_gives_a_wide_but_finite_interval():
    # one residual degree of freedom: Student t with 1 dof, heavy tails
    fit = fit_power_law([100, 200, 400], [0.5, 0.42, 0.33])
    wide = fit.exponent_high - fit.exponent_low
    more = fit_power_law([100, 200, 400, 800, 1600], [0.5, 0.42, 0.33, 0.29, 0.24])
    assert math.isfinite(wide) and wide > 5 * (more.exponent_high - more.exponent_low)


# --- the law ------------------------------------------------------------------------


def test_comparison_with_the_law_classifies_the_exponent_and_relates_the_offset_to_k_f():
    rng = np.random.default_rng(3)
    fit = fit_power_law(PAPER_SIZES, synthetic(-0.5, 3, 0.01, rng))
    steeper = compare_with_law(fit, d_data=10.0, d_data_interval=(9.0, 11.0), d_repr=4.0, k_f=0.25)
    assert steeper.predicted_exponent == -0.1 and steeper.agreement == "steeper"
    assert steeper.predicted_low == pytest.approx(-1 / 9) and steeper.predicted_high == pytest.approx(-1 / 11)
    assert steeper.agreement_repr == "steeper" and steeper.predicted_exponent_repr == -0.25
    assert compare_with_law(fit, d_data=1.5).agreement == "shallower"
    assert compare_with_law(fit, d_data=2.0).agreement == "within"
    assert steeper.effective_dimension == pytest.approx(-1 / fit.exponent)
    log_k_f = math.log(0.25)
    assert steeper.constant == pytest.approx(fit.offset - log_k_f)
    assert steeper.constant_at_predicted == pytest.approx(steeper.offset_at_predicted - log_k_f)
    # the bound constant is the smallest a for which every run lies under the law's line
    line = -np.log(fit.sizes)[:, None] / 10.0 + log_k_f + steeper.bound_constant
    gap = line - np.log(fit.losses)
    assert gap.min() == pytest.approx(0.0, abs=1e-12) and np.all(gap >= -1e-12)
    assert steeper.bound_constant >= steeper.constant_at_predicted
    nothing = compare_with_law(fit)
    assert nothing.predicted_exponent is None and nothing.constant is None
    # stored as strict JSON (no NaN), every value as computed
    restored = json.loads(json.dumps(steeper.as_dict(), allow_nan=False))
    assert restored["predicted_exponent"] == -0.1 and restored["agreement"] == "steeper"
    assert restored["d_repr"] == 4.0 and restored["k_f"] == 0.25
    assert restored["constant"] == pytest.approx(steeper.constant)
    assert restored["exponent"] == pytest.approx(fit.exponent)
    assert json.loads(json.dumps(nothing.as_dict(), allow_nan=False))["predicted_exponent"] is None


def test_before_labeling_prediction_from_d_data_alone():
    prediction = predict_exponent(12.5, (11.0, 14.0))
    assert prediction.exponent == pytest.approx(-0.08)
    assert prediction.exponent_low == pytest.approx(-1 / 11) and prediction.exponent_high == pytest.approx(-1 / 14)
    assert prediction.data_factor_per_halving == pytest.approx(2**12.5)
    assert prediction.loss_factor_per_doubling == pytest.approx(2 ** -0.08)
    assert predict_exponent(5.0, (float("nan"), float("nan"))).exponent_low is None
    assert predict_exponent(5.0, (None, None)).exponent_high is None  # as stored without bootstrap
    for bad in (0.0, -3.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="d_data must be a positive number"):
            predict_exponent(bad)
    with pytest.raises(ValueError, match="low <= 5 <= high"):
        predict_exponent(5.0, (6.0, 7.0))


# --- the planner ----------------------------------------------------------------------


@pytest.mark.parametrize("n_seeds", [1, 3])
@pytest.mark.parametrize("method", ["fitted", "law"])
def test_planner_is_monotone_in_the_target_loss(n_seeds, method):
    rng = np.random.default_rng(11)
    fit = fit_power_law(PAPER_SIZES, synthetic(-0.15, n_seeds, 0.05, rng, scale=1.5))
    targets = np.geomspace(0.05, 1.0, 60)
    plan = plan_budget(fit, targets, method=method, d_data=7.0, d_data_interval=(6.0, 8.5))
    for values in (plan.n_needed, plan.n_low, plan.n_high):
        assert np.all(np.diff(values) <= 0), method
    assert np.all(plan.n_low <= plan.n_needed) and np.all(plan.n_needed <= plan.n_high)
    shuffled = plan_budget(fit, targets[::-1], method=method, d_data=7.0, d_data_interval=(6.0, 8.5))
    np.testing.assert_array_equal(shuffled.n_needed[::-1], plan.n_needed)


def test_planner_recovers_the_size_on_a_known_curve():
    fit = fit_power_law(PAPER_SIZES, 2.0 * PAPER_SIZES[:, None] ** -0.25 * np.ones((1, 3)))
    target = 2.0 * 4000.0**-0.25
    plan = plan_budget(fit, [target, 2.0 * 1000.0**-0.25])
    np.testing.assert_allclose(plan.n_needed, [4000.0, 1000.0], rtol=1e-9)
    assert plan.extrapolated.tolist() == [True, False]
    law = plan_budget(fit, target, method="law", d_data=4.0)  # the law's slope is the true one
    assert law.n_needed[0] == pytest.approx(4000.0, rel=1e-9) and law.exponent == -0.25


def test_planner_says_unreachable_when_the_loss_does_not_fall():
    rising = 0.3 * PAPER_SIZES[:, None] ** 0.05 * np.ones((1, 2))
    plan = plan_budget(fit_power_law(PAPER_SIZES, rising), [0.1, 0.2])
    assert np.all(np.isinf(plan.n_needed)) and np.all(np.isinf(plan.n_high))
    assert plan.as_dict()["targets"][0]["n_needed"] is None


def test_planner_refuses_bad_targets_and_methods():
    fit = fit_power_law(PAPER_SIZES, synthetic(-0.2, 2, 0.01, np.random.default_rng(0)))
    for bad in (0.0, -0.1, [0.2, float("nan")], []):
        with pytest.raises(ValueError, match="positive finite"):
            plan_budget(fit, bad)
    with pytest.raises(ValueError, match="needs d_data"):
        plan_budget(fit, 0.2, method="law")
    with pytest.raises(ValueError, match="Unknown planning method"):
        plan_budget(fit, 0.2, method="magic")
