"""The feature store: pixels decoded once, reused while nothing changes, in the smallest
exact dtype, decoded by several processes, shapes refused before decoding."""

import os

import fiftyone as fo
import numpy as np
import pytest
from PIL import Image

from fiftyone_intrinsic.core.settings import Preprocessing
from fiftyone_intrinsic.datasets.feature_store import store_folder
from fiftyone_intrinsic.datasets.features import extract_features
from fiftyone_intrinsic.datasets.settings import FeatureSettings


@pytest.fixture
def digits_dataset(dataset_name, tmp_path):
    from sklearn.datasets import load_digits

    images = (load_digits().images[:150] * 255 / 16).astype(np.uint8)
    paths = []
    for i, image in enumerate(images):
        path = tmp_path / f"{i:03d}.png"
        Image.fromarray(image).save(path)
        paths.append(str(path))
    dataset = fo.Dataset(dataset_name)
    dataset.add_samples([fo.Sample(filepath=p) for p in paths])
    return dataset, images


def _reference(images, preprocessing):
    from fiftyone_intrinsic.core.preprocessing import preprocess_image

    return np.stack([preprocess_image(Image.fromarray(i), preprocessing).reshape(-1) for i in images])


def test_pixels_are_stored_once_and_reused_until_a_file_changes(digits_dataset):
    dataset, images = digits_dataset
    settings = FeatureSettings(preprocessing=Preprocessing(size=16, value_range="byte"), num_workers=1)
    messages = []
    first = extract_features(dataset, settings, progress=lambda f, label: messages.append(label))
    assert first.matrix.dtype == np.uint8  # bytes: the smallest exact dtype
    np.testing.assert_array_equal(first.matrix, _reference(images, settings.preprocessing))
    assert any("Decoded" in m for m in messages)

    messages.clear()
    again = extract_features(dataset, settings, progress=lambda f, label: messages.append(label))
    assert isinstance(again.matrix, np.memmap) and messages == ["Reused the 150 stored images"]
    np.testing.assert_array_equal(again.matrix, first.matrix)

    path = dataset.first().filepath  # a changed file gets a new entry
    Image.fromarray(255 - images[0]).save(path)
    os.utime(path, ns=(os.stat(path).st_atime_ns, os.stat(path).st_mtime_ns + 10**9))
    messages.clear()
    changed = extract_features(dataset, settings, progress=lambda f, label: messages.append(label))
    assert any("Decoded" in m for m in messages)
    assert not np.array_equal(changed.matrix[0], first.matrix[0])
    np.testing.assert_array_equal(changed.matrix[1:], first.matrix[1:])



def test_the_order_of_the_per_image_maximum_has_entries_of_its_own(digits_dataset):
    """Pixels stored in the earlier order (maximum after resizing) are never read for the
    paper's order, and the two fingerprints differ."""
    dataset, images = digits_dataset
    paper = Preprocessing(size=16, value_range="byte", normalize_max=True)
    old = paper.model_copy(update={"max_before_resize": False})
    before = extract_features(dataset, FeatureSettings(preprocessing=old, num_workers=1))
    messages = []
    after = extract_features(dataset, FeatureSettings(preprocessing=paper, num_workers=1),
                             progress=lambda f, label: messages.append(label))
    assert any("Decoded" in m for m in messages)
    np.testing.assert_allclose(after.matrix, _reference(images, paper), rtol=1e-6)
    assert not np.allclose(after.matrix, before.matrix)
    assert after.fingerprint()["max_before_resize"] is True and before.fingerprint()["max_before_resize"] is False

def test_unit_range_is_float32_and_workers_agree(digits_dataset):
    dataset, images = digits_dataset
    one = extract_features(dataset, FeatureSettings(preprocessing=Preprocessing(size=12), num_workers=1, use_store=False))
    two = extract_features(dataset, FeatureSettings(preprocessing=Preprocessing(size=12), num_workers=2, use_store=False))
    assert one.matrix.dtype == np.float32  # never float64
    np.testing.assert_array_equal(one.matrix, two.matrix)
    np.testing.assert_array_equal(one.matrix, _reference(images, Preprocessing(size=12)).astype(np.float32))


def test_different_shapes_are_refused_from_the_headers(dataset_name, tmp_path):
    paths = []
    for i, size in enumerate([8, 8, 8, 300]):
        path = tmp_path / f"{i}.png"
        Image.fromarray(np.zeros((size, size), dtype=np.uint8)).save(path)
        paths.append(str(path))
    dataset = fo.Dataset(dataset_name)
    dataset.add_samples([fo.Sample(filepath=p) for p in paths])
    before = set(os.listdir(store_folder())) if store_folder().exists() else set()
    with pytest.raises(ValueError, match=r"2 different shapes .*\(300, 300, 1\)"):
        extract_features(dataset, FeatureSettings())
    after = set(os.listdir(store_folder())) if store_folder().exists() else set()
    assert after == before  # nothing decoded, nothing stored


def test_an_unreadable_file_leaves_no_entry(digits_dataset):
    dataset, _ = digits_dataset
    broken = dataset.skip(3).first().filepath
    with open(broken, "wb") as handle:
        handle.write(b"not an image")
    before = set(os.listdir(store_folder())) if store_folder().exists() else set()
    with pytest.raises(ValueError, match=r"1 of 150 images are missing or unreadable"):
        extract_features(dataset, FeatureSettings(preprocessing=Preprocessing(size=8), num_workers=1))
    assert set(os.listdir(store_folder())) == before


def _entry_bytes(folder, key):
    return (folder / f"{key}.npy").stat().st_size + (folder / f"{key}.json").stat().st_size


def test_the_least_recently_used_entries_are_evicted_beyond_the_size_limit(digits_dataset, tmp_path, monkeypatch):
    """Reading an entry marks it used; a new entry evicts the least recently used others
    until the store fits its limit, and is itself always kept."""
    from fiftyone_intrinsic.datasets import feature_store

    monkeypatch.setenv("FIFTYONE_INTRINSIC_CACHE", str(tmp_path / "store"))
    dataset, _ = digits_dataset
    small, medium, large = (FeatureSettings(preprocessing=Preprocessing(size=n, value_range="byte"), num_workers=1)
                            for n in (8, 10, 12))
    first = extract_features(dataset, small)
    second = extract_features(dataset, medium)
    folder = store_folder()
    keys = {}
    keys["small"] = feature_store.store_key(*_ids_and_paths(dataset), small.preprocessing)
    keys["medium"] = feature_store.store_key(*_ids_and_paths(dataset), medium.preprocessing)
    assert {p.stem for p in folder.glob("*.json")} == {keys["small"], keys["medium"]}
    now = os.stat(folder).st_mtime
    os.utime(folder / f"{keys['small']}.json", (now - 200, now - 200))  # small: used longest ago
    os.utime(folder / f"{keys['medium']}.json", (now - 100, now - 100))
    extract_features(dataset, small)  # ... until read again: now medium is the oldest
    room = _entry_bytes(folder, keys["small"]) + 150 * 144 + 4096  # small and the large entry fit
    monkeypatch.setenv("FIFTYONE_INTRINSIC_CACHE_MAX_GB", str(room / 2**30))
    extract_features(dataset, large)
    keys["large"] = feature_store.store_key(*_ids_and_paths(dataset), large.preprocessing)
    assert {p.stem for p in folder.glob("*.json")} == {keys["small"], keys["large"]}
    assert not (folder / f"{keys['medium']}.npy").exists()
    np.testing.assert_array_equal(first.matrix, extract_features(dataset, small).matrix)  # still readable
    messages = []
    again = extract_features(dataset, medium, progress=lambda f, label: messages.append(label))
    assert any("Decoded" in m for m in messages)  # evicted: decoded again
    np.testing.assert_array_equal(again.matrix, second.matrix)

    monkeypatch.setenv("FIFTYONE_INTRINSIC_CACHE_MAX_GB", "0")  # only the entry just written stays
    extract_features(dataset, FeatureSettings(preprocessing=Preprocessing(size=6, value_range="byte"), num_workers=1))
    assert len(list(folder.glob("*.json"))) == 1 and len(list(folder.glob("*.npy"))) == 1


def _ids_and_paths(dataset):
    return [str(i) for i in dataset.values("id")], dataset.values("filepath")


def test_partial_entries_of_dead_processes_are_removed_after_a_day(tmp_path, monkeypatch):
    import subprocess
    import sys

    from fiftyone_intrinsic.datasets.feature_store import evict

    monkeypatch.setenv("FIFTYONE_INTRINSIC_CACHE", str(tmp_path / "store"))
    folder = store_folder()
    folder.mkdir(parents=True)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    old = os.stat(folder).st_mtime - 2 * 24 * 3600
    stale = folder / f"{'a' * 40}.{dead_pid}-0123abcd.partial.npy"
    recent = folder / f"{'b' * 40}.{dead_pid}-0123abcd.partial.npy"
    running = folder / f"{'c' * 40}.{os.getpid()}-0123abcd.partial.npy"
    for path in (stale, recent, running):
        path.write_bytes(b"partial")
    for path in (stale, running):
        os.utime(path, (old, old))
    assert evict() == []
    assert not stale.exists() and recent.exists() and running.exists()


def test_a_bad_size_limit_is_refused_before_decoding(digits_dataset, tmp_path, monkeypatch):
    monkeypatch.setenv("FIFTYONE_INTRINSIC_CACHE", str(tmp_path / "store"))
    monkeypatch.setenv("FIFTYONE_INTRINSIC_CACHE_MAX_GB", "fifty")
    dataset, _ = digits_dataset
    with pytest.raises(ValueError, match=r"FIFTYONE_INTRINSIC_CACHE_MAX_GB='fifty' is not a size in GiB"):
        extract_features(dataset, FeatureSettings(preprocessing=Preprocessing(size=8), num_workers=1))
    assert not store_folder().exists() or not list(store_folder().iterdir())


def test_eviction_removes_only_the_stores_own_files(digits_dataset, tmp_path, monkeypatch):
    """A store folder may hold files of the user's: only entries named like the store's
    (a 40-hex key) and its partial entries are ever removed."""
    monkeypatch.setenv("FIFTYONE_INTRINSIC_CACHE", str(tmp_path / "store"))
    monkeypatch.setenv("FIFTYONE_INTRINSIC_CACHE_MAX_GB", "0")
    folder = store_folder()
    folder.mkdir(parents=True)
    yours = [folder / "notes.json", folder / "notes.npy", folder / "data.partial.npy"]
    for path in yours:
        path.write_bytes(b"the user's")
    old = os.stat(folder).st_mtime - 2 * 24 * 3600
    os.utime(folder / "data.partial.npy", (old, old))
    dataset, _ = digits_dataset
    extract_features(dataset, FeatureSettings(preprocessing=Preprocessing(size=8, value_range="byte"), num_workers=1))
    extract_features(dataset, FeatureSettings(preprocessing=Preprocessing(size=6, value_range="byte"), num_workers=1))
    assert all(path.read_bytes() == b"the user's" for path in yours)
    assert len([p for p in folder.glob("*.npy") if p not in yours]) == 1  # the store's own: the last entry only
