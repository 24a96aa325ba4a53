"""Shared test set-up: a private FiftyOne database and the real image data.

FiftyOne reads its configuration from the environment when first imported, so these
variables are set before any test module imports it. The tests use FiftyOne's real
embedded MongoDB, in a database folder of their own so that a user's datasets are never
touched.
"""

import os
import pathlib
import uuid

import numpy as np
import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
#: Data and the script that wrote it (run by hand from a 0.1.0 checkout), not tests.
collect_ignore = ["fixtures"]
SHARED_DATA = REPO.parent / "shared" / "data"

os.environ.setdefault("FIFTYONE_DATABASE_VALIDATION", "false")
os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")
os.environ.setdefault("FIFTYONE_DATABASE_DIR", str(REPO / ".fiftyone-test" / "db"))
os.environ.setdefault("FIFTYONE_DEFAULT_DATASET_DIR", str(REPO / ".fiftyone-test" / "datasets"))
os.environ.setdefault("FIFTYONE_PLUGINS_DIR", str(REPO / ".fiftyone-test" / "plugins"))
os.environ.setdefault("FIFTYONE_INTRINSIC_CACHE", str(REPO / ".fiftyone-test" / "features"))


def _link_plugin():
    """Install this checkout as a plugin the way the README says: a link in the plugins
    folder pointing at the repository root."""
    plugins = pathlib.Path(os.environ["FIFTYONE_PLUGINS_DIR"])
    plugins.mkdir(parents=True, exist_ok=True)
    link = plugins / "fiftyone_intrinsic"
    if not link.exists():
        link.symlink_to(REPO, target_is_directory=True)


_link_plugin()


def shared_file(relative: str) -> pathlib.Path:
    """Path of a file under ../shared/data, or skip the test with the reason."""
    path = SHARED_DATA / relative
    if not path.exists():
        pytest.skip(f"real image data not available: {path} is missing")
    return path


@pytest.fixture
def shared_data():
    """Callable returning a path under ../shared/data, skipping when it is missing."""
    return shared_file


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def dataset_name():
    """A unique dataset name; the dataset is deleted after the test."""
    name = f"test-{uuid.uuid4().hex[:12]}"
    yield name
    import fiftyone as fo

    if fo.dataset_exists(name):
        fo.delete_dataset(name)


@pytest.fixture
def tmp_images(tmp_path):
    return tmp_path / "images"


@pytest.fixture
def users_dataset(dataset_name, tmp_path):
    """A user's own dataset named ``dataset_name``, made with FiftyOne alone (not by this
    library): 3 PNG files of their own and a custom string field ``note``."""
    import fiftyone as fo
    from PIL import Image

    folder = tmp_path / "users-own-images"
    folder.mkdir()
    samples = []
    for i in range(3):
        path = folder / f"mine-{i}.png"
        Image.fromarray(np.full((4, 4), 40 * i, dtype=np.uint8)).save(path)
        samples.append(fo.Sample(filepath=str(path), note=f"my note {i}"))
    dataset = fo.Dataset(dataset_name, persistent=True)
    dataset.add_samples(samples, progress=False)
    return dataset


def dataset_contents(name: str):
    """What a user would miss: sample ids, file paths, the ``note`` field, the fields and
    tags of the dataset ``name`` as stored now."""
    import fiftyone as fo

    dataset = fo.load_dataset(name)
    dataset.reload()
    return (
        dataset.values("id"), dataset.values("filepath"), dataset.values("note"),
        sorted(dataset.get_field_schema().keys()), dataset.count_sample_tags(),
    )


@pytest.fixture(scope="module")
def breast(request, tmp_path_factory):
    """BreastMNIST (all 780 images, tags train/val/test) as a FiftyOne dataset of its own
    for the test module; deleted after it. Skips when the real data is missing."""
    import fiftyone as fo

    from fiftyone_intrinsic.datasets.importers import import_medmnist

    path = shared_file("medical/breastmnist_28.npz")
    name = f"breast-{request.module.__name__}-{uuid.uuid4().hex[:6]}"
    dataset = import_medmnist(path, name=name, images_dir=tmp_path_factory.mktemp("breast"))
    yield dataset
    fo.delete_dataset(name)


@pytest.fixture(scope="module")
def one_torch_thread():
    """Torch on one thread for the module: the tiny convolutions of the learning-curve
    tests lose more to a thread pool than they gain, and on busy cores it oversubscribes
    them (about 7x slower, measured on two loaded cores)."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def snapshot(dataset):
    """Everything a failed run must leave as it was: fields, tags, runs, saved views."""
    dataset.reload()
    return (
        sorted(dataset.get_field_schema().keys()),
        dataset.count_sample_tags(),
        sorted(dataset.list_runs()),
        sorted(dataset.list_saved_views()),
    )
