"""Importing real labelled image sets into FiftyOne."""

import numpy as np
import pytest

import fiftyone as fo
from fiftyone_intrinsic.datasets.importers import (
    import_arrays,
    import_digits,
    import_idx,
    import_image_folder,
    import_medmnist,
    import_source,
    read_idx,
)


def test_medmnist_splits_labels_and_pixels(shared_data, dataset_name, tmp_images):
    path = shared_data("medical/breastmnist_28.npz")
    dataset = import_medmnist(path, name=dataset_name, images_dir=tmp_images)
    assert len(dataset) == 780
    assert dataset.count_sample_tags() == {"train": 546, "val": 78, "test": 156}
    with np.load(path) as archive:
        first = archive["train_images"][0]
        n_malignant = sum(int((archive[f"{s}_labels"].reshape(-1) == 0).sum()) for s in ("train", "val", "test"))
    assert dataset.count_values("ground_truth.label")["0"] == n_malignant
    from PIL import Image

    np.testing.assert_array_equal(np.asarray(Image.open(dataset.first().filepath)), first)


def test_pneumoniamnist_labels_of_shape_n_by_1(shared_data, dataset_name, tmp_images):
    dataset = import_medmnist(shared_data("medical/pneumoniamnist_28.npz"), name=dataset_name, images_dir=tmp_images)
    assert len(dataset) == 5856
    assert set(dataset.distinct("ground_truth.label")) == {"0", "1"}


def test_idx_folder(shared_data, dataset_name, tmp_images):
    folder = shared_data("natural/mnist_t10k")
    images = read_idx(folder / "t10k-images-idx3-ubyte.gz")
    labels = read_idx(folder / "t10k-labels-idx1-ubyte.gz")
    assert images.shape == (10000, 28, 28) and labels.shape == (10000,)
    dataset = import_idx(folder, name=dataset_name, images_dir=tmp_images, limit=300)
    assert len(dataset) == 300
    assert dataset.values("ground_truth.label") == [str(v) for v in labels[:300]]


def test_image_folder_tree(tmp_path, dataset_name, rng):
    from PIL import Image

    for label in ("cat", "dog"):
        (tmp_path / label).mkdir()
        for i in range(3):
            Image.fromarray(rng.integers(0, 255, (5, 5), dtype=np.uint8)).save(tmp_path / label / f"{i}.png")
    dataset = import_image_folder(tmp_path, name=dataset_name)
    assert dataset.count_values("ground_truth.label") == {"cat": 3, "dog": 3}


def test_digits_ship_with_scikit_learn(dataset_name, tmp_images):
    dataset = import_digits(name=dataset_name, images_dir=tmp_images)
    assert len(dataset) == 1797 and len(dataset.distinct("ground_truth.label")) == 10


def test_bad_sources_say_what_to_give(tmp_path, dataset_name):
    bad = tmp_path / "bad.npz"
    np.savez(bad, x=np.zeros(3))
    with pytest.raises(ValueError, match="MedMNIST layout"):
        import_medmnist(bad, name=dataset_name)
    with pytest.raises(ValueError, match="neither an existing FiftyOne dataset"):
        import_source(str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="with N labels"):
        import_arrays(np.zeros((3, 4, 4), np.uint8), [0, 1], name=dataset_name, images_dir=tmp_path)
    multi = tmp_path / "multi.npz"
    np.savez(multi, train_images=np.zeros((2, 4, 4), np.uint8), train_labels=np.zeros((2, 3)))
    with pytest.raises(ValueError, match="multi-label"):
        import_medmnist(multi, name=dataset_name)
    assert not fo.dataset_exists(dataset_name)
