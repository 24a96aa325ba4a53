"""The scaling law: the power-law fit on synthetic curves of known exponent (ground truth),
hand-derived cases, the planner, the learning-curve runner on arrays and on real images
(BreastMNIST 28 x 28 on the CPU), the stored run, and the operator fit_scaling_law
(immediate, delegated, refusals)."""

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import fiftyone.operators as foo
from fiftyone import ViewField as F
from fiftyone.operators.delegated import DelegatedOperationService
from fiftyone.operators.executor import ExecutionContext

import fiftyone_intrinsic as fi
from fiftyone_intrinsic.datasets.importers import import_arrays
from fiftyone_intrinsic.core.learning_curve import (
    SmallCNN,
    balanced_capacity,
    default_sizes,
    held_out_split,
    run_learning_curve,
    nested_order,
    pilot_sizes,
)
from fiftyone_intrinsic.core.scaling import compare_with_law, fit_power_law, plan_budget, predict_exponent
from fiftyone_intrinsic.datasets.scaling import fit_scaling_law
from fiftyone_intrinsic.datasets.schema import SCALING

from conftest import snapshot

URI = "@fiftyone-intrinsic/intrinsic/fit_scaling_law"
PAPER_SIZES = np.array([500, 750, 1000, 1250, 1500, 1750])
#: Training settings of the BreastMNIST curve: decreasing and about 15 s on one core.
REAL = dict(sizes=[50, 100, 200, 300], n_seeds=2, epochs=20, min_steps=60, device="cpu")
#: Settings for tests about plumbing, not about the numbers.
TINY = dict(sizes=[20, 40, 80], n_seeds=2, epochs=2, min_steps=5, device="cpu")


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # tiny convolutions: a thread pool costs more than it saves, and on busy cores it
    # oversubscribes them (about 7x slower, measured on two loaded cores)
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def synthetic(exponent, n_seeds, noise, rng, sizes=PAPER_SIZES, scale=2.0):
    """Losses ``scale · N^exponent``, log-normal noise of ``noise`` per (size, seed)."""
    log_losses = math.log(scale) + exponent * np.log(sizes)[:, None]
    return np.exp(log_losses + rng.normal(0.0, noise, size=(len(sizes), n_seeds)))


def quiet(fraction, label):
    pass


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


@pytest.mark.parametrize("n_seeds", [1, 2, 3])
def test_interval_coverage_is_near_its_nominal_level(n_seeds):
    rng = np.random.default_rng(7)
    covered = 0
    replicates = 200
    for r in range(replicates):
        losses = synthetic(-0.2, n_seeds, 0.05, rng)
        fit = fit_power_law(PAPER_SIZES, losses, n_bootstrap=400, seed=r)
        covered += fit.exponent_low <= -0.2 <= fit.exponent_high
    # nominal 0.95; 200 replicates give a standard error of about 0.015
    assert 0.89 <= covered / replicates <= 0.99


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


# --- the runner on arrays ---------------------------------------------------------------


def test_nested_orders_are_class_balanced_and_held_out_splits_disjoint():
    labels = np.array(["a"] * 30 + ["b"] * 12 + ["c"] * 18)
    equal = nested_order(labels, seed=4)
    assert sorted(equal.tolist()) == list(range(60))
    capacity = balanced_capacity(labels)
    assert capacity == 36
    for n in range(3, capacity + 1):
        counts = np.unique(labels[equal[:n]], return_counts=True)[1]
        assert counts.max() - counts.min() <= 1
    stratified = nested_order(labels, seed=4, balance="stratified")
    for n in (10, 20, 30, 60):
        counts = dict(zip(*np.unique(labels[stratified[:n]], return_counts=True)))
        for name, share in (("a", 0.5), ("b", 0.2), ("c", 0.3)):
            assert abs(counts.get(name, 0) - share * n) <= 1
    assert not np.array_equal(nested_order(labels, seed=5), equal)
    train, test = held_out_split(labels, 9, seed=1)
    assert np.intersect1d(train, test).size == 0 and np.union1d(train, test).size == 60
    assert np.unique(labels[test], return_counts=True)[1].tolist() == [3, 3, 3]
    with pytest.raises(ValueError, match="Cannot hold out 40"):
        held_out_split(labels, 40)


def test_default_and_pilot_sizes_follow_the_data():
    assert default_sizes(10_000) == tuple(PAPER_SIZES.tolist())
    assert default_sizes(1300) == (500, 750, 1000, 1250)
    small = default_sizes(336)
    assert len(small) == 6 and small[-1] == 336 and small[0] == 96
    pilot = pilot_sizes(400)
    assert pilot[0] == 50 and pilot[-1] == 400 and len(pilot) == 6


def separable_images(rng, n_per_class=60, side=8):
    """Two classes of 8 x 8 images, bright left half or bright right half, plus noise."""
    images = rng.uniform(0.0, 0.4, size=(2 * n_per_class, 1, side, side))
    images[:n_per_class, :, :, : side // 2] += 0.5
    images[n_per_class:, :, :, side // 2 :] += 0.5
    return images, np.repeat(["left", "right"], n_per_class)


def mlp_factory(n_classes, channels, size):
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(channels * size * size, 16), torch.nn.ReLU(),
                               torch.nn.Linear(16, n_classes))


def test_learning_curve_on_arrays_with_a_user_model():
    rng = np.random.default_rng(0)
    images, labels = separable_images(rng)
    progress = []
    torch.manual_seed(123)
    global_state = torch.get_rng_state()
    curve = run_learning_curve(images, labels, model_factory=mlp_factory, n_test=30,
                           progress=lambda f, s: progress.append(f), **TINY)
    assert torch.equal(torch.get_rng_state(), global_state)  # the caller's random state is untouched
    assert curve.losses.shape == (3, 2) and np.all(np.isfinite(curve.losses))
    assert curve.model.endswith("mlp_factory") and curve.class_names == ["left", "right"]
    assert np.intersect1d(curve.orders.ravel(), curve.test_index).size == 0
    assert np.isin(curve.orders, curve.train_index).all()
    for r in range(2):
        assert set(curve.subset(20, r)) <= set(curve.subset(40, r)) <= set(curve.subset(80, r))
    assert curve.subset_class_counts.tolist() == [[10, 10], [20, 20], [40, 40]]
    assert curve.test_class_counts.tolist() == [15, 15]
    assert curve.steps.tolist() == [5, 5, 6]
    assert progress[-1] == 1.0 and progress == sorted(progress)
    again = run_learning_curve(images, labels, model_factory=mlp_factory, n_test=30, **TINY)
    np.testing.assert_array_equal(again.losses, curve.losses)  # seeded: reproducible


def test_built_in_cnn_adapts_to_size_and_channels():
    for channels, size in ((1, 28), (3, 32), (1, 8), (3, 224)):
        model = SmallCNN(n_classes=4, channels=channels, size=size)
        assert model(torch.zeros(2, channels, size, size)).shape == (2, 4)


def test_runner_refuses_bad_input():
    rng = np.random.default_rng(1)
    images, labels = separable_images(rng)
    cases = [
        (dict(sizes=[20, 40]), "at least 3 distinct"),
        (dict(sizes=[20, 20, 40]), "at least 3 distinct"),
        (dict(sizes=[20, 40, 100]), r"\[100\] are larger than the labeled view allows.*90 images"),
        (dict(sizes=[20, 40, 80], train_index=np.arange(0, 100), test_index=np.arange(90, 120)),
         "overlaps the training pool in 10 images"),
        (dict(sizes=[1, 20, 40]), "smaller than the 2 classes"),
    ]
    for kwargs, reason in cases:
        with pytest.raises(ValueError, match=reason):
            run_learning_curve(images, labels, **{**dict(TINY, sizes=None), **kwargs})
    with pytest.raises(ValueError, match="single class"):
        run_learning_curve(images[:60], labels[:60], **TINY)
    three = labels.copy()
    three[110:] = "up"
    with pytest.raises(ValueError, match="classes \\['up'\\] that the training pool lacks"):
        run_learning_curve(images, three, train_index=np.arange(0, 110), test_index=np.arange(110, 120), **TINY)
    with pytest.raises(ValueError, match="must output one logit per class"):
        run_learning_curve(images, labels, model_factory=lambda c, ch, s: mlp_factory(5, ch, s), **TINY)
    with pytest.raises(ValueError, match="rejected images"):
        run_learning_curve(images, labels, model_factory=lambda c, ch, s: mlp_factory(c, ch, 28), **TINY)
    with pytest.raises(TypeError, match="must return a torch.nn.Module"):
        run_learning_curve(images, labels, model_factory=lambda c, ch, s: "model", **TINY)


# --- on a FiftyOne dataset: real images ------------------------------------------------


def test_breastmnist_curve_decreases_with_an_interval_and_is_stored(breast):
    pool, held_out = breast.match_tags("test", bool=False), breast.match_tags("test")
    report = fit_scaling_law(pool, "ground_truth", test_samples=held_out, run_key="breast_curve",
                             progress=quiet, **REAL)
    curve, fit, law = report.curve, report.fit, report.law
    mean_loss = curve.losses.mean(axis=1)
    assert mean_loss[-1] < mean_loss[0]
    assert fit.exponent < 0 and fit.exponent_low < fit.exponent < fit.exponent_high
    assert math.isfinite(fit.exponent_low) and math.isfinite(fit.exponent_high)
    assert curve.subset_class_counts[-1].tolist() == [150, 150]
    assert report.sources == {"d_data": "computed", "k_f": "computed", "d_repr": None}
    assert law.predicted_exponent == pytest.approx(-1.0 / law.d_data) and law.agreement is not None
    assert set(report.plans) == {"fitted", "law"} and report.primary_plan == "fitted"

    stored = fi.load_intrinsic_results(breast, "breast_curve")
    assert stored.sizes == REAL["sizes"] and stored.seeds == [0, 1]
    assert stored.losses == curve.losses.tolist()
    assert stored.fit["exponent"] == fit.exponent and stored.fit["exponent_low"] == fit.exponent_low
    line = stored.fit_line
    assert len(line["n"]) == len(line["loss"]) == len(line["low"]) == len(line["high"]) == 50
    assert all(lo <= v <= hi for lo, v, hi in zip(line["low"], line["loss"], line["high"]))
    assert stored.predicted_line["exponent"] == law.predicted_exponent
    assert stored.law["d_data"] == law.d_data and stored.law["k_f"] == law.k_f
    plan = stored.plans["fitted"]["targets"]
    assert [t["target_loss"] for t in plan] == pytest.approx(list(report.plans["fitted"].target_loss))
    assert stored.n_pool == 624 and stored.n_test == 156 and stored.test_class_counts == [42, 114]
    assert sorted(stored.test_ids) == sorted(held_out.values("id"))
    pool_ids = set(pool.values("id"))
    assert all(set(row) <= pool_ids for row in stored.train_order_ids)
    assert breast.count_values(SCALING.names("breast_curve").field("split")) == {"pool": 624, "test": 156}
    config = fi.get_intrinsic_run_info(breast, "breast_curve").config
    assert config.method == "scaling_law" and config.settings["curve"]["sizes"] == REAL["sizes"]
    assert config.features["image_shape"] == [28, 28, 1] and config.label_field == "ground_truth"

    script = (
        "import json, fiftyone as fo, fiftyone_intrinsic as fi\n"
        f"r = fi.load_intrinsic_results(fo.load_dataset({breast.name!r}), 'breast_curve')\n"
        "print(json.dumps(dict(losses=r.losses, fit=r.fit, plans=r.plans)))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=os.environ.copy(), check=True)
    reloaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert reloaded["losses"] == stored.losses and reloaded["fit"] == stored.fit
    fi.delete_intrinsic_run(breast, "breast_curve")
    assert not breast.has_sample_field(SCALING.names("breast_curve").field("split"))


def test_bad_input_on_a_dataset_is_refused_and_changes_nothing(breast, dataset_name, tmp_path):
    fi.compute_intrinsic_dimension(breast, run_key="id32", features={"preprocessing": {"size": 32}},
                                   n_bootstrap=0, device="cpu", progress=quiet)
    other = import_arrays(np.zeros((4, 28, 28), np.uint8), ["0", "1", "0", "1"], name=dataset_name,
                          images_dir=tmp_path / "other")
    before = snapshot(breast)
    pool = breast.match_tags("test", bool=False)
    cases = [
        (dict(samples=breast, test_samples=breast.match_tags("test")), "overlaps the training view: 156 of its 156"),
        (dict(sizes=[100, 200]), "at least 3 distinct"),
        (dict(sizes=[100, 200, 400]), r"\[400\] are larger than the labeled view allows"),
        (dict(samples=pool.match(F("ground_truth.label") == "1")), "single class"),
        (dict(test_samples=other), "belongs to dataset"),
        (dict(dimension_run_key="id32", size=28, channels=1), "comparable only in the same preprocessing"),
        (dict(dimension_run_key="id32"), "comparable only in the same preprocessing"),
        (dict(sharpness_run_key="id32"), "not label_sharpness"),
        (dict(run_key="bad key"), "not a valid identifier"),
        (dict(mode="sometimes"), "Unknown mode"),
    ]
    for case, reason in cases:
        kwargs = dict(TINY, test_samples=breast.match_tags("test"), run_key="refused")
        kwargs.update(case)
        samples = kwargs.pop("samples", pool)
        with pytest.raises(ValueError, match=reason):
            fit_scaling_law(samples, "ground_truth", progress=quiet, **kwargs)
        assert snapshot(breast) == before, reason
    fi.delete_intrinsic_run(breast, "id32")


def test_pilot_mode_spreads_the_sizes_and_plans_with_the_slope_of_d_data(breast):
    pool = breast.match_tags("test", bool=False)
    settings = {k: v for k, v in TINY.items() if k != "sizes"}
    report = fit_scaling_law(pool, "ground_truth", mode="pilot", test_samples=breast.match_tags("test"),
                             run_key="pilot", target_loss=[0.6, 0.4], progress=quiet, **settings)
    assert tuple(report.curve.sizes.tolist()) == pilot_sizes(336) == (42, 64, 96, 146, 222, 336)
    assert report.primary_plan == "law"
    law_plan = report.plans["law"]
    assert law_plan.exponent == pytest.approx(-1.0 / report.law.d_data)
    assert law_plan.n_needed[0] <= law_plan.n_needed[1]  # a lower target needs more labels
    stored = fi.load_intrinsic_results(breast, "pilot")
    assert stored.mode == "pilot" and stored.primary_plan == "law"
    assert [t["target_loss"] for t in stored.plans["law"]["targets"]] == [0.6, 0.4]
    fi.delete_intrinsic_run(breast, "pilot")


def test_before_labeling_uses_d_data_alone(breast):
    unlabeled = breast.match_tags("train")
    stored_d = fi.compute_intrinsic_dimension(unlabeled, run_key="pool_id", device="cpu", progress=quiet)
    report = fit_scaling_law(unlabeled, None, mode="before_labeling", run_key="before",
                             dimension_run_key="pool_id", progress=quiet)
    assert report.curve is None and report.fit is None
    assert report.prediction.d_data == stored_d.dimension
    assert report.prediction.exponent == pytest.approx(-1.0 / stored_d.dimension)
    stored = fi.load_intrinsic_results(breast, "before")
    assert stored.prediction["exponent"] == report.prediction.exponent
    assert stored.sources["d_data"] == "pool_id"
    measured = fit_scaling_law(unlabeled, None, mode="before_labeling", run_key="before_measured",
                               size=28, channels=1, progress=quiet)
    assert measured.prediction.d_data == pytest.approx(stored_d.dimension, rel=1e-9)
    for key in ("before", "before_measured", "pool_id"):
        fi.delete_intrinsic_run(breast, key)


# --- the operator ---------------------------------------------------------------------


def test_operator_is_registered_without_errors():
    registry = foo.OperatorRegistry()
    assert registry.list_errors() == []
    assert URI in {op.uri for op in registry.list_operators(builtin=False)}


def test_operator_gives_the_library_numbers_and_runs_delegated(breast):
    pool = breast.match_tags("test", bool=False)
    direct = fit_scaling_law(pool, "ground_truth", test_samples=breast.match_tags("test"), run_key="lib",
                             progress=quiet, **TINY)
    op = foo.get_operator(URI)
    stored = op(pool, test_tag="test", run_key="op", **TINY)
    np.testing.assert_allclose(stored.losses, direct.curve.losses, rtol=1e-6)
    assert stored.fit["exponent"] == pytest.approx(direct.fit.exponent, rel=1e-5)
    assert stored.mode == "curve" and stored.sources["d_data"] == "computed"

    queued = op(pool, test_tag="test", run_key="queued", target_loss=[0.6, 0.5], delegate=True, **TINY)
    assert queued.delegated and "queued" not in breast.list_runs()
    service = DelegatedOperationService()
    service.execute_queued_operations(dataset_name=breast.name)
    breast.reload()
    result = fi.load_intrinsic_results(breast, "queued")
    np.testing.assert_allclose(result.losses, direct.curve.losses, rtol=1e-6)
    assert [t["target_loss"] for t in result.plans["fitted"]["targets"]] == [0.6, 0.5]
    (operation,) = [o for o in service.list_operations(dataset_name=breast.name) if o.operator == URI]
    assert operation.run_state == "completed"
    assert operation.status.progress == 1.0 and operation.status.label.startswith("exponent")
    for key in ("lib", "op", "queued"):
        fi.delete_intrinsic_run(breast, key)


def validation_message(call):
    with pytest.raises(foo.executor.ExecutionError) as error:
        call()
    return str(error.value)


def test_operator_refuses_bad_input_and_changes_nothing(breast):
    before = snapshot(breast)
    op = foo.get_operator(URI)
    pool = breast.match_tags("test", bool=False)
    common = dict(TINY, run_key="refused")
    held = dict(common, test_tag="test")
    one_class = pool.match(F("ground_truth.label") == "0")
    cases = {
        "held-out overlaps": (lambda: op(breast, **held), "test_tag", "overlaps the training view"),
        "two sizes": (lambda: op(pool, **dict(held, sizes=[20, 40])), "sizes", "at least 3 distinct"),
        "too large": (lambda: op(pool, **dict(held, sizes=[20, 40, 5000])), "sizes", "larger than the labeled view"),
        "one class": (lambda: op(one_class, **common), "label_field", "same label"),
        "bad target": (lambda: op(pool, target_loss="a lot", **held), "target_loss", "comma-separated numbers"),
    }
    for name, (call, path, reason) in cases.items():
        message = validation_message(call)
        assert f"Path: {path}." in message and reason in message, (name, message)
        assert snapshot(breast) == before, name


def test_form_shows_only_the_options_of_the_mode(breast):
    def form(params):
        ctx = ExecutionContext(request_params=dict(dataset_name=breast.name, params=params))
        return foo.get_operator(URI).resolve_input(ctx).type.properties

    curve = form(dict(mode="curve", held_out="carve"))
    assert {"label_field", "sizes", "n_seeds", "n_test", "target_loss", "sharpness_run_key"} <= set(curve)
    assert "test_tag" not in curve
    tagged = form(dict(mode="curve", held_out="tag", label_field="ground_truth"))
    assert "test_tag" in tagged and "n_test" not in tagged
    assert {c.value for c in tagged["test_tag"].view.choices} == {"train", "val", "test"}
    before = form(dict(mode="before_labeling"))
    assert "label_field" not in before and "sizes" not in before and "dimension_run_key" in before
