"""Reading labelled images from files: MedMNIST ``.npz`` archives, IDX files (MNIST,
Fashion-MNIST) and the listing of image folder trees. A damaged or unexpected file gives a
``ValueError`` that names it and says what was expected.
"""

from __future__ import annotations

import gzip
import pathlib
import zipfile
import zlib

import numpy as np

__all__ = ["MEDMNIST_SPLITS", "read_medmnist", "read_idx", "idx_files", "tree_files"]

MEDMNIST_SPLITS = ("train", "val", "test")


def read_medmnist(path: pathlib.Path):
    """``(images, labels, tags)`` of a MedMNIST file, splits concatenated.

    Raises:
        ValueError: a file that is not a readable zip archive, holds pickled objects, is
            not in the MedMNIST layout, or has multi-label or mismatched splits.
    """
    if not zipfile.is_zipfile(path):  # else numpy would try it as a pickle
        raise ValueError(_unreadable(path, "it is not a zip archive", "a .npz archive written by numpy.savez"))
    try:
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
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError) as error:
        raise ValueError(_unreadable(path, _reason(error), "a .npz archive written by numpy.savez")) from error
    except ValueError as error:
        if "allow_pickle" not in str(error) and "pickled" not in str(error):
            raise
        raise ValueError(
            f"{path} holds Python objects (pickled arrays), which are never loaded; save "
            "the images and labels as plain numeric arrays."
        ) from error
    try:
        return np.concatenate(images), np.concatenate(labels), tags
    except ValueError as error:
        shapes = [a.shape for a in images]
        raise ValueError(f"{path}: the splits' images differ in shape {shapes}; they cannot form one set.") from error


def read_idx(path) -> np.ndarray:
    """Read an IDX file (MNIST format; gzip allowed) into a uint8 array.

    Raises:
        ValueError: an unreadable, truncated or non-IDX file.

    >>> import io, tempfile, os
    >>> raw = bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 8, 9])
    >>> with tempfile.NamedTemporaryFile(suffix="-idx1-ubyte", delete=False) as f:
    ...     _ = f.write(raw)
    >>> read_idx(f.name).tolist(); os.unlink(f.name)
    [7, 8, 9]
    """
    path = pathlib.Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            data = handle.read()
    except (OSError, EOFError, zlib.error) as error:
        raise ValueError(_unreadable(path, _reason(error), "an IDX file (gzip allowed)")) from error
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 8:
        raise ValueError(f"{path} is not an unsigned-byte IDX file (bad magic number).")
    n_dims = data[3]
    if len(data) < 4 + 4 * n_dims:
        raise ValueError(f"{path} is truncated: its header is incomplete.")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(n_dims))
    values = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * n_dims)
    if values.size != int(np.prod(shape)):
        raise ValueError(f"{path}: header says shape {shape} but holds {values.size} values.")
    return values.reshape(shape)


def idx_files(folder: pathlib.Path):
    image_files = sorted(folder.glob("*images-idx3-ubyte*"))
    label_files = sorted(folder.glob("*labels-idx1-ubyte*"))
    if len(image_files) != 1 or len(label_files) != 1:
        raise ValueError(
            f"{folder} must hold exactly one *images-idx3-ubyte and one *labels-idx1-ubyte "
            f"file; found {[p.name for p in image_files + label_files]}."
        )
    return image_files[0], label_files[0]


def tree_files(folder: pathlib.Path):
    """``(images, skipped)``: sorted image files inside the class folders of ``folder``,
    and the other files (hidden, not images by their extension, or not in a class folder)."""
    import fiftyone.core.media as fom

    images, skipped = [], []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        parts = path.relative_to(folder).parts
        hidden = any(part.startswith(".") for part in parts)
        if len(parts) < 2 or hidden or fom.get_media_type(str(path)) != fom.IMAGE:
            skipped.append(path)
        else:
            images.append(path)
    return images, skipped


def _reason(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def _unreadable(path, reason: str, expected: str) -> str:
    return (
        f"Cannot read {path} ({reason}); it is damaged or not {expected}. Check the file, "
        "e.g. download it again."
    )
