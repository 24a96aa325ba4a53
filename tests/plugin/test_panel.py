"""The Intrinsic properties panel, through ``foo.execute_operator``: load, change of
dataset, button callbacks; the rendered layout and values are checked."""

import os

import numpy as np
import pytest
import torch

import fiftyone as fo
import fiftyone.operators as foo

import fiftyone_intrinsic as fi
from fiftyone_intrinsic.datasets.importers import import_arrays, import_medmnist

from panel_run import QUIET, PanelRun


@pytest.fixture(scope="module")
def audited(tmp_path_factory):
    """BreastMNIST with d_data, K_F and a robustness run of a tiny model."""
    from conftest import shared_file

    name = f"panel-breast-{os.getpid()}"
    dataset = import_medmnist(shared_file("medical/breastmnist_28.npz"), name=name,
                              images_dir=tmp_path_factory.mktemp("panel"), overwrite=True)
    view = dataset.match_tags("test")
    fi.compute_intrinsic_dimension(dataset, **QUIET)
    fi.compute_label_sharpness(dataset, "ground_truth", top=5, **QUIET)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(28 * 28, 2))
    fi.evaluate_robustness(view.limit(40), model, model_input=dict(size=28, channels=1, mean=(0.0,), std=(1.0,)),
                           epsilons=(0, 2, 8), epsilons_l2=(0, 1), pgd_steps=3, sharpness_run_key="label_sharpness", **QUIET)
    yield dataset
    fo.delete_dataset(name)


def test_empty_dataset_says_what_to_run(dataset_name, tmp_path, rng):
    dataset = import_arrays(rng.integers(0, 255, (12, 8, 8), dtype=np.uint8), [0, 1] * 6, name=dataset_name, images_dir=tmp_path)
    run = PanelRun(dataset, "on_load")
    assert "No audit runs yet" in run.markdown()
    assert not run.plots()
    buttons = run.buttons()
    assert buttons["open_compute_label_sharpness"]["operator"] == "@fiftyone-intrinsic/intrinsic/compute_label_sharpness"
    assert buttons["open_compute_intrinsic_dimension"]["prompt"] is True


def test_load_shows_values_plots_and_pairs(audited):
    run = PanelRun(audited, "on_load")
    dim = fi.load_intrinsic_results(audited, "intrinsic_dimension")
    kf = fi.load_intrinsic_results(audited, "label_sharpness")
    robust = fi.load_intrinsic_results(audited, "adversarial_robustness")
    text = run.markdown()
    assert f"d_data = {dim.dimension:.2f}" in text and f"{dim.ci_low:.2f}" in text
    assert f"K_F = {kf.k_f:.4g}" in text and "**1 conflicting duplicate**" in text
    assert f"Clean accuracy **{robust.clean_accuracy:.3f}**" in text and "Δloss" in text
    comparison = robust.sharpness
    assert f"1/(2·K_F) = {comparison['radius_bound']:.4g}" in text
    assert f"Median R̂ is **{comparison['r_hat_over_bound']:.2f}×** that bound" in text
    assert "Pair certificate" not in text and "holds" not in text  # a theorem is not a check
    assert "Not compared: K_F was computed at 28x28" in text  # not the paper's preprocessing
    assert set(run.plots()) >= {"id_vs_k", "local_dimension", "robust_linf", "robust_l2"}
    assert run.data["id_vs_k"][0]["y"][-1] == pytest.approx(dim.dimension)
    histogram = run.data["local_dimension"][0]  # binned by the database, not one value per sample
    assert len(histogram["x"]) <= 50 and sum(histogram["y"]) == audited.exists("intrinsic_dimension_local_dimension").count()
    pgd = next(t for t in run.data["robust_linf"] if t["name"] == "PGD")
    assert pgd["y"] == robust.curves["pgd"]["accuracy"]
    for plot in run.plots():
        layout = run.state[f"layout_{plot}"]
        assert layout["xaxis"]["title"]["text"] and layout["yaxis"]["title"]["text"]
    assert run.state["pairs"] == [[p["id_i"], p["id_j"]] for p in kf.pairs]
    assert len(str(run.state)) < 20_000  # plots live in panel data, not state
    assert {f"pair_{i}" for i in range(5)} <= set(run.buttons())


def test_clicking_a_pair_shows_its_two_samples(audited):
    loaded = PanelRun(audited, "on_load")
    clicked = PanelRun(audited, "show_pair", state=loaded.state, params={"index": 1})
    (set_view,) = [r for r in clicked.triggers if r.operator_uri == "set_view"]
    pair = loaded.state["pairs"][1]
    stages = set_view.params["view"]
    shown = fo.DatasetView._build(audited, stages)
    assert shown.values("id") == pair
    duplicates = PanelRun(audited, "show_duplicates", state=loaded.state)
    (set_view,) = [r for r in duplicates.triggers if r.operator_uri == "set_view"]
    assert len(fo.DatasetView._build(audited, set_view.params["view"])) == 2


def test_change_of_dataset_updates_and_compares(audited, dataset_name, tmp_path):
    from conftest import shared_file

    with np.load(shared_file("medical/breastmnist_28.npz")) as archive:
        images, labels = archive["test_images"], archive["test_labels"]
    other = import_arrays(images, labels, name=dataset_name, images_dir=tmp_path)
    fi.compute_intrinsic_dimension(other, **QUIET)
    fi.compute_label_sharpness(other, "ground_truth", **QUIET)
    first = PanelRun(audited, "on_load")
    changed = PanelRun(other, "on_change_dataset", state=first.state)
    assert f"Intrinsic properties of {other.name}\n" in changed.markdown()
    assert f"Intrinsic properties of {audited.name}\n" not in changed.markdown()
    assert changed.state["pairs"] != first.state["pairs"]
    names = changed.data["database"][0]["text"]
    assert other.name in names and audited.name in names
    assert "robust_vs_kf" not in changed.data  # one dataset with R̂ is not a trend

    torch.manual_seed(1)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(28 * 28, 2))
    fi.evaluate_robustness(other.limit(30), model, model_input=dict(size=28, channels=1, mean=(0.0,), std=(1.0,)),
                           attacks=("fgsm",), epsilons=(0, 2), epsilons_l2=(0,), pgd_steps=2,
                           sharpness_run_key="label_sharpness", **QUIET)
    trend = PanelRun(other, "on_load")
    traces = trend.data["robust_vs_kf"]
    assert sorted(traces[0]["text"]) == sorted([audited.name, other.name])
    bound = traces[-1]
    assert bound["name"] == "bound for the sharpest pair: 1/(2·K_F)"
    assert bound["y"] == pytest.approx([1 / (2 * x) for x in bound["x"]])
    compared = [fi.load_intrinsic_results(d, "adversarial_robustness").sharpness for d in (audited, other)]
    assert sorted(traces[0]["x"]) == sorted(c["k_f"] for c in compared)  # the K_F each R̂ was compared with
    assert sorted(traces[0]["y"]) == sorted(c["r_hat_median"] for c in compared)
    text = trend.markdown()
    assert "What the plot cannot show:** a trend or a slope" in text and "slope −1" not in text
    assert "Fitted" not in text and len(traces) == 2  # no fitted line
    layout = trend.state["layout_robust_vs_kf"]
    assert layout["xaxis"]["type"] == "log" and layout["yaxis"]["type"] == "log"

    # the paper's two relations for the user's own datasets (issue 14): Δloss against K_F ...
    fragile = trend.data["dloss_vs_kf"][0]
    stored = {d.name: fi.load_intrinsic_results(d, "adversarial_robustness") for d in (audited, other)}
    assert dict(zip(fragile["customdata"], fragile["y"])) == {n: r.delta_loss for n, r in stored.items()}
    assert dict(zip(fragile["customdata"], fragile["x"])) == {n: r.sharpness["k_f"] for n, r in stored.items()}
    assert "Pearson 0.70" in trend.markdown() and "read the points, not a trend" in trend.markdown()
    assert "exponent_vs_d" not in trend.data  # no scaling-law run yet
    # ... and the fitted scaling exponent against −1/d_data, once both have a scaling-law run
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for dataset in (audited, other):
            fi.fit_scaling_law(dataset, "ground_truth", sizes=(20, 30, 45), n_seeds=2, epochs=2, min_steps=5,
                               n_test=30, dimension_run_key="intrinsic_dimension", **QUIET)
        curves = PanelRun(other, "on_load")
        points, line = curves.data["exponent_vs_d"]
        fits = {d.name: fi.load_intrinsic_results(d, "scaling_law") for d in (audited, other)}
        assert dict(zip(points["customdata"], points["y"])) == {n: r.fit["exponent"] for n, r in fits.items()}
        assert dict(zip(points["customdata"], points["x"])) == {
            n: r.law["predicted_exponent"] for n, r in fits.items()}
        assert line["x"] == line["y"] and line["x"] == [min(points["x"]), max(points["x"])]
    finally:
        torch.set_num_threads(threads)
        for dataset in (audited, other):
            if dataset.has_run("scaling_law"):
                fi.delete_intrinsic_run(dataset, "scaling_law")


def test_paper_comparison_when_the_preprocessing_matches(dataset_name, tmp_path):
    from conftest import shared_file

    with np.load(shared_file("medical/breastmnist_28.npz")) as archive:
        images, labels = archive["test_images"][:120], archive["test_labels"][:120]
    dataset = import_arrays(images, labels, name=dataset_name, images_dir=tmp_path)
    paper = {"preprocessing": {"size": 224, "value_range": "byte", "normalize_max": True}}
    fi.compute_intrinsic_dimension(dataset, features=paper, **QUIET)
    fi.compute_label_sharpness(dataset, "ground_truth", features=paper, **QUIET)
    run = PanelRun(dataset, "on_load")
    assert "same preprocessing as the paper" in run.markdown()
    traces = run.data["paper"]
    assert [t["name"] for t in traces] == ["paper: medical", "paper: natural", dataset_name]
    assert "BraTS" in traces[0]["text"] and "ImageNet" in traces[1]["text"]
    k_f = fi.load_intrinsic_results(dataset, "label_sharpness").k_f
    assert traces[2]["y"] == [k_f]
    # placed against the paper's ranges (medical 1.35e-4 – 3.43e-4, natural 0.61e-4 – 1.59e-4)
    medical, natural = 1.35e-4 <= k_f <= 3.43e-4, 0.61e-4 <= k_f <= 1.59e-4
    where = ("inside both" if medical and natural else "inside the paper's medical range" if medical
             else "inside the paper's natural range" if natural else "above every" if k_f > 3.43e-4
             else "below every")
    mantissa, exponent = f"{k_f:.2e}".split("e")
    assert f"Same preprocessing as the paper: K_F {float(mantissa):.3g}e{int(exponent)} is **{where}" in run.markdown()



def test_a_run_in_the_earlier_order_is_not_compared_with_the_paper(dataset_name, tmp_path):
    """Earlier versions took the per-image maximum after resizing and recorded no order; runs at
    224x224, [0, 255], per-image max are not the paper's preprocessing."""
    from conftest import shared_file

    with np.load(shared_file("medical/breastmnist_28.npz")) as archive:
        images, labels = archive["test_images"][:40], archive["test_labels"][:40]
    dataset = import_arrays(images, labels, name=dataset_name, images_dir=tmp_path)
    old = {"preprocessing": {"size": 224, "value_range": "byte", "normalize_max": True, "max_before_resize": False}}
    fi.compute_intrinsic_dimension(dataset, features=old, **QUIET)
    fi.compute_label_sharpness(dataset, "ground_truth", features=old, **QUIET)
    for key in ("intrinsic_dimension", "label_sharpness"):  # recorded as earlier versions did: no order
        config = dataset.get_run_info(key).config
        assert config.features.pop("max_before_resize") is False
        dataset.update_run_config(key, config)
    run = PanelRun(dataset, "on_load")
    text = run.markdown()
    assert ("Not compared: K_F was computed with the per-image maximum taken after resizing "
            "(the order of earlier versions)") in text
    assert "same preprocessing as the paper" not in text.lower() and "paper" not in run.plots()

def test_open_panel_operator(audited):
    result = foo.execute_operator("@fiftyone-intrinsic/intrinsic/open_intrinsic_panel", ctx=dict(dataset=audited))
    (request,) = [r for r in result.executor._requests if r.operator_uri == "open_panel"]
    assert request.params["name"] == "intrinsic_properties"


def test_scaling_law_section_plots_the_fit_and_the_plan(audited):
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        fi.fit_scaling_law(audited, "ground_truth", sizes=(40, 60, 90), n_seeds=2, epochs=3, min_steps=10,
                                    n_test=60, dimension_run_key="intrinsic_dimension",
                                    sharpness_run_key="label_sharpness", **QUIET)
    finally:
        torch.set_num_threads(threads)
    run = PanelRun(audited, "on_load")
    stored = fi.load_intrinsic_results(audited, "scaling_law")
    assert f"Fitted exponent **{stored.fit['exponent']:.4g}**" in run.markdown()
    assert "Planner: test loss" in run.markdown()
    traces = run.data["scaling"]
    assert traces[0]["x"] == [n for n in stored.sizes for _ in range(2)]
    assert any(t["name"].startswith("−1/d_data") for t in traces)
    layout = run.state["layout_scaling"]
    assert layout["xaxis"]["type"] == "log" and "training-set size" in layout["xaxis"]["title"]["text"]
    assert "fit_scaling_law" in {b["operator"].rsplit("/", 1)[-1] for b in run.buttons().values() if b.get("operator")}
    fi.delete_intrinsic_run(audited, "scaling_law")


def test_a_comparison_stored_by_earlier_versions_reads_without_a_verdict():
    """Runs stored before the certificate was reworked hold ``holds``/``margin`` and no
    ``radius_bound``: the panel shows the bound and the measured flip, not "holds"."""
    import sys

    panel = foo.get_operator("@fiftyone-intrinsic/intrinsic/intrinsic_properties")
    _bound_lines = sys.modules[type(panel).__module__]._bound_lines  # the module as FiftyOne loaded it
    stored = dict(run_key="kf", k_f=0.25, inverse_k_f=4.0, r_hat_mean=1.5, r_hat_median=1.0, scale=1.0,
                  certificate=dict(distance=4.0, both_correct=True, segment_flip=1.5, pgd_flip=0.5,
                                   holds=True, margin=1.5))
    text = "\n".join(_bound_lines(stored))
    assert "1/(2·K_F) = 2" in text and "Median R̂ is **0.50×** that bound (below" in text
    assert "flips 0.5 from the nearer image" in text and "25% of the half-distance 2" in text
    assert "holds" not in text and "FAILS" not in text
