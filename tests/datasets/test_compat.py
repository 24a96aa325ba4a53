"""Runs stored by version 0.1.0 still load, show and delete with the current code.

``fixtures/runs_v0_1_0/`` is a FiftyOne export of 40 digits with five runs written by 0.1.0
(``fixtures/make_runs_v0_1_0.py`` says how it was made): configs that name
``fiftyone_intrinsic.runs.IntrinsicRunConfig`` and plain ``RunResults``.
"""

import json
import os
import subprocess
import sys

import pytest

import fiftyone as fo

import fiftyone_intrinsic as fi
from fiftyone_intrinsic.datasets.results import (
    DimensionResults,
    RobustnessResults,
    ScalingLawResults,
    SharpnessResults,
)
from fiftyone_intrinsic.datasets.schema import SHARPNESS
from fiftyone_intrinsic.datasets.summary import summarize_dataset

from conftest import REPO

FIXTURE = REPO / "tests" / "fixtures" / "runs_v0_1_0"


def _stored(key):
    return json.loads((FIXTURE / "runs" / f"{key}.json").read_text())


@pytest.fixture
def old(dataset_name):
    return fo.Dataset.from_dir(dataset_dir=str(FIXTURE), dataset_type=fo.types.FiftyOneDataset, name=dataset_name)


def test_the_fixture_is_what_0_1_0_stored():
    metadata = json.loads((FIXTURE / "metadata.json").read_text())
    configs = {key: run["config"] for key, run in metadata["runs"].items()}
    assert {c["cls"] for c in configs.values()} == {"fiftyone_intrinsic.runs.IntrinsicRunConfig"}
    assert {c["versions"]["fiftyone_intrinsic"] for c in configs.values()} == {"0.1.0"}
    assert {_stored(key)["cls"] for key in configs} == {"fiftyone.core.runs.RunResults"}


def test_runs_of_0_1_0_load_as_typed_results(old):
    assert sorted(fi.list_intrinsic_runs(old)) == [
        "adversarial_robustness", "id_twonn", "intrinsic_dimension", "label_sharpness", "scaling_law",
    ]
    expected = {
        "intrinsic_dimension": DimensionResults, "id_twonn": DimensionResults,
        "label_sharpness": SharpnessResults, "adversarial_robustness": RobustnessResults,
        "scaling_law": ScalingLawResults,
    }
    for key, cls in expected.items():
        results = fi.load_intrinsic_results(old, key)
        assert type(results) is cls, key
        stored = _stored(key)
        for name in cls.VALUES:
            assert getattr(results, name) == stored.get(name), (key, name)
    sharpness = fi.load_intrinsic_results(old, "label_sharpness")
    ids = set(old.values("id"))
    assert sharpness.k_f == pytest.approx(0.8611671071262189)
    assert {p["id_i"] for p in sharpness.pairs} <= ids and len(sharpness.conflicting_duplicates) == 1
    info = fi.get_intrinsic_run_info(old, "label_sharpness")
    assert info.config.method == "label_sharpness" and info.config.schema is SHARPNESS


def test_the_panel_summary_and_pairs_view_read_0_1_0_runs(old):
    summary = summarize_dataset(old)
    assert summary.dimension.key == "intrinsic_dimension" and summary.dimension.results.dimension > 0
    assert summary.sharpness.results.k_f == pytest.approx(0.8611671071262189)
    assert summary.robustness.results.curves["fgsm"]["epsilons"] == [0.0, 2.0]
    assert summary.scaling.results.mode == "before_labeling" and summary.scaling.results.sizes is None
    pairs = fi.load_sharpest_pairs_view(old, "label_sharpness")
    assert len(pairs) == len(set(pairs.values("id"))) >= 2
    from panel_run import PanelRun

    assert "Adversarial robustness" in PanelRun(old, "on_load").markdown()  # the panel renders 0.1.0 runs


def test_a_0_1_0_run_deletes_what_it_wrote_and_can_be_overwritten(old):
    names = SHARPNESS.names("label_sharpness")
    assert old.has_sample_field(names.field("distance")) and names.view("pairs") in old.list_saved_views()
    fi.compute_label_sharpness(old, "ground_truth", top=2, overwrite=True, device="cpu", progress=lambda f, s: None)
    assert type(fi.load_intrinsic_results(old, "label_sharpness")) is SharpnessResults
    assert old.count_sample_tags()[names.tag("pair")] <= 4  # the 0.1.0 run's top-3 tags are gone
    fi.delete_intrinsic_run(old, "intrinsic_dimension")
    assert not old.has_sample_field("intrinsic_dimension_local_dimension")
    assert "intrinsic_dimension" not in old.list_runs()


def test_0_1_0_runs_load_in_a_fresh_process(old):
    script = (
        "import fiftyone as fo, fiftyone_intrinsic as fi\n"
        f"r = fi.load_intrinsic_results(fo.load_dataset({old.name!r}), 'id_twonn')\n"
        "print(type(r).__name__, r.estimator, r.dimension)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=os.environ.copy())
    assert out.returncode == 0, out.stderr
    name, estimator, dimension = out.stdout.split()[-3:]
    assert (name, estimator) == ("DimensionResults", "twonn")
    assert float(dimension) == _stored("id_twonn")["dimension"]


def test_an_absolute_duplicate_tolerance_of_an_older_run_is_read_as_a_distance(old):
    """Runs stored while ``duplicate_tolerance`` was a distance in feature units (no
    ``duplicate_distance``) keep that distance and are never read as a fraction of the
    nearest-neighbour distance; a tolerance of 0 reads the same either way."""
    info = fi.get_intrinsic_run_info(old, "intrinsic_dimension")
    stored = {name: value for name, value in _stored("intrinsic_dimension").items() if name != "cls"}
    absolute = DimensionResults(old, info.config, "intrinsic_dimension", **dict(stored, duplicate_tolerance=1.0))
    assert (absolute.duplicate_tolerance, absolute.duplicate_distance) == (None, 1.0)
    untouched = fi.load_intrinsic_results(old, "intrinsic_dimension")
    assert (untouched.duplicate_tolerance, untouched.duplicate_distance) == (0.0, None)
