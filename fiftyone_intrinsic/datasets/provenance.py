"""Where an imported dataset came from, and the one way an import creates a dataset.

Every import records a fingerprint of its source in ``dataset.info`` under
:data:`SOURCE_KEY`. A later import of the same source under the same name reuses that
dataset; a dataset of that name with another (or no) record is never touched unless
``overwrite`` is asked, and then it is deleted only once the new import is complete.
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import re
import uuid
from typing import Callable

from .image_files import WrittenFiles

__all__ = [
    "SOURCE_KEY",
    "IMAGES_KEY",
    "IMPORT_FORMAT",
    "check_dataset_name",
    "file_fingerprint",
    "files_fingerprint",
    "decide_import",
    "create_dataset",
]

#: ``dataset.info`` key of the source fingerprint.
SOURCE_KEY = "fiftyone_intrinsic_source"
#: ``dataset.info`` key of the folder the import wrote its PNG files to (array sources).
IMAGES_KEY = "fiftyone_intrinsic_images"
#: Version of what the importers write; a change makes earlier imports differ from new ones.
IMPORT_FORMAT = 2

_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")


def check_dataset_name(name) -> str:
    """``name`` if it is safe as a dataset name and as a folder name, else a ValueError.

    >>> check_dataset_name("breastmnist_28")
    'breastmnist_28'
    """
    if not isinstance(name, str) or not _SAFE_NAME.fullmatch(name):
        raise ValueError(
            f"Dataset name {name!r} is not safe as a folder name (the imported PNG files are "
            "written to a folder of that name). Use 1-100 letters, digits, '_', '-' or '.', "
            "starting with a letter or digit, e.g. --name my-dataset."
        )
    return name


def file_fingerprint(kind: str, path, **settings) -> dict:
    """The fingerprint of one source file: its resolved path, size and modification time
    (ns), the importer ``kind`` and the importer ``settings`` that change what it imports."""
    path = pathlib.Path(path).resolve()
    stat = path.stat()
    return {
        "kind": kind, "format": IMPORT_FORMAT, "path": str(path),
        "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "settings": settings,
    }


def files_fingerprint(kind: str, root, files, **settings) -> dict:
    """The fingerprint of a folder source: its resolved path, the number of ``files``
    (paths under ``root``) and a SHA-256 of their sorted relative paths, sizes and
    modification times (ns), with the importer ``kind`` and ``settings``."""
    root = pathlib.Path(root).resolve()
    digest = hashlib.sha256()
    for path in sorted(pathlib.Path(p).resolve() for p in files):
        stat = path.stat()
        digest.update(f"{path.relative_to(root).as_posix()}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return {
        "kind": kind, "format": IMPORT_FORMAT, "path": str(root), "n_files": len(files),
        "sha256": digest.hexdigest(), "settings": settings,
    }


def decide_import(name: str, fingerprint: dict, overwrite: bool) -> str:
    """``"import"`` (no dataset ``name``), ``"reuse"`` (one imported from this very
    source, and no ``overwrite``) or ``"replace"`` (``overwrite``).

    Raises:
        ValueError: a dataset ``name`` exists, was not imported from this source as it is
            now, and ``overwrite`` is off; the message says what it holds and what to pass.
    """
    import fiftyone as fo

    check_dataset_name(name)
    if not fo.dataset_exists(name):
        return "import"
    if overwrite:
        return "replace"
    dataset = fo.load_dataset(name)
    recorded = dataset.info.get(SOURCE_KEY)
    if recorded == fingerprint:
        return "reuse"
    if not isinstance(recorded, dict):
        origin = "was not imported by fiftyone-intrinsic"
    elif recorded.get("path") is None:  # imported from arrays in memory (import_arrays)
        origin = f"holds other images: it was imported from {recorded.get('kind', 'another source')} in memory"
    elif recorded.get("path") == fingerprint.get("path"):
        origin = (f"was imported from {recorded.get('path')} before it changed (or with "
                  "other import settings or an older version of the importer)")
    else:
        origin = f"was imported from {recorded['path']}"
    raise ValueError(
        f"A FiftyOne dataset named {name!r} already exists ({len(dataset)} samples) and "
        f"{origin}. Nothing was imported or changed. Choose another dataset name with "
        f"--name (name=), or pass --overwrite (overwrite=True) to replace {name!r}: that "
        "deletes it with its samples, fields and runs once the new import is complete."
    )


def create_dataset(name: str, fingerprint: dict, overwrite: bool, fill: Callable):
    """The dataset ``name`` for a source with ``fingerprint``: reused, or made by ``fill``.

    ``fill(dataset, written)`` adds the samples to a new, non-persistent dataset of a
    temporary name, recording any file or folder it creates in ``written``
    (:class:`~.image_files.WrittenFiles`). Only once it returns is the fingerprint
    recorded, the old dataset deleted (``overwrite``), and the new one renamed to ``name``
    and made persistent. On any failure (Ctrl-C included) the new dataset and what
    ``fill`` wrote are removed, and a dataset ``name`` that existed is left as it was.
    """
    import fiftyone as fo

    action = decide_import(name, fingerprint, overwrite)
    if action == "reuse":
        return fo.load_dataset(name)
    # non-persistent until complete: should this process die, FiftyOne drops it later
    dataset = fo.Dataset(f"{name}-importing-{uuid.uuid4().hex[:8]}")
    written = WrittenFiles()
    try:
        fill(dataset, written)
        dataset.info[SOURCE_KEY] = fingerprint
        if written.folders or written.files:
            dataset.info[IMAGES_KEY] = os.path.dirname(written.files[0]) if written.files else str(written.folders[-1])
        dataset.save()
        if action == "replace" and fo.dataset_exists(name):
            fo.delete_dataset(name)
        dataset.name = name  # refused if another process took the name meanwhile
        dataset.persistent = True
    except BaseException:
        if fo.dataset_exists(dataset.name) and dataset.name != name:
            dataset.delete()
        written.remove()
        raise
    return dataset
