"""The FiftyOne layer on a real embedded database: stored runs, fields, tags, saved views,
reloading in a fresh process, and bad input that must leave the dataset unchanged."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import fiftyone as fo
import fiftyone_intrinsic as fi
from fiftyone_intrinsic.datasets.schema import DIMENSION, SHARPNESS
from fiftyone_intrinsic.datasets.features import extract_features
from fiftyone_intrinsic.datasets.importers import import_arrays

from conftest import snapshot


@pytest.fixture
def small(dataset_name, tmp_path, rng):
    """40 random 8x8 gray images in two classes, with one conflicting duplicate."""
    images = rng.integers(0, 256, size=(40, 8, 8), dtype=np.uint8)
    images[5] = images[6]
    labels = ["a"] * 20 + ["b"] * 20
    labels[5], labels[6] = "a", "b"
    return import_arrays(images, labels, name=dataset_name, images_dir=tmp_path / "imgs")


def test_label_sharpness_run_matches_array_function(breast):
    result = fi.compute_label_sharpness(breast, "ground_truth", run_key="kf", top=5, device="cpu", progress=lambda f, s: None)
    features = extract_features(breast)
    direct = fi.label_sharpness(features.matrix, breast.values("ground_truth.label"), top=5, device="cpu")
    assert result.k_f == direct.k_f
    assert [(p.i, p.j, p.distance) for p in result.pairs] == [(p.i, p.j, p.distance) for p in direct.pairs]

    names = SHARPNESS.names("kf")
    ids = breast.values("id")
    stored_distance = np.array(breast.values(names.field("distance")), dtype=float)
    np.testing.assert_array_equal(stored_distance, direct.nearest_distance)
    assert breast.values(names.field("neighbor")) == [ids[j] for j in direct.nearest_index]

    stored = fi.load_intrinsic_results(breast, "kf")
    assert stored.k_f == pytest.approx(direct.k_f, rel=1e-12)
    assert [(p["id_i"], p["id_j"]) for p in stored.pairs] == [(ids[p.i], ids[p.j]) for p in direct.pairs]
    # BreastMNIST holds one pair of identical images with different labels
    assert len(direct.conflicting_duplicates) == 1
    assert breast.count_sample_tags()[names.tag("duplicate")] == 2
    flagged = {i for p in direct.pairs for i in (p.i, p.j)}
    assert breast.count_sample_tags()[names.tag("pair")] == len(flagged)

    view = fi.load_sharpest_pairs_view(breast, "kf")
    dup_i, dup_j = direct.conflicting_duplicates[0]
    expected = list(dict.fromkeys([ids[dup_i], ids[dup_j]] + [ids[k] for p in direct.pairs for k in (p.i, p.j)]))
    assert view.values("id") == expected

    config = fi.get_intrinsic_run_info(breast, "kf").config
    assert config.label_field == "ground_truth"
    assert config.features["image_shape"] == [28, 28, 1]
    assert config.features["value_range"] == "unit"
    assert config.settings["top"] == 5

    fi.delete_intrinsic_run(breast, "kf")
    assert "kf" not in breast.list_runs()
    assert not breast.has_sample_field(names.field("distance"))
    assert not breast.has_sample_field(names.field("neighbor"))
    assert names.tag("pair") not in breast.count_sample_tags()
    assert names.view("pairs") not in breast.list_saved_views()


def test_dimension_run_reports_duplicates_and_is_not_collapsed(breast):
    exact = fi.compute_intrinsic_dimension(breast, run_key="id_exact", estimator="twonn", device="cpu", progress=lambda f, s: None)
    allowed = dict(duplicate_tolerance=0.5, max_merged_fraction=0.25, device="cpu", progress=lambda f, s: None)
    merged = fi.compute_intrinsic_dimension(breast, run_key="id_merged", estimator="twonn", **allowed)
    mle = fi.compute_intrinsic_dimension(breast, run_key="id_mle", **allowed)
    # one pair of identical images; near-copies (within half the median nearest-neighbour
    # distance: 1.29 in [0,1] pixel units) collapse TwoNN
    assert exact.n_duplicates == 1 and merged.n_duplicates == 1
    assert exact.dimension < 2.0
    assert merged.n_near_duplicates == mle.n_near_duplicates == 175
    assert merged.dimension > 10 and mle.dimension > 10

    stored = fi.load_intrinsic_results(breast, "id_merged")
    assert stored.dimension == merged.dimension
    assert stored.n_near_duplicates == merged.n_near_duplicates
    assert (stored.duplicate_tolerance, stored.duplicate_distance) == (0.5, merged.duplicate_distance)
    assert fi.get_intrinsic_run_info(breast, "id_merged").config.settings["max_merged_fraction"] == 0.25
    assert len(stored.duplicate_groups) == 1 and len(stored.duplicate_groups[0]) == 2
    local = np.array(breast.values(DIMENSION.names("id_merged").field("local_dimension")), dtype=float)
    np.testing.assert_array_equal(local, np.where(np.isfinite(merged.local), merged.local, np.nan))
    assert sorted(fi.list_intrinsic_runs(breast, method="intrinsic_dimension")) == ["id_exact", "id_merged", "id_mle"]
    for key in ("id_exact", "id_merged", "id_mle"):
        fi.delete_intrinsic_run(breast, key)


@pytest.fixture
def near_copies(dataset_name, tmp_path, rng):
    """48 random 8x8 gray images and 12 near-copies of them (one pixel changed by 1/255)."""
    images = rng.integers(1, 255, size=(60, 8, 8), dtype=np.uint8)
    images[48:] = images[:12]
    images[48:, 0, 0] += 1
    return import_arrays(images, ["a", "b"] * 30, name=dataset_name, images_dir=tmp_path / "imgs")


def test_a_refused_merge_leaves_the_dataset_as_it_was(near_copies):
    """Merging the 12 near-copies is 20% of the samples: refused by default, before
    anything is written, whether the key is new or holds a run being replaced."""
    run = dict(k=5, duplicate_tolerance=0.1, device="cpu", progress=lambda f, s: None)
    before = snapshot(near_copies)
    with pytest.raises(ValueError, match=r"would merge 12 of the 60 distinct samples \(20\.0%\).*max_merged_fraction to 0\.2\."):
        fi.compute_intrinsic_dimension(near_copies, **run)
    assert snapshot(near_copies) == before

    first = fi.compute_intrinsic_dimension(near_copies, k=5, device="cpu", progress=lambda f, s: None)
    field = DIMENSION.names("intrinsic_dimension").field("local_dimension")
    before, local = snapshot(near_copies), near_copies.values(field)
    with pytest.raises(ValueError, match="would merge 12 of the 60"):
        fi.compute_intrinsic_dimension(near_copies, overwrite=True, **run)
    assert snapshot(near_copies) == before and near_copies.values(field) == local
    stored = fi.load_intrinsic_results(near_copies, "intrinsic_dimension")
    assert (stored.dimension, stored.n_near_duplicates) == (first.dimension, 0)

    merged = fi.compute_intrinsic_dimension(near_copies, overwrite=True, max_merged_fraction=0.2, **run)
    assert merged.n_near_duplicates == 12
    stored = fi.load_intrinsic_results(near_copies, "intrinsic_dimension")
    assert (stored.n_near_duplicates, stored.duplicate_tolerance) == (12, 0.1)
    assert 0 < stored.duplicate_distance < 0.1 * 4  # a tenth of a median spacing, in [0, 1] pixels


def test_results_reload_in_a_fresh_process(small):
    small.persistent = True
    result = fi.compute_label_sharpness(small, "ground_truth", device="cpu", progress=lambda f, s: None)
    dim = fi.compute_intrinsic_dimension(small, k=5, device="cpu", progress=lambda f, s: None)
    script = (
        "import json, fiftyone as fo, fiftyone_intrinsic as fi\n"
        f"ds = fo.load_dataset({small.name!r})\n"
        "kf = fi.load_intrinsic_results(ds, 'label_sharpness')\n"
        "d = fi.load_intrinsic_results(ds, 'intrinsic_dimension')\n"
        "info = fi.get_intrinsic_run_info(ds, 'label_sharpness')\n"
        "print(json.dumps(dict(k_f=kf.k_f, dup=kf.conflicting_duplicates, d=d.dimension,"
        " cls=type(info.config).__name__, results=type(kf).__name__,"
        " view=len(fi.load_sharpest_pairs_view(ds)))))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=os.environ.copy(), check=True)
    reloaded = json.loads(out.stdout.strip().splitlines()[-1])
    ids = small.values("id")
    assert reloaded["k_f"] == result.k_f
    assert reloaded["d"] == dim.dimension
    assert reloaded["dup"] == [[ids[5], ids[6]]]
    assert (reloaded["cls"], reloaded["results"]) == ("SharpnessRunConfig", "SharpnessResults")
    assert reloaded["view"] == len(set(ids[k] for p in result.pairs for k in (p.i, p.j)) | {ids[5], ids[6]})


def test_existing_key_needs_overwrite_and_overwrite_replaces_what_was_written(small):
    fi.compute_label_sharpness(small, "ground_truth", top=3, device="cpu", progress=lambda f, s: None)
    before = snapshot(small)
    with pytest.raises(ValueError, match="already exists.*overwrite=True"):
        fi.compute_label_sharpness(small, "ground_truth", device="cpu")
    assert snapshot(small) == before
    fi.compute_label_sharpness(small, "ground_truth", top=1, overwrite=True, device="cpu", progress=lambda f, s: None)
    tag = SHARPNESS.names("label_sharpness").tag("pair")
    assert small.count_sample_tags()[tag] == 2  # the tags of the top-3 run are gone


def bad_calls(dataset):
    """(description, call) pairs that must raise ValueError and change nothing."""
    return [
        ("bad run key", lambda: fi.compute_label_sharpness(dataset, "ground_truth", run_key="1 bad", device="cpu")),
        ("empty view", lambda: fi.compute_label_sharpness(dataset.limit(0), "ground_truth", device="cpu")),
        ("single class", lambda: fi.compute_label_sharpness(dataset.match(fo.ViewField("ground_truth.label") == "a"), "ground_truth", device="cpu")),
        ("no such label field", lambda: fi.compute_label_sharpness(dataset, "nope", device="cpu")),
        ("not a Classification", lambda: fi.compute_label_sharpness(dataset, "note", device="cpu")),
        ("missing labels", lambda: fi.compute_label_sharpness(dataset, "partial", device="cpu")),
        ("N <= k", lambda: fi.compute_intrinsic_dimension(dataset.limit(15), run_key="other", k=20, device="cpu")),
        ("missing embeddings field", lambda: fi.compute_intrinsic_dimension(dataset, run_key="other", features={"embeddings_field": "nope"}, device="cpu")),
        ("NaN in embeddings", lambda: fi.compute_intrinsic_dimension(dataset, run_key="other", features={"embeddings_field": "emb_nan"}, device="cpu")),
        ("embeddings on some samples", lambda: fi.compute_label_sharpness(dataset, "ground_truth", features={"embeddings_field": "emb_some"}, device="cpu")),
        ("cuda without a GPU", lambda: fi.compute_label_sharpness(dataset, "ground_truth", device="cuda")),
        ("existing key", lambda: fi.compute_intrinsic_dimension(dataset, k=5, device="cpu")),
        ("unknown estimator", lambda: fi.compute_intrinsic_dimension(dataset, run_key="other", estimator="pca", device="cpu")),
    ]


def test_bad_input_raises_a_clear_error_and_changes_nothing(small):
    small.add_sample_field("note", fo.StringField)
    small.set_values("note", ["x"] * len(small))
    partial = [fo.Classification(label="a") if i % 3 else None for i in range(len(small))]
    small.set_values("partial", partial)
    vectors = np.random.default_rng(1).normal(size=(len(small), 4))
    with_nan = vectors.copy()
    with_nan[3, 1] = np.nan
    small.set_values("emb_nan", list(with_nan))
    small.set_values("emb_some", [v if i % 2 else None for i, v in enumerate(vectors)])
    fi.compute_intrinsic_dimension(small, k=5, device="cpu", progress=lambda f, s: None)
    small.tag_samples("keep-me")
    small.save_view("mine", small.limit(3))
    before = snapshot(small)
    messages = {}
    for description, call in bad_calls(small):
        if description == "cuda without a GPU":
            import torch

            if torch.cuda.is_available():
                continue
        with pytest.raises(ValueError) as error:
            call()
        messages[description] = str(error.value)
        assert snapshot(small) == before, description
    assert "Classification fields" in messages["not a Classification"]
    assert "14 of 40 samples have no label" in messages["missing labels"]
    assert "K_F is undefined" in messages["single class"]
    assert "no samples" in messages["empty view"]
    assert "lower k" in messages["N <= k"]
    assert "NaN or inf" in messages["NaN in embeddings"]
    assert "vectors for 20 of 40" in messages["embeddings on some samples"]
    assert "device='cpu'" in messages["cuda without a GPU"]
    assert "identifier" in messages["bad run key"]


def test_mixed_image_sizes_need_explicit_preprocessing(dataset_name, tmp_path, rng):
    from PIL import Image

    samples = []
    for i, (shape, mode) in enumerate([((8, 8), "L"), ((12, 10), "L"), ((8, 8, 3), "RGB")] * 4):
        path = tmp_path / f"{i}.png"
        Image.fromarray(rng.integers(0, 256, size=shape, dtype=np.uint8), mode=mode).save(path)
        samples.append(fo.Sample(filepath=str(path), ground_truth=fo.Classification(label=str(i % 2))))
    dataset = fo.Dataset(dataset_name)
    dataset.add_samples(samples, progress=False)
    before = snapshot(dataset)
    with pytest.raises(ValueError, match="different shapes.*size"):
        fi.compute_label_sharpness(dataset, "ground_truth", device="cpu")
    assert snapshot(dataset) == before
    features = {"preprocessing": {"size": 8, "channels": 1}}
    result = fi.compute_label_sharpness(dataset, "ground_truth", features=features, device="cpu", progress=lambda f, s: None)
    assert np.isfinite(result.k_f)
    recorded = fi.get_intrinsic_run_info(dataset, "label_sharpness").config.features
    assert recorded["image_shape"] == [8, 8, 1] and recorded["size"] == 8


def test_unreadable_images_are_listed(small):
    broken = small.first().filepath
    with open(broken, "wb") as handle:
        handle.write(b"not a png")
    missing = small.skip(1).first()
    missing.filepath = "/nonexistent/x.png"
    missing.save()
    before = snapshot(small)
    with pytest.raises(ValueError, match=r"2 of 40 images are missing or unreadable") as error:
        fi.compute_label_sharpness(small, "ground_truth", device="cpu")
    assert broken in str(error.value) and "/nonexistent/x.png" in str(error.value)
    assert snapshot(small) == before


def test_embeddings_field_as_features(small):
    vectors = np.random.default_rng(2).normal(size=(len(small), 6))
    small.set_values("emb", list(vectors))
    result = fi.compute_label_sharpness(small, "ground_truth", features={"embeddings_field": "emb"}, device="cpu", progress=lambda f, s: None)
    # embeddings are read as float32 (half the memory of float64), then measured exactly
    direct = fi.label_sharpness(vectors.astype(np.float32), small.values("ground_truth.label"), device="cpu")
    assert result.k_f == direct.k_f
    assert fi.get_intrinsic_run_info(small, "label_sharpness").config.features["source"] == "embeddings:emb"
