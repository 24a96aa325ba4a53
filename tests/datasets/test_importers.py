"""Importing real labelled image sets into FiftyOne, without altering or destroying data."""

import os
import pathlib

import numpy as np
import pytest

import fiftyone as fo
from conftest import dataset_contents
from fiftyone_intrinsic.datasets.importers import (
    import_arrays,
    import_digits,
    import_idx,
    import_image_folder,
    import_medmnist,
    import_source,
    read_idx,
)
from fiftyone_intrinsic.datasets.provenance import SOURCE_KEY


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


# --------------------------------------------------------------------------- never destroy


def tiny_medmnist(path, n=60, seed=0):
    """A small file in the MedMNIST layout (8 x 8 uint8 images, two classes)."""
    rng = np.random.default_rng(seed)
    np.savez(path, train_images=rng.integers(0, 256, (n, 8, 8), dtype=np.uint8),
             train_labels=rng.integers(0, 2, (n, 1)))
    return pathlib.Path(path)


def png_values(path):
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image)


def test_an_unrelated_dataset_of_that_name_is_refused_and_kept(users_dataset, tmp_path, tmp_images):
    name = users_dataset.name
    source = tiny_medmnist(tmp_path / f"{name}.npz")  # the default name is the file's stem
    before = dataset_contents(name)
    with pytest.raises(ValueError, match=r"already exists \(3 samples\) and was not imported by "
                                         r"fiftyone-intrinsic\..*--name.*--overwrite"):
        import_source(str(source), images_dir=tmp_images)
    assert dataset_contents(name) == before
    assert not tmp_images.exists()


def test_the_same_source_is_reused_and_a_changed_one_refused(tmp_path, dataset_name):
    source = tiny_medmnist(tmp_path / "tiny.npz")
    first = import_source(str(source), name=dataset_name, images_dir=tmp_path / "first")
    ids = first.values("id")
    assert first.info[SOURCE_KEY]["path"] == str(source.resolve())
    again = import_source(str(source), name=dataset_name, images_dir=tmp_path / "second")
    assert again.values("id") == ids and not (tmp_path / "second").exists()  # reused, nothing written

    tiny_medmnist(source, seed=1)
    stat = source.stat()
    os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # changed, whatever the clock
    with pytest.raises(ValueError, match=r"was imported from .*tiny\.npz before it changed.*--overwrite"):
        import_source(str(source), name=dataset_name, images_dir=tmp_path / "second")
    assert fo.load_dataset(dataset_name).values("id") == ids and not (tmp_path / "second").exists()

    replaced = import_source(str(source), name=dataset_name, images_dir=tmp_path / "second", overwrite=True)
    assert len(replaced) == 60 and set(replaced.values("id")).isdisjoint(ids)
    assert len(list((tmp_path / "first").glob("*.png"))) == 60  # the old files stay
    with np.load(source) as archive:
        np.testing.assert_array_equal(png_values(replaced.first().filepath), archive["train_images"][0])


def test_the_digits_default_reuses_its_own_import(dataset_name, tmp_images, tmp_path):
    first = import_source(None, name=dataset_name, images_dir=tmp_images)
    again = import_source(None, name=dataset_name, images_dir=tmp_path / "unused")
    assert len(again) == 1797 and again.values("id") == first.values("id")
    assert not (tmp_path / "unused").exists()


def test_without_images_dir_each_import_gets_a_new_folder(tmp_path, dataset_name, monkeypatch):
    monkeypatch.setattr(fo.config, "default_dataset_dir", str(tmp_path / "fo"))
    source = tiny_medmnist(tmp_path / "tiny.npz", n=4)
    first = import_source(str(source), name=dataset_name)
    folder = tmp_path / "fo" / "fiftyone_intrinsic" / dataset_name
    assert pathlib.Path(first.first().filepath).parent == folder
    old_files = {p.name: p.read_bytes() for p in folder.iterdir()}
    fo.delete_dataset(dataset_name)  # FiftyOne leaves the media on disk
    second = import_source(str(source), name=dataset_name)
    assert pathlib.Path(second.first().filepath).parent == folder.with_name(f"{dataset_name}-2")
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == old_files


def test_existing_files_in_images_dir_are_never_overwritten(tmp_path, dataset_name):
    folder = tmp_path / "png"
    folder.mkdir()
    (folder / "000001.png").write_bytes(b"the user's own file")
    with pytest.raises(ValueError, match=r"already holds 1 of the files .*000001\.png.*never replaced"):
        import_arrays(np.zeros((3, 4, 4), np.uint8), [0, 1, 0], name=dataset_name, images_dir=folder)
    assert [p.name for p in folder.iterdir()] == ["000001.png"]
    assert (folder / "000001.png").read_bytes() == b"the user's own file"
    assert not fo.dataset_exists(dataset_name)


@pytest.mark.parametrize("name", ["../../escape", "a/b", ".hidden", "name with spaces", "x" * 101])
def test_unsafe_dataset_names_are_refused_before_anything_is_written(tmp_path, monkeypatch, name):
    monkeypatch.setattr(fo.config, "default_dataset_dir", str(tmp_path / "fo" / "datasets"))
    source = tiny_medmnist(tmp_path / "tiny.npz", n=4)
    before = set(fo.list_datasets())
    with pytest.raises(ValueError, match="not safe as a folder name.*--name my-dataset"):
        import_source(str(source), name=name)
    assert not (tmp_path / "fo").exists() and set(fo.list_datasets()) == before


def test_a_failed_import_leaves_no_dataset_and_only_the_files_that_were_there(tmp_path, dataset_name):
    """FiftyOne refuses a non-string tag only when the samples are added, after every PNG
    is written: the import removes its files and its dataset, and nothing else."""
    folder = tmp_path / "png"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    before = set(fo.list_datasets())
    with pytest.raises(ValueError, match="tags"):
        import_arrays(np.zeros((4, 4, 4), np.uint8), [0, 1, 0, 1], name=dataset_name, images_dir=folder,
                      tags=[["a"], [5], ["b"], ["c"]])
    assert set(fo.list_datasets()) == before
    assert [p.name for p in folder.iterdir()] == ["notes.txt"]


# --------------------------------------------------------------------------- pixel values


def test_float_images_in_unit_range_are_scaled_not_truncated(tmp_path, dataset_name, rng):
    """astype(uint8) turned every value below 1 into 0 (240 false conflicting duplicates)."""
    bytes_ = rng.integers(0, 256, (6, 5, 5), dtype=np.uint8)
    dataset = import_arrays(bytes_ / 255.0, [0, 1] * 3, name=dataset_name, images_dir=tmp_path / "png")
    for sample, expected in zip(dataset, bytes_):
        np.testing.assert_array_equal(png_values(sample.filepath), expected)


def test_float_images_between_byte_levels_warn_that_they_are_rounded(tmp_path, dataset_name):
    images = np.full((2, 3, 3), 0.5)  # 127.5 byte levels
    with pytest.warns(UserWarning, match=r"8-bit PNGs \(x 255, rounded\); values move by up to 0\.002"):
        dataset = import_arrays(images, [0, 1], name=dataset_name, images_dir=tmp_path / "png")
    assert np.all(png_values(dataset.first().filepath) == 128)


def test_whole_number_images_of_any_type_keep_their_values(tmp_path, dataset_name, rng):
    values = rng.integers(0, 256, (4, 5, 5))
    dataset = import_arrays(values.astype(np.float32), [0, 1] * 2, name=dataset_name, images_dir=tmp_path / "f")
    np.testing.assert_array_equal(png_values(dataset.first().filepath), values[0])


def test_sixteen_bit_grayscale_is_kept_at_sixteen_bits(tmp_path, dataset_name):
    """astype(uint8) wrapped 16-bit values around (256 became 0)."""
    images = (np.arange(3 * 16, dtype=np.uint16) * 1365).reshape(3, 4, 4)
    dataset = import_arrays(images, [0, 1, 0], name=dataset_name, images_dir=tmp_path / "png")
    for sample, expected in zip(dataset, images):
        stored = png_values(sample.filepath)
        assert stored.dtype != np.uint8
        np.testing.assert_array_equal(stored, expected)


def test_a_single_channel_axis_is_accepted(tmp_path, dataset_name, rng):
    images = rng.integers(0, 256, (3, 5, 5, 1), dtype=np.uint8)
    dataset = import_arrays(images, [0, 1, 0], name=dataset_name, images_dir=tmp_path / "png")
    np.testing.assert_array_equal(png_values(dataset.first().filepath), images[0, ..., 0])


@pytest.mark.parametrize(
    "images, message",
    [
        (np.full((2, 3, 3), -0.5), r"range over \[-0\.5, -0\.5\].*floats in \[0, 1\]"),
        (np.full((2, 3, 3), 3.5), r"range over \[3\.5, 3\.5\]"),
        (np.full((2, 3, 3), np.nan), "NaN or infinite"),
        (np.full((2, 3, 3), 300, np.int32), r"int32 images range over \[300, 300\].*uint16"),
        (np.zeros((2, 3, 3, 3), np.uint16), "16-bit RGB images cannot be written"),
        (np.zeros((2, 3, 3), bool), "dtype bool cannot be imported"),
        (np.zeros((2, 3, 3, 4), np.uint8), r"shape \(2, 3, 3, 4\) cannot be imported"),
    ],
)
def test_images_that_cannot_be_kept_are_refused(tmp_path, dataset_name, images, message):
    with pytest.raises(ValueError, match=message):
        import_arrays(images, [0, 1], name=dataset_name, images_dir=tmp_path / "png")
    assert not fo.dataset_exists(dataset_name) and not (tmp_path / "png").exists()


def test_labels_mixing_strings_and_numbers_are_refused(tmp_path, dataset_name):
    with pytest.raises(ValueError, match="mix strings with other types"):
        import_arrays(np.zeros((4, 3, 3), np.uint8), [1, "1", 0, "0"], name=dataset_name, images_dir=tmp_path)


# --------------------------------------------------------------------------- unreadable sources


def test_unreadable_archives_give_a_clear_value_error(tmp_path, dataset_name):
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"this is not a zip archive")
    with pytest.raises(ValueError, match=r"Cannot read .*garbage\.npz \(it is not a zip archive\); it is damaged or not a \.npz"):
        import_source(str(garbage), name=dataset_name)
    whole = tiny_medmnist(tmp_path / "whole.npz").read_bytes()
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(ValueError, match=r"Cannot read .*truncated\.npz"):
        import_source(str(truncated), name=dataset_name)
    damaged = bytearray(whole)
    damaged[len(whole) // 2] ^= 0xFF  # inside the image data: the zip's CRC check fails
    (tmp_path / "damaged.npz").write_bytes(bytes(damaged))
    with pytest.raises(ValueError, match=r"Cannot read .*damaged\.npz \(BadZipFile: Bad CRC-32"):
        import_source(str(tmp_path / "damaged.npz"), name=dataset_name)
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, train_images=np.zeros((2, 3, 3), np.uint8), train_labels=np.array([0, "a"], dtype=object))
    with pytest.raises(ValueError, match="Python objects"):
        import_source(str(pickled), name=dataset_name)
    idx = tmp_path / "idx"
    idx.mkdir()
    (idx / "t10k-images-idx3-ubyte.gz").write_bytes(b"not gzip at all")
    (idx / "t10k-labels-idx1-ubyte.gz").write_bytes(b"not gzip either")
    with pytest.raises(ValueError, match=r"Cannot read .*images-idx3-ubyte\.gz .*IDX file"):
        import_source(str(idx), name=dataset_name)
    assert not fo.dataset_exists(dataset_name)


def test_non_image_files_in_a_folder_tree_are_skipped_with_a_warning(tmp_path, dataset_name, rng):
    """.DS_Store or README.txt in a class folder aborted the import half-way."""
    from PIL import Image

    tree = tmp_path / "tree"
    for label in ("cat", "dog"):
        (tree / label).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(rng.integers(0, 255, (5, 5), dtype=np.uint8)).save(tree / label / f"{i}.png")
    (tree / "cat" / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (tree / "dog" / "README.txt").write_text("photos from the shelter")
    (tree / "LICENSE").write_text("CC BY 4.0")
    with pytest.warns(UserWarning, match=r"Skipped 3 file\(s\).*LICENSE, cat/\.DS_Store, dog/README\.txt"):
        dataset = import_image_folder(tree, name=dataset_name)
    assert dataset.count_values("ground_truth.label") == {"cat": 3, "dog": 3}
    assert len(fo.load_dataset(dataset_name)) == 6


def test_arrays_under_a_taken_name_are_refused_with_what_the_dataset_holds(tmp_path, dataset_name):
    images = np.random.default_rng(0).integers(0, 256, size=(4, 8, 8), dtype=np.uint8)
    first = import_arrays(images, ["a", "b", "a", "b"], name=dataset_name, images_dir=tmp_path / "first")
    assert import_arrays(images, ["a", "b", "a", "b"], name=dataset_name).values("id") == first.values("id")
    with pytest.raises(ValueError) as refused:
        import_arrays(images[::-1], ["a", "b", "a", "b"], name=dataset_name, images_dir=tmp_path / "second")
    message = str(refused.value)
    assert "imported from arrays in memory" in message and "None" not in message and "--overwrite" in message
    assert not (tmp_path / "second").exists()
