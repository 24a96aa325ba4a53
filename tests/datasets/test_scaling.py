"""The scaling law on a FiftyOne dataset of real images (BreastMNIST 28 x 28 on the CPU):
the stored run, refusals, pilot and before-labeling modes (fiftyone_intrinsic.datasets.scaling)."""

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from fiftyone import ViewField as F

import fiftyone_intrinsic as fi
from fiftyone_intrinsic.datasets.importers import import_arrays
from fiftyone_intrinsic.core.learning_curve import (
    pilot_sizes,
)
from fiftyone_intrinsic.datasets.scaling import fit_scaling_law
from fiftyone_intrinsic.datasets.schema import SCALING

from conftest import snapshot

#: Training settings of the BreastMNIST curve: decreasing and about 15 s on one core.
REAL = dict(sizes=[50, 100, 200, 300], n_seeds=2, epochs=20, min_steps=60, device="cpu")
#: Settings for tests about plumbing, not about the numbers.
TINY = dict(sizes=[20, 40, 80], n_seeds=2, epochs=2, min_steps=5, device="cpu")


def quiet(fraction, label):
    pass

pytestmark = pytest.mark.usefixtures("one_torch_thread")


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
                                   interval_splits=0, device="cpu", progress=quiet)
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
