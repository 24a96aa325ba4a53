"""Reference parity on real images: K_F at the paper's preprocessing (224 x 224, [0, 255],
each image divided by its own maximum, then resized; docs/science.md §2), measured through a
FiftyOne dataset, equals K_F of an independent numpy/torch implementation of that order;
the reference in the earlier versions' order (resize, then divide) differs by more than
the tolerance on at least one set, so the comparison can fail."""

import numpy as np
import pytest
import torch

import fiftyone_intrinsic as fi
from fiftyone_intrinsic.core.settings import Preprocessing
from fiftyone_intrinsic.datasets.importers import import_arrays, read_idx

from conftest import shared_file

#: Images per class: balanced binary subsets, as the paper's tasks.
PER_CLASS = 150
TOLERANCE = 0.01
SETS = ("BreastMNIST", "MNIST 0v1", "Fashion-MNIST 0v1")


def _balanced(images, labels, per_class=PER_CLASS):
    """The first ``per_class`` images of classes 0 and 1 (all of a class with fewer), in order."""
    keep = np.sort(np.concatenate([np.flatnonzero(labels == c)[:per_class] for c in (0, 1)]))
    return images[keep], labels[keep]


def _load(name):
    """``(N, 28, 28)`` uint8 images and ``(N,)`` labels of a balanced subset."""
    if name == "BreastMNIST":
        with np.load(shared_file("medical/breastmnist_28.npz")) as archive:
            return _balanced(archive["train_images"], archive["train_labels"].reshape(-1))
    folder = "natural/mnist_t10k" if name == "MNIST 0v1" else "natural/fashion_mnist_t10k"
    images = read_idx(shared_file(f"{folder}/t10k-images-idx3-ubyte.gz"))
    labels = read_idx(shared_file(f"{folder}/t10k-labels-idx1-ubyte.gz"))
    return _balanced(images, labels)


def _resize(images):
    """Bilinear to 224 x 224, half-pixel centres, antialiased (PIL's BILINEAR), float64."""
    return torch.nn.functional.interpolate(
        images[:, None], size=(224, 224), mode="bilinear", antialias=True, align_corners=False
    )[:, 0]


def _per_image_max(images):
    return images / images.amax(dim=(1, 2), keepdim=True) * 255


def _brute_force_k_f(images, labels):
    """1 / the smallest float64 distance between two images of different labels."""
    flat = images.reshape(len(images), -1)
    labels = torch.as_tensor(labels)
    return 1.0 / torch.cdist(flat[labels == 0], flat[labels == 1]).min().item()


@pytest.fixture(scope="module")
def references():
    """Per set: ``(images, labels, K_F in the paper's order, K_F in the earlier order)``."""
    found = {}
    for name in SETS:
        images, labels = _load(name)
        pixels = torch.as_tensor(images, dtype=torch.float64)
        assert torch.all(pixels.amax(dim=(1, 2)) > 0)  # no blank image: the reference divides
        paper = _brute_force_k_f(_resize(_per_image_max(pixels)), labels)
        old = _brute_force_k_f(_per_image_max(_resize(pixels)), labels)
        found[name] = images, labels, paper, old
    return found


@pytest.mark.parametrize("name", SETS)
def test_k_f_at_the_papers_preprocessing_matches_the_reference(name, references, dataset_name, tmp_path):
    images, labels, paper, _ = references[name]
    dataset = import_arrays(images, labels, name=dataset_name, images_dir=tmp_path)
    features = {"preprocessing": Preprocessing.paper(), "num_workers": 1}
    result = fi.compute_label_sharpness(
        dataset, "ground_truth", features=features, device="cpu", progress=lambda f, s: None
    )
    assert result.k_f == pytest.approx(paper, rel=TOLERANCE), (name, result.k_f, paper)


def test_the_order_matters_beyond_the_tolerance(references):
    """Dividing after resizing moves K_F by more than the tolerance on at least one set,
    so the test above tells the two orders apart."""
    shifts = {name: abs(old / paper - 1) for name, (_, _, paper, old) in references.items()}
    assert max(shifts.values()) > TOLERANCE, shifts
