"""Runs you choose in the Intrinsic properties panel: a selector per section, each run's
samples, view and date, and comparisons that combine only runs on the same samples and
preprocessing (issue 12, item 1). Real runs on a real database, driven as the App does."""

import uuid

import numpy as np
import pytest

import fiftyone as fo

import fiftyone_intrinsic as fi
from fiftyone_intrinsic.datasets.importers import import_arrays
from fiftyone_intrinsic.datasets.summary import combinable, summarize_dataset

from panel_run import QUIET, PanelRun


@pytest.fixture(scope="module")
def two_views(tmp_path_factory):
    """60 random 8x8 images, 15 tagged test; d_data on all of them, K_F on all of them
    ('kf_all') and then on the test samples only ('kf_test', the newest)."""
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, (60, 8, 8)).astype(np.uint8)
    labels = ["a", "b", "c"] * 20
    tags = [["test"] if i % 4 == 0 else ["train"] for i in range(60)]
    name = f"panel-runs-{uuid.uuid4().hex[:8]}"
    dataset = import_arrays(images, labels, name=name, images_dir=tmp_path_factory.mktemp("runs"), tags=tags)
    try:
        fi.compute_intrinsic_dimension(dataset, k=5, interval_splits=1, **QUIET)
        fi.compute_label_sharpness(dataset, "ground_truth", run_key="kf_all", top=3, **QUIET)
        fi.compute_label_sharpness(dataset.match_tags("test"), "ground_truth", run_key="kf_test", top=3, **QUIET)
        yield dataset
    finally:
        fo.delete_dataset(name)


def test_the_newest_run_is_shown_with_its_view_and_a_selector_offers_both(two_views):
    loaded = PanelRun(two_views, "on_load")
    assert loaded.state["run_sharpness"] == "kf_test"
    assert [key for key, _ in loaded.state["run_choices"]["sharpness"]] == ["kf_test", "kf_all"]
    labels = dict(loaded.state["run_choices"]["sharpness"])
    assert labels["kf_all"].startswith("kf_all: 60 samples, the whole dataset, ")
    assert labels["kf_test"].startswith("kf_test: 15 samples, MatchTags(tags=['test']")
    selectors = {name: p for name, p in loaded.properties() if name == "run_sharpness"}
    assert selectors and selectors["run_sharpness"]["on_change"].endswith("choose_sharpness_run")
    assert "run_dimension" not in dict(loaded.properties())  # one d_data run: nothing to choose
    text = loaded.markdown()
    assert "Run `kf_test`: 15 samples (MatchTags(tags=['test']" in text
    # the paper comparison refuses to mix the d_data of 60 samples with the K_F of 15
    assert ("Not combined: d_data run 'intrinsic_dimension' covers 60 samples (the whole dataset) "
            "and K_F run 'kf_test' covers 15 samples") in text


def test_choosing_the_other_run_shows_it_and_lifts_the_refusal(two_views):
    loaded = PanelRun(two_views, "on_load")
    chosen = PanelRun(two_views, "choose_sharpness_run", state=loaded.state, params={"value": "kf_all"})
    assert chosen.state["run_sharpness"] == "kf_all"
    text = chosen.markdown()
    assert "Run `kf_all`: 60 samples (the whole dataset)" in text and "Not combined" not in text
    stored = fi.load_intrinsic_results(two_views, "kf_all")
    assert f"K_F = {stored.k_f:.4g}" in text
    # the choice survives the next event (a view change refreshes with the chosen run)
    again = PanelRun(two_views, "on_change_view", state=chosen.state)
    assert again.state["run_sharpness"] == "kf_all"
    # a newly opened panel shows the newest run again, whatever an earlier panel chose
    reopened = PanelRun(two_views, "on_load", state=chosen.state)
    assert reopened.state["run_sharpness"] == "kf_test"


def test_a_late_event_with_the_state_before_a_choice_does_not_undo_it(two_views):
    """The App fires view events on every load and resize, each carrying the state the
    browser held then, and runs them concurrently: one sent before the user chose a run
    may finish after the choice. It must patch nothing (before, it wrote the newest run
    and its texts back over the choice: a CI failure of the App test)."""
    loaded = PanelRun(two_views, "on_load")
    chosen = PanelRun(two_views, "choose_sharpness_run", state=loaded.state, params={"value": "kf_all"})
    assert chosen.state["run_sharpness"] == "kf_all"
    late = PanelRun(two_views, "on_change_view", state=loaded.state)
    patched = [r for r in late.requests if r.operator_uri in ("patch_panel_state", "patch_panel_data")]
    assert patched == []
    # what did change is still sent: a run stored meanwhile by another process
    fi.compute_label_sharpness(two_views, "ground_truth", run_key="kf_newer", top=3, **QUIET)
    try:
        newer = PanelRun(two_views, "on_change_view", state=chosen.state)
        assert newer.state["run_sharpness"] == "kf_all"  # the choice is kept
        assert "kf_newer" in [key for key, _ in newer.state["run_choices"]["sharpness"]]
        # only what changed: the run list, and the new run's field among the split sources
        assert _patched_keys(newer) == {"run_choices", "split_choices"} and newer.data == {}
    finally:
        fi.delete_intrinsic_run(two_views, "kf_newer")


def _patched_keys(run):
    return {key for r in run.requests if r.operator_uri == "patch_panel_state" for key in r.params["state"]}


def test_combinable_needs_the_same_samples_and_preprocessing(two_views):
    summary = summarize_dataset(two_views, {"sharpness": "kf_all"})
    assert combinable(summary.dimension, summary.sharpness)[0]
    test_only = summarize_dataset(two_views, {"sharpness": "kf_test"})
    ok, reason = combinable(test_only.dimension, test_only.sharpness)
    assert not ok and "choose runs on the same samples" in reason
    fi.compute_intrinsic_dimension(two_views, run_key="id_gray", k=5, interval_splits=1,
                                   features={"preprocessing": {"size": 4}}, **QUIET)
    other = summarize_dataset(two_views, {"dimension": "id_gray", "sharpness": "kf_all"})
    ok, reason = combinable(other.dimension, other.sharpness)
    assert not ok and "choose runs of the same preprocessing" in reason and "4x4" in reason
    fi.delete_intrinsic_run(two_views, "id_gray")


def test_a_collapsed_twonn_run_shows_no_interval(dataset_name, tmp_path):
    """BreastMNIST's near-duplicates collapse TwoNN (about 1.1 against MLE's 7 or so): the
    TwoNN run, when chosen, is flagged as collapsed instead of shown with a tight interval."""
    from conftest import shared_file

    with np.load(shared_file("medical/breastmnist_28.npz")) as archive:
        images, labels = archive["train_images"], archive["train_labels"]
    dataset = import_arrays(images, labels, name=dataset_name, images_dir=tmp_path)
    mle = fi.compute_intrinsic_dimension(dataset, interval_splits=1, **QUIET)
    twonn = fi.compute_intrinsic_dimension(dataset, run_key="id_twonn", estimator="twonn", interval_splits=1, **QUIET)
    assert twonn.dimension < 0.5 * mle.dimension and np.isfinite(twonn.ci_low)
    loaded = PanelRun(dataset, "on_load")
    assert loaded.state["run_dimension"] == "intrinsic_dimension"  # MLE is preferred
    assert "Collapsed" not in loaded.markdown() and "95% CI" in loaded.markdown()
    chosen = PanelRun(dataset, "choose_dimension_run", state=loaded.state, params={"value": "id_twonn"})
    text = chosen.markdown()
    assert f"d_data = {twonn.dimension:.2f}**" in text and "95% CI" not in text
    assert f"**Collapsed:** TwoNN is far below MLE on the same samples (run `intrinsic_dimension`: {mle.dimension:.2f})" in text


def test_robustness_runs_are_chosen_like_the_others(two_views):
    """Two robustness runs (the whole dataset, and its test samples): the newest is shown,
    a selector offers both with their samples, and choosing the other shows it."""
    import torch

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3))
    common = dict(class_names=["a", "b", "c"], model_input=dict(size=8, channels=1, mean=(0.0,), std=(1.0,)),
                  attacks=("fgsm",), epsilons=(0, 2), minimal=False, **QUIET)
    fi.evaluate_robustness(two_views, model, run_key="robust_all", **common)
    fi.evaluate_robustness(two_views.match_tags("test"), model, run_key="robust_test", **common)
    try:
        loaded = PanelRun(two_views, "on_load")
        assert loaded.state["run_robustness"] == "robust_test"
        labels = dict(loaded.state["run_choices"]["robustness"])
        assert list(labels) == ["robust_test", "robust_all"]
        assert labels["robust_all"].startswith("robust_all: 60 samples, the whole dataset, ")
        selector = dict(loaded.properties())["run_robustness"]
        assert selector["on_change"].endswith("choose_robustness_run")
        assert "**Adversarial robustness** (run `robust_test`)" in loaded.markdown()
        chosen = PanelRun(two_views, "choose_robustness_run", state=loaded.state, params={"value": "robust_all"})
        assert chosen.state["run_robustness"] == "robust_all"
        assert "**Adversarial robustness** (run `robust_all`)" in chosen.markdown()
        assert "on 60 samples" in chosen.markdown()
    finally:
        for key in ("robust_all", "robust_test"):
            fi.delete_intrinsic_run(two_views, key)
