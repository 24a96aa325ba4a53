"""Bring labelled image data into FiftyOne: MedMNIST ``.npz`` files, MNIST-style IDX files,
image folder trees (one subfolder per class) and scikit-learn's digits.

Array sources are written as PNG files (FiftyOne samples point at media on disk), under
``images_dir`` or FiftyOne's default dataset folder. Labels go into a Classification field
``ground_truth``; MedMNIST splits become sample tags (``train``, ``val``, ``test``).
"""

from __future__ import annotations

import gzip
import pathlib
import re

import numpy as np

__all__ = [
    "LABEL_FIELD",
    "MEDMNIST_SPLITS",
    "import_source",
    "import_arrays",
    "import_medmnist",
    "import_idx",
    "import_image_folder",
    "import_digits",
    "read_idx",
]

LABEL_FIELD = "ground_truth"
MEDMNIST_SPLITS = ("train", "val", "test")


def import_source(source: str | None, *, name: str | None = None, images_dir=None, overwrite=False):
    """Load a dataset for an audit from whatever ``source`` names.

    Args:
        source: an existing FiftyOne dataset name; a MedMNIST ``.npz`` file; a folder of
            MNIST-style ``*images-idx3-ubyte[.gz]`` / ``*labels-idx1-ubyte[.gz]`` files; an
            image folder tree with one subfolder per class; or ``None`` for scikit-learn's
            digits (ships inside scikit-learn, works offline).
        name (None): dataset name for imported data (default: derived from the source).
        images_dir (None): where PNG files of array sources are written.
        overwrite (False): replace an existing dataset of that name when importing.
    """
    import fiftyone as fo

    if source is None:
        return import_digits(name=name or "sklearn-digits", images_dir=images_dir, overwrite=overwrite)
    path = pathlib.Path(source).expanduser()
    if not path.exists():
        if fo.dataset_exists(source):
            return fo.load_dataset(source)
        raise ValueError(
            f"{source!r} is neither an existing FiftyOne dataset ({fo.list_datasets()[:10]}) "
            "nor a path. Give a dataset name, a MedMNIST .npz, an IDX folder or an image "
            "folder tree with one subfolder per class."
        )
    default_name = _slug(path.stem if path.is_file() else path.name)
    if path.is_file() and path.suffix == ".npz":
        return import_medmnist(path, name=name or default_name, images_dir=images_dir, overwrite=overwrite)
    if path.is_dir() and list(path.glob("*images-idx3-ubyte*")):
        return import_idx(path, name=name or default_name, images_dir=images_dir, overwrite=overwrite)
    if path.is_dir():
        return import_image_folder(path, name=name or default_name, overwrite=overwrite)
    raise ValueError(f"Cannot import {source!r}: expected a .npz file or a folder.")


def import_arrays(
    images: np.ndarray,
    labels,
    *,
    name: str,
    images_dir=None,
    tags=None,
    overwrite: bool = False,
):
    """Write ``(N, H, W)`` or ``(N, H, W, 3)`` uint8 images as PNG files and make a dataset
    with their ``labels`` in ``ground_truth``; ``tags`` is an optional list of N tag lists."""
    import fiftyone as fo
    from PIL import Image

    images = np.asarray(images)
    labels = [str(label) for label in np.asarray(labels).reshape(-1).tolist()]
    if images.ndim not in (3, 4) or images.shape[0] != len(labels):
        raise ValueError(
            f"Expected (N, H, W[, 3]) images with N labels; got images {images.shape} and "
            f"{len(labels)} labels."
        )
    if fo.dataset_exists(name):
        if not overwrite:
            raise ValueError(f"Dataset {name!r} exists; pass overwrite=True or another name.")
        fo.delete_dataset(name)
    folder = pathlib.Path(images_dir or pathlib.Path(fo.config.default_dataset_dir) / "fiftyone_intrinsic" / name)
    folder.mkdir(parents=True, exist_ok=True)
    samples = []
    for index, (image, label) in enumerate(zip(images, labels)):
        path = folder / f"{index:06d}.png"
        Image.fromarray(np.ascontiguousarray(image.astype(np.uint8))).save(path)
        samples.append(
            fo.Sample(
                filepath=str(path),
                tags=list(tags[index]) if tags is not None else [],
                **{LABEL_FIELD: fo.Classification(label=label)},
            )
        )
    dataset = fo.Dataset(name, persistent=True)
    dataset.add_samples(samples, progress=False)
    return dataset


def import_medmnist(path, *, name: str, images_dir=None, overwrite: bool = False):
    """Import a MedMNIST ``.npz`` with the official keys ``{train,val,test}_images`` and
    ``{train,val,test}_labels``; labels of shape ``(N,)`` or ``(N, 1)``; splits become tags.
    Multi-label files (``(N, C)`` labels with C > 1) are refused: K_F needs one label."""
    with np.load(path) as archive:
        keys = set(archive.files)
        splits = [s for s in MEDMNIST_SPLITS if f"{s}_images" in keys and f"{s}_labels" in keys]
        if not splits:
            raise ValueError(
                f"{path} has keys {sorted(keys)}, not the MedMNIST layout "
                "(train_images, train_labels, val_images, ...)."
            )
        images, labels, tags = [], [], []
        for split in splits:
            split_labels = archive[f"{split}_labels"]
            if split_labels.ndim == 2 and split_labels.shape[1] != 1:
                raise ValueError(
                    f"{path}: {split}_labels has shape {split_labels.shape}; multi-label "
                    "MedMNIST sets have no single class per image, which K_F needs."
                )
            images.append(archive[f"{split}_images"])
            labels.append(split_labels.reshape(-1))
            tags += [[split]] * split_labels.shape[0]
    return import_arrays(
        np.concatenate(images), np.concatenate(labels), name=name, images_dir=images_dir,
        tags=tags, overwrite=overwrite,
    )


def read_idx(path) -> np.ndarray:
    """Read an IDX file (MNIST format; gzip allowed) into a uint8 array.

    >>> import io, tempfile, os
    >>> raw = bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 8, 9])
    >>> with tempfile.NamedTemporaryFile(suffix="-idx1-ubyte", delete=False) as f:
    ...     _ = f.write(raw)
    >>> read_idx(f.name).tolist(); os.unlink(f.name)
    [7, 8, 9]
    """
    path = pathlib.Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        data = handle.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 8:
        raise ValueError(f"{path} is not an unsigned-byte IDX file (bad magic number).")
    n_dims = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(n_dims))
    values = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * n_dims)
    if values.size != int(np.prod(shape)):
        raise ValueError(f"{path}: header says shape {shape} but holds {values.size} values.")
    return values.reshape(shape)


def import_idx(folder, *, name: str, images_dir=None, overwrite: bool = False, limit: int | None = None):
    """Import a folder holding one ``*images-idx3-ubyte[.gz]`` and one
    ``*labels-idx1-ubyte[.gz]`` file (MNIST, Fashion-MNIST); ``limit`` keeps the first N."""
    folder = pathlib.Path(folder)
    image_files = sorted(folder.glob("*images-idx3-ubyte*"))
    label_files = sorted(folder.glob("*labels-idx1-ubyte*"))
    if len(image_files) != 1 or len(label_files) != 1:
        raise ValueError(
            f"{folder} must hold exactly one *images-idx3-ubyte and one *labels-idx1-ubyte "
            f"file; found {[p.name for p in image_files + label_files]}."
        )
    images, labels = read_idx(image_files[0])[:limit], read_idx(label_files[0])[:limit]
    return import_arrays(images, labels, name=name, images_dir=images_dir, overwrite=overwrite)


def import_image_folder(folder, *, name: str, overwrite: bool = False):
    """Import an image folder tree with one subfolder per class."""
    import fiftyone as fo

    if fo.dataset_exists(name):
        if not overwrite:
            raise ValueError(f"Dataset {name!r} exists; pass overwrite=True or another name.")
        fo.delete_dataset(name)
    classes = [p for p in pathlib.Path(folder).iterdir() if p.is_dir()]
    if len(classes) < 2:
        raise ValueError(
            f"{folder} has {len(classes)} class subfolder(s); an image folder tree needs one "
            "subfolder per class, at least two."
        )
    dataset = fo.Dataset.from_dir(
        dataset_dir=str(folder),
        dataset_type=fo.types.ImageClassificationDirectoryTree,
        label_field=LABEL_FIELD,
        name=name,
        persistent=True,
        progress=False,
    )
    return dataset


def import_digits(*, name: str = "sklearn-digits", images_dir=None, overwrite: bool = False):
    """scikit-learn's digits (1797 images, 8 x 8, 10 classes), which ship inside the
    scikit-learn package: a real labelled dataset available offline. Intensities 0-16
    are rescaled to 0-255."""
    import fiftyone as fo
    from sklearn.datasets import load_digits

    if fo.dataset_exists(name) and not overwrite:
        return fo.load_dataset(name)
    digits = load_digits()
    images = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)
    return import_arrays(images, digits.target, name=name, images_dir=images_dir, overwrite=True)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-") or "dataset"
