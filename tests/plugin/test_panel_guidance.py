"""What the Intrinsic properties panel tells a user: the meaning of each number, the next
step, class names, hub samples, duplicate groups across splits, and plots readable at
panel width. Real runs on a constructed dataset whose sharpest pairs and duplicates are
known by construction."""

import importlib.util

import numpy as np
import pytest

import fiftyone as fo

import fiftyone_intrinsic as fi
from fiftyone_intrinsic.datasets.importers import import_arrays

from conftest import REPO
from panel_run import QUIET, PanelRun

EXACT = {"preprocessing": {"value_range": "byte", "normalize_max": False}}
#: Pixel offsets of the near copies: (H, a), (H, b), (H, c), (x, y), (u, v) are 3 … 7 apart.
OFFSETS = (3, 4, 5, 6, 7)


@pytest.fixture(scope="module")
def constructed(tmp_path_factory):
    """48 random 8x8 images. Sample 0 ("benign") has three "malignant" near copies 3, 4
    and 5 apart (samples 1–3): a hub in 3 of the 5 sharpest pairs; two more pairs are 6 and
    7 apart (4–5, 6–7). Exact duplicate groups with equal labels: 8–9 (train, test),
    10–11 (train, train), 12–13–14 (train, train, val)."""
    rng = np.random.default_rng(7)
    images = rng.integers(20, 200, (48, 8, 8)).astype(np.uint8)
    labels = ["benign", "malignant"] * 24
    tags = [["train"] for _ in range(48)]

    def near(source, target, offset, pixel):
        images[target] = images[source]
        images[target].flat[pixel] += offset

    labels[0] = "benign"
    for target, offset, pixel in ((1, 3, 0), (2, 4, 1), (3, 5, 2)):
        near(0, target, offset, pixel)
        labels[target] = "malignant"
    for source, target, offset in ((4, 5, 6), (6, 7, 7)):
        near(source, target, offset, 5)
        labels[source], labels[target] = "benign", "malignant"
    for group, splits in (((8, 9), ("train", "test")), ((10, 11), ("train", "train")),
                          ((12, 13, 14), ("train", "train", "val"))):
        for member, split in zip(group, splits):
            images[member] = images[group[0]]
            labels[member] = labels[group[0]]
            tags[member] = [split]
    name = f"panel-guidance-{id(images)}"
    dataset = import_arrays(images, labels, name=name, images_dir=tmp_path_factory.mktemp("guidance"), tags=tags)
    fi.compute_intrinsic_dimension(dataset, k=5, interval_splits=1, features=EXACT, **QUIET)
    fi.compute_label_sharpness(dataset, "ground_truth", top=5, features=EXACT, **QUIET)
    yield dataset
    fo.delete_dataset(name)


def _sample_ids(dataset):
    """Sample ids in import order (file names are the image index)."""
    return [i for _, i in sorted(zip(dataset.values("filepath"), dataset.values("id")))]


def test_sharpness_says_what_it_means_and_what_to_do(constructed):
    run = PanelRun(constructed, "on_load")
    text = run.markdown()
    kf = fi.load_intrinsic_results(constructed, "label_sharpness")
    assert kf.k_f == pytest.approx(1 / 3)  # the constructed closest pair
    assert "The closest two images with different labels are 3 apart" in text
    assert "L2 distance over 8x8x1 pixels with intensities in [0, 255]" in text
    assert "Higher K_F means labels change over a shorter distance" in text
    assert "label error or a near-copy across classes" in text
    assert "**Review next 25** sorts the grid by `label_sharpness_nearest_other_distance`" in text
    assert "(classes `benign`, `malignant`)" in text
    assert "Not placed against the paper's medical (1.35e-4 – 3.43e-4) and natural (6.1e-5 – 1.59e-4)" in text  # 8 px, not 224
    captions = dict(run.properties())
    labels = [captions[f"pair_caption_{i}"]["default"] for i in range(5)]
    assert [label.split(" apart")[0] for label in labels] == [f"**{i}.** {d}" for i, d in enumerate(OFFSETS, 1)]
    assert "(label **benign**) ↔" in labels[0] and "(label **malignant**)" in labels[0] and "[" not in labels[0]


def test_hub_sample_is_called_out_with_its_count(constructed):
    run = PanelRun(constructed, "on_load")
    hub_id = _sample_ids(constructed)[0]
    hubs = {name: b for name, b in run.buttons().items() if name.startswith("hub_")}
    assert list(hubs) == ["hub_0"]  # samples 4–7 are in one pair each
    assert "is in 3 of the 5 sharpest pairs" in hubs["hub_0"]["label"]
    assert "(label benign)" in hubs["hub_0"]["label"]
    assert "Start with the hub samples" in run.markdown()
    clicked = PanelRun(constructed, "show_hub", state=run.state, params={"id": hub_id})
    (set_view,) = [r for r in clicked.triggers if r.operator_uri == "set_view"]
    shown = fo.DatasetView._build(constructed, set_view.params["view"]).values("id")
    assert shown == _sample_ids(constructed)[:4]  # the hub, then its three partners


def test_dimension_says_degrees_of_freedom_and_points_to_the_planner(constructed):
    text = PanelRun(constructed, "on_load").markdown()
    d = fi.load_intrinsic_results(constructed, "intrinsic_dimension").dimension
    assert f"The images vary along about {d:.0f} degrees of freedom, out of 64 feature values per image" in text
    assert f"lowers it by about {1 - 2 ** (-1 / d):.0%}" in text
    assert "**Fit scaling law**" in text and "planner" in text


def test_duplicate_groups_and_those_crossing_splits(constructed):
    run = PanelRun(constructed, "on_load")
    text = run.markdown()
    assert fi.load_intrinsic_results(constructed, "intrinsic_dimension").n_duplicates == 4
    assert "3 exact duplicate groups (7 samples)" in text
    assert "**2 groups** cross splits" in text
    buttons = run.buttons()
    assert buttons["show_duplicate_groups"]["label"] == "Show the 3 groups"
    assert buttons["show_duplicate_groups_crossing"]["label"] == "Show the 2 groups across splits"
    ids = _sample_ids(constructed)
    for crossing, expected in ((False, range(8, 15)), (True, (8, 9, 12, 13, 14))):
        clicked = PanelRun(constructed, "show_duplicate_groups", state=run.state, params={"crossing": crossing})
        (set_view,) = [r for r in clicked.triggers if r.operator_uri == "set_view"]
        shown = fo.DatasetView._build(constructed, set_view.params["view"]).values("id")
        assert sorted(shown) == sorted(ids[i] for i in expected)


def test_thousands_separator_and_singular(constructed):
    text = PanelRun(constructed, "on_load").markdown()
    assert "48 samples." in text and "**0 conflicting duplicates**" in text


def test_empty_dataset_explains_k_f_and_the_first_step(dataset_name, tmp_path, rng):
    dataset = import_arrays(rng.integers(0, 255, (6, 8, 8), dtype=np.uint8), [0, 1] * 3, name=dataset_name,
                            images_dir=tmp_path)
    text = PanelRun(dataset, "on_load").markdown()
    assert "K_F (label sharpness) is 1 / the smallest distance between two images with different labels" in text
    assert "What to do first:" in text and "review the sharpest pairs" in text
    assert "degrees of freedom" in text


def test_plots_fit_the_panel(constructed):
    run = PanelRun(constructed, "on_load")
    assert set(run.plots()) >= {"id_vs_k", "local_dimension"}
    for name, view in run.plots().items():
        assert view["config"]["displayModeBar"] is False
        layout = run.state[f"layout_{name}"]
        assert layout["legend"]["orientation"] == "h" and layout["legend"]["y"] < 0
        for trace in run.data[name]:
            assert "hovertemplate" in trace or trace.get("hoverinfo") == "skip"
    hover = run.data["id_vs_k"][0]["hovertemplate"]
    assert "d_data (dimensions): %{y:.3g}" in hover


def _figures():
    spec = importlib.util.spec_from_file_location("intrinsic_figures", REPO / "plugin" / "figures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_paper_plot_has_readable_ticks_and_separate_labels():
    from fiftyone_intrinsic.core.reference import PAPER_DATASETS

    figures = _figures()
    traces, layout = figures.paper_scatter(PAPER_DATASETS, "mine", 12.0, 2.5e-4)
    assert layout["yaxis"]["ticktext"] == ["5e-5", "1e-4", "2e-4", "5e-4"]
    assert "K_F (1/intensity units): %{y:.3g}" in traces[0]["hovertemplate"]
    medical = dict(zip(traces[0]["customdata"], traces[0]["textposition"]))
    # BraTS and RSNA-IH-CT share d_data = 11.0 and nearly K_F: their labels go on opposite sides
    assert medical["BraTS"] != medical["RSNA-IH-CT"]


@pytest.mark.parametrize("values, expected", [
    ([14.8, 16.0], ["10", "20"]),
    ([40, 90], ["20", "50", "100"]),
    ([1e-3, 1e3], ["0.001", "0.1", "10", "1000"]),
])
def test_log_ticks(values, expected):
    ticks = _figures().log_ticks(values)
    assert ticks["ticktext"] == expected
    assert ticks["tickvals"][0] <= min(values) and ticks["tickvals"][-1] >= max(values)


def test_splits_from_a_field_instead_of_tags(constructed):
    """A dataset that keeps its split in a string field named ``split``: the panel counts the
    duplicate groups across its values by default, "Splits from" switches to the tags (or
    another field), and the button shows the groups of the chosen splits."""
    from fiftyone_intrinsic.datasets.summary import duplicate_groups, summarize_run

    ids = _sample_ids(constructed)
    split = {ids[i]: "train" for i in range(48)}
    split[ids[11]] = "holdout"  # 10–11 now cross; 8–9 and 12–14 do not (by the field)
    constructed.set_values("split", split, key_field="id")
    try:
        run = PanelRun(constructed, "on_load")
        assert run.state["split_source"] == "split"
        assert ["tags", "Tags train / val / test"] in run.state["split_choices"]
        assert "**1 group** crosses splits (the same image with different values of `split`)" in run.markdown()
        assert dict(run.properties())["split_source"]["on_change"].endswith("choose_split_source")
        clicked = PanelRun(constructed, "show_duplicate_groups", state=run.state, params={"crossing": True})
        (set_view,) = [r for r in clicked.triggers if r.operator_uri == "set_view"]
        assert sorted(fo.DatasetView._build(constructed, set_view.params["view"]).values("id")) == sorted(ids[10:12])

        tags = PanelRun(constructed, "choose_split_source", state=run.state, params={"value": "tags"})
        assert tags.state["split_source"] == "tags"
        assert "**2 groups** cross splits (the same image tagged train, val or test" in tags.markdown()
        again = PanelRun(constructed, "on_change_view", state=tags.state)  # the choice is kept
        assert again.state["split_source"] == "tags"

        summary = summarize_run(constructed, "intrinsic_dimension")
        by_label = duplicate_groups(constructed, summary, "ground_truth")  # a Classification's labels
        assert by_label.crossing == []  # duplicates carry equal labels here
        with pytest.raises(ValueError, match="'nothing' is not a string or Classification field"):
            duplicate_groups(constructed, summary, "nothing")
    finally:
        constructed.delete_sample_field("split")
