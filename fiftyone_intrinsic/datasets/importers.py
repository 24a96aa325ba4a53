"""Bring labelled image data into FiftyOne: MedMNIST ``.npz`` files, MNIST-style IDX files,
image folder trees (one subfolder per class) and scikit-learn's digits.

Array sources are written as PNG files (FiftyOne samples point at media on disk), under
``images_dir`` or a new folder under FiftyOne's default dataset folder; pixel values are
kept or converted as :mod:`.image_files` says, never silently. Labels go into a
Classification field ``ground_truth``; MedMNIST splits become sample tags (``train``,
``val``, ``test``). Every import records its source (:mod:`.provenance`): importing the
same source under the same name again reuses the dataset, and a dataset of that name
with any other origin is refused unless ``overwrite`` is asked.
"""

from __future__ import annotations

import hashlib
import pathlib
import re
import warnings
from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..core.labels import check_label_types
from .image_files import as_png_arrays, claim_folder, write_pngs
from .provenance import (
    IMPORT_FORMAT, check_dataset_name, create_dataset, decide_import, file_fingerprint, files_fingerprint,
)
from .readers import MEDMNIST_SPLITS, idx_files, read_idx, read_medmnist, tree_files

__all__ = [
    "LABEL_FIELD",
    "MEDMNIST_SPLITS",
    "SourcePlan",
    "plan_source",
    "carry_out",
    "import_source",
    "import_arrays",
    "import_medmnist",
    "import_idx",
    "import_image_folder",
    "import_digits",
    "read_idx",
]

LABEL_FIELD = "ground_truth"
DIGITS_NAME = "sklearn-digits"


@dataclass(frozen=True)
class SourcePlan:
    """What :func:`import_source` will do with a source, decided before anything is written.

    Attributes:
        kind: ``"dataset"`` (an existing FiftyOne dataset named by the source),
            ``"medmnist"``, ``"idx"``, ``"image_folder"`` or ``"digits"``.
        name: the dataset that will be audited.
        action: ``"open"`` (an existing dataset, used as it is), ``"reuse"`` (imported
            earlier from this very source), ``"import"`` or ``"replace"`` (``overwrite``).
        path: the source file or folder (``None`` for a dataset name or the digits).
    """

    kind: str
    name: str
    action: str
    path: Optional[pathlib.Path] = None

    @property
    def imports(self) -> bool:
        """Whether carrying it out writes a new dataset."""
        return self.action in ("import", "replace")


def plan_source(source: str | None, *, name: str | None = None, overwrite: bool = False) -> SourcePlan:
    """Decide what ``source`` is and what importing it would do; reads and writes no data.

    Raises:
        ValueError: a source that is neither a dataset nor an importable path, an unsafe
            ``name``, or a dataset of that name that this source did not create (without
            ``overwrite``).
    """
    import fiftyone as fo

    if source is None:
        name = name or DIGITS_NAME
        return SourcePlan("digits", name, decide_import(name, _digits_fingerprint(), overwrite))
    path = pathlib.Path(source).expanduser()
    if not path.exists():
        if fo.dataset_exists(source):
            return SourcePlan("dataset", source, "open")
        raise ValueError(
            f"{source!r} is neither an existing FiftyOne dataset ({fo.list_datasets()[:10]}) "
            "nor a path. Give a dataset name, a MedMNIST .npz, an IDX folder or an image "
            "folder tree with one subfolder per class."
        )
    name = name or _slug(path.stem if path.is_file() else path.name)
    if path.is_file() and path.suffix == ".npz":
        kind, fingerprint = "medmnist", file_fingerprint("medmnist", path)
    elif path.is_dir() and list(path.glob("*images-idx3-ubyte*")):
        kind, fingerprint = "idx", _idx_fingerprint(path, None)
    elif path.is_dir():
        kind, fingerprint = "image_folder", _tree_fingerprint(path, tree_files(path)[0])
    else:
        raise ValueError(f"Cannot import {source!r}: expected a .npz file or a folder.")
    return SourcePlan(kind, name, decide_import(name, fingerprint, overwrite), path)


def import_source(source: str | None, *, name: str | None = None, images_dir=None, overwrite=False):
    """Load a dataset for an audit from whatever ``source`` names.

    Args:
        source: an existing FiftyOne dataset name; a MedMNIST ``.npz`` file; a folder of
            MNIST-style ``*images-idx3-ubyte[.gz]`` / ``*labels-idx1-ubyte[.gz]`` files; an
            image folder tree with one subfolder per class; or ``None`` for scikit-learn's
            digits (ships inside scikit-learn, works offline).
        name (None): dataset name for imported data (default: derived from the source);
            letters, digits, ``_``, ``-`` and ``.`` only (it names the image folder too).
        images_dir (None): where PNG files of array sources are written (default: a new
            folder under FiftyOne's dataset folder); files there are never replaced.
        overwrite (False): replace a dataset of that name that this source did not
            create (it is deleted once the new import is complete). Without it, a dataset
            imported earlier from this very source is reused, and any other is refused.
    """
    plan = plan_source(source, name=name, overwrite=overwrite)
    return carry_out(plan, images_dir=images_dir, overwrite=overwrite)


def carry_out(plan: SourcePlan, *, images_dir=None, overwrite: bool = False):
    """The dataset of a :class:`SourcePlan`: opened, reused or imported."""
    import fiftyone as fo

    if plan.kind == "dataset":
        return fo.load_dataset(plan.name)
    if plan.kind == "digits":
        return import_digits(name=plan.name, images_dir=images_dir, overwrite=overwrite)
    importer = {"medmnist": import_medmnist, "idx": import_idx}.get(plan.kind)
    if importer is not None:
        return importer(plan.path, name=plan.name, images_dir=images_dir, overwrite=overwrite)
    return import_image_folder(plan.path, name=plan.name, overwrite=overwrite)


def import_arrays(
    images: np.ndarray,
    labels,
    *,
    name: str,
    images_dir=None,
    tags=None,
    overwrite: bool = False,
):
    """Write ``(N, H, W)``, ``(N, H, W, 1)`` or ``(N, H, W, 3)`` images as PNG files and
    make a dataset with their ``labels`` in ``ground_truth``; ``tags`` is an optional list
    of N tag lists. Pixel values follow :mod:`.image_files` (uint8 kept, uint16 grayscale
    kept at 16 bits, floats in [0, 1] scaled by 255, the rest refused). The same arrays
    imported again under the same name reuse the dataset."""
    images, labels = _checked_arrays(images, labels)
    digest = hashlib.sha256()
    for part in (str(images.shape), str(images.dtype), images.tobytes(), repr(labels), repr(tags)):
        digest.update(part.encode() if isinstance(part, str) else part)
    fingerprint = {"kind": "arrays", "format": IMPORT_FORMAT, "sha256": digest.hexdigest(), "settings": {}}
    return _import_pngs(images, labels, tags, name, images_dir, overwrite, fingerprint)


def _checked_arrays(images, labels):
    images = as_png_arrays(images)  # refuses what cannot be kept, before anything is written
    if not isinstance(labels, np.ndarray):
        labels = list(labels)
        check_label_types(labels)  # str() below would make 1 and "1" one class
    labels = [str(label) for label in np.asarray(labels).reshape(-1).tolist()]
    if images.shape[0] != len(labels):
        raise ValueError(
            f"Expected (N, H, W[, 3]) images with N labels; got images {images.shape} and "
            f"{len(labels)} labels."
        )
    return images, labels


def _import_pngs(images, labels, tags, name, images_dir, overwrite, fingerprint):
    """Images (checked) and string labels into a dataset ``name``, reused when its
    recorded ``fingerprint`` matches (:func:`~.provenance.create_dataset`)."""
    import fiftyone as fo

    check_dataset_name(name)
    if tags is not None and len(tags) != len(labels):
        raise ValueError(f"Expected one tag list per image: got {len(tags)} for {len(labels)} images.")

    def fill(dataset, written):
        base = pathlib.Path(fo.config.default_dataset_dir) / "fiftyone_intrinsic"
        folder = claim_folder(images_dir, base, name, written)
        paths = write_pngs(images, folder, written)
        samples = [
            fo.Sample(
                filepath=path,
                tags=list(tags[index]) if tags is not None else [],
                **{LABEL_FIELD: fo.Classification(label=label)},
            )
            for index, (path, label) in enumerate(zip(paths, labels))
        ]
        dataset.add_samples(samples, progress=False)

    return create_dataset(name, fingerprint, overwrite, fill)


def import_medmnist(path, *, name: str, images_dir=None, overwrite: bool = False):
    """Import a MedMNIST ``.npz`` with the official keys ``{train,val,test}_images`` and
    ``{train,val,test}_labels``; labels of shape ``(N,)`` or ``(N, 1)``; splits become tags.
    Multi-label files (``(N, C)`` labels with C > 1) are refused: K_F needs one label.
    Importing the same unchanged file under the same name again reuses the dataset."""
    path = pathlib.Path(path)
    check_dataset_name(name)
    fingerprint = file_fingerprint("medmnist", path)
    if decide_import(name, fingerprint, overwrite) == "reuse":
        return _load(name)
    images, labels, tags = read_medmnist(path)
    images, labels = _checked_arrays(images, labels)
    return _import_pngs(images, labels, tags, name, images_dir, overwrite, fingerprint)


def import_idx(folder, *, name: str, images_dir=None, overwrite: bool = False, limit: int | None = None):
    """Import a folder holding one ``*images-idx3-ubyte[.gz]`` and one
    ``*labels-idx1-ubyte[.gz]`` file (MNIST, Fashion-MNIST); ``limit`` keeps the first N."""
    folder = pathlib.Path(folder)
    check_dataset_name(name)
    image_file, label_file = idx_files(folder)
    fingerprint = _idx_fingerprint(folder, limit)
    if decide_import(name, fingerprint, overwrite) == "reuse":
        return _load(name)
    images, labels = read_idx(image_file)[:limit], read_idx(label_file)[:limit]
    images, labels = _checked_arrays(images, labels)
    return _import_pngs(images, labels, None, name, images_dir, overwrite, fingerprint)


def _idx_fingerprint(folder: pathlib.Path, limit) -> dict:
    return files_fingerprint("idx", folder, list(idx_files(folder)), limit=limit)


def import_image_folder(folder, *, name: str, overwrite: bool = False):
    """Import an image folder tree with one subfolder per class (files in deeper folders
    belong to their top folder's class). Files that are not images by their extension,
    hidden files and files outside a class folder (``.DS_Store``, ``README.txt``) are
    skipped with a warning. The images are used where they are; nothing is written."""
    import fiftyone as fo

    folder = pathlib.Path(folder)
    check_dataset_name(name)
    images, skipped = tree_files(folder)
    fingerprint = _tree_fingerprint(folder, images)
    if decide_import(name, fingerprint, overwrite) == "reuse":
        return _load(name)
    classes = sorted({p.relative_to(folder).parts[0] for p in images})
    if len(classes) < 2:
        raise ValueError(
            f"{folder} has {len(classes)} class subfolder(s) holding images; an image folder "
            "tree needs one subfolder per class, at least two."
        )
    if skipped:
        listed = ", ".join(str(p.relative_to(folder)) for p in skipped[:5])
        warnings.warn(
            f"Skipped {len(skipped)} file(s) of {folder} that are not images in a class "
            f"folder: {listed}{', ...' if len(skipped) > 5 else ''}.",
            UserWarning,
            stacklevel=2,
        )

    def fill(dataset, written):
        samples = [
            fo.Sample(
                filepath=str(path.absolute()),
                **{LABEL_FIELD: fo.Classification(label=path.relative_to(folder).parts[0])},
            )
            for path in images
        ]
        dataset.add_samples(samples, progress=False)
        dataset.info["classes"] = classes

    return create_dataset(name, fingerprint, overwrite, fill)


def _tree_fingerprint(folder: pathlib.Path, images) -> dict:
    return files_fingerprint("image_folder", folder, images)


def import_digits(*, name: str = DIGITS_NAME, images_dir=None, overwrite: bool = False):
    """scikit-learn's digits (1797 images, 8 x 8, 10 classes), which ship inside the
    scikit-learn package: a real labelled dataset available offline. Intensities 0-16
    are rescaled to 0-255. A dataset ``name`` imported from them earlier is reused."""
    check_dataset_name(name)
    fingerprint = _digits_fingerprint()
    if decide_import(name, fingerprint, overwrite) == "reuse":
        return _load(name)
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)
    images, labels = _checked_arrays(images, digits.target)
    return _import_pngs(images, labels, None, name, images_dir, overwrite, fingerprint)


def _digits_fingerprint() -> dict:
    return {"kind": "sklearn_digits", "format": IMPORT_FORMAT, "settings": {}}


def _load(name: str):
    import fiftyone as fo

    return fo.load_dataset(name)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-_") or "dataset"
