"""The panel's review queue and its weight, through ``foo.execute_operator`` on real runs:
the sharpest pairs side by side as thumbnails, "more", marking pairs reviewed, "review
next", and what the panel sends and reloads on each event."""

import base64
import io
import uuid

import numpy as np
import pytest

import fiftyone as fo

import fiftyone_intrinsic as fi
from fiftyone_intrinsic.datasets.importers import import_arrays
from fiftyone_intrinsic.datasets.schema import SHARPNESS

from panel_run import QUIET, PanelRun

TOP = 7


@pytest.fixture(scope="module")
def pairs_dataset(tmp_path_factory):
    """60 random 8x8 images of three labels with d_data and a K_F run of the 7 sharpest
    pairs."""
    rng = np.random.default_rng(11)
    images = rng.integers(0, 256, (60, 8, 8)).astype(np.uint8)
    name = f"panel-review-{uuid.uuid4().hex[:8]}"
    dataset = import_arrays(images, ["a", "b", "c"] * 20, name=name, images_dir=tmp_path_factory.mktemp("review"))
    try:
        fi.compute_intrinsic_dimension(dataset, k=5, interval_splits=1, **QUIET)
        fi.compute_label_sharpness(dataset, "ground_truth", top=TOP, **QUIET)
        yield dataset
    finally:
        fo.delete_dataset(name)


def _png_size(url):
    from PIL import Image

    assert url.startswith("data:image/png;base64,")
    with Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))) as image:
        return image.size


def _rows(run):
    """Thumbnail rows sent with one event: index → {image name: data URL}."""
    return {int(name.rsplit("_", 1)[1]): value for name, value in run.data.items() if name.startswith("pair_row_")}


def test_the_first_pairs_show_side_by_side_as_small_images(pairs_dataset):
    run = PanelRun(pairs_dataset, "on_load")
    pairs = fi.load_intrinsic_results(pairs_dataset, "label_sharpness").pairs
    rows = _rows(run)
    assert sorted(rows) == list(range(5))  # thumbnails only for the pairs shown
    for index, row in rows.items():
        assert set(row) == {f"image_{index}_a", f"image_{index}_b"}
        assert all(max(_png_size(url)) <= 96 for url in row.values())
    assert _png_size(rows[0]["image_0_a"]) == (96, 96)  # 8 px enlarged 12x, pixels kept sharp
    props = dict(run.properties())
    image = props["image_0_b"]["view"]
    assert image["name"] == "ImageView" and image["params"] == {"index": 0, "side": 1}
    assert image["alt"] == f"{pairs[0]['filepath_j'].rsplit('/', 1)[1]} (label {pairs[0]['label_j']})"
    caption = props["pair_caption_0"]["default"]
    assert caption.startswith(f"**1.** {pairs[0]['distance']:.4g} apart:")
    assert "Review queue: 0 of 7 sharp pairs reviewed" in run.markdown()
    buttons = run.buttons()
    assert {f"review_{i}" for i in range(5)} <= set(buttons) and "review_5" not in buttons
    assert buttons["review_0"]["label"] == "Mark reviewed"
    assert buttons["more_pairs"]["label"] == "Show 2 more pairs"
    assert buttons["review_next"]["label"] == "Review next 25"
    assert len(str(run.state)) < 20_000  # thumbnails live in panel data, not state


def test_more_shows_the_next_pairs_and_an_unchanged_refresh_resends_nothing(pairs_dataset):
    loaded = PanelRun(pairs_dataset, "on_load")
    more = PanelRun(pairs_dataset, "more_pairs", state=loaded.state)
    assert sorted(_rows(more)) == list(range(TOP)) and "more_pairs" not in more.buttons()
    assert "review_6" in more.buttons()
    again = PanelRun(pairs_dataset, "on_change_view", state=more.state)
    assert _rows(again) == {}  # the browser has them already


def test_a_click_on_an_image_shows_the_pair_and_opens_that_image(pairs_dataset):
    loaded = PanelRun(pairs_dataset, "on_load")
    pair = loaded.state["pairs"][2]
    clicked = PanelRun(pairs_dataset, "show_pair", state=loaded.state, params={"index": 2, "side": 1})
    set_view, open_sample = clicked.triggers
    assert fo.DatasetView._build(pairs_dataset, set_view.params["view"]).values("id") == pair
    assert open_sample.operator_uri == "open_sample" and open_sample.params["id"] == pair[1]


def test_marking_a_pair_reviewed_tags_both_samples_and_counts_it(pairs_dataset):
    loaded = PanelRun(pairs_dataset, "on_load")
    pair = loaded.state["pairs"][0]
    marked = PanelRun(pairs_dataset, "mark_pair_reviewed", state=loaded.state, params={"index": 0})
    pairs_dataset.reload()
    assert set(pairs_dataset.match_tags("label_sharpness:reviewed").values("id")) == set(pair)
    assert marked.state["reviewed"][0] is True
    assert "Review queue: 1 of 7 sharp pairs reviewed" in marked.markdown()
    assert marked.buttons()["review_0"]["label"] == "Reviewed ✓ (undo)"
    assert "reload_samples" in [t.operator_uri for t in marked.triggers]

    queue = PanelRun(pairs_dataset, "review_next", state=marked.state)
    (set_view,) = [t for t in queue.triggers if t.operator_uri == "set_view"]
    shown = fo.DatasetView._build(pairs_dataset, set_view.params["view"])
    distance = SHARPNESS.names("label_sharpness").field("distance")
    assert len(shown) == 25 and not set(shown.values("id")) & set(pair)
    assert shown.values(distance) == sorted(shown.values(distance))

    undone = PanelRun(pairs_dataset, "unmark_pair_reviewed", state=marked.state, params={"index": 0})
    pairs_dataset.reload()
    assert "label_sharpness:reviewed" not in pairs_dataset.count_sample_tags()
    assert "Review queue: 0 of 7" in undone.markdown()


def test_the_saved_pairs_view_opens_from_the_panel(pairs_dataset):
    loaded = PanelRun(pairs_dataset, "on_load")
    opened = PanelRun(pairs_dataset, "show_pairs_view", state=loaded.state)
    (set_view,) = [t for t in opened.triggers if t.operator_uri == "set_view"]
    assert set_view.params["name"] == "label_sharpness_sharp_pairs"


def test_a_run_stored_without_pair_ranks_or_review_tag_still_shows_its_pairs(pairs_dataset):
    fi.compute_label_sharpness(pairs_dataset, "ground_truth", run_key="kf_old", top=3, **QUIET)
    try:
        config = fi.get_intrinsic_run_info(pairs_dataset, "kf_old").config
        config.fields = [f for f in config.fields if not f.endswith("_pair_ranks")]
        config.tags = [t for t in config.tags if not t.endswith(":reviewed")]
        config.names = None
        pairs_dataset.update_run_config("kf_old", config)
        pairs_dataset.delete_sample_field("kf_old_pair_ranks")
        run = PanelRun(pairs_dataset, "on_load")
        assert run.state["run_sharpness"] == "kf_old"
        assert "Review queue: 0 of 3 sharp pairs reviewed" in run.markdown() and sorted(_rows(run)) == [0, 1, 2]
        marked = PanelRun(pairs_dataset, "mark_pair_reviewed", state=run.state, params={"index": 1})
        assert "1 of 3" in marked.markdown()
    finally:
        fi.delete_intrinsic_run(pairs_dataset, "kf_old")
    assert "kf_old:reviewed" not in pairs_dataset.count_sample_tags()


def test_summaries_are_read_once_per_run_and_the_database_from_run_documents(pairs_dataset, dataset_name, tmp_path):
    from fiftyone_intrinsic.datasets.summary import comparable_summaries, summarize_dataset

    first, second = summarize_dataset(pairs_dataset), summarize_dataset(pairs_dataset)
    assert second.sharpness is first.sharpness and second.dimension is first.dimension  # not loaded again
    rng = np.random.default_rng(5)
    other = import_arrays(rng.integers(0, 256, (30, 8, 8)).astype(np.uint8), ["a", "b", "c"] * 10,
                          name=dataset_name, images_dir=tmp_path)
    fi.compute_label_sharpness(other, "ground_truth", **QUIET)
    found = {s.name: s for s in comparable_summaries(first)}
    assert found[other.name].sharpness.results.k_f == fi.load_intrinsic_results(other, "label_sharpness").k_f
    again = {s.name: s for s in comparable_summaries(first)}
    assert again[other.name] is found[other.name]  # unchanged runs: no dataset loaded again
    fi.compute_label_sharpness(other, "ground_truth", run_key="kf2", **QUIET)
    newer = {s.name: s for s in comparable_summaries(first)}
    assert newer[other.name] is not found[other.name] and newer[other.name].sharpness.key == "kf2"
