"""Preprocessed pixels on disk, decoded once and reused while nothing they depend on changes.

A store entry is one ``(N, D)`` ``.npy`` array, in the smallest dtype that holds the values
exactly (``uint8`` for byte pixels without per-image normalisation, ``float32`` otherwise;
never ``float64``), and a JSON description. Its key is a hash of everything the values
depend on: the samples and their order, each file's path, size and modification time,
the preprocessing, and the format version. Any change gives another key, so a stale entry
is never read; entries are written under a temporary name and renamed into place, so a
crash or a concurrent run never leaves a partial one.

The folder is ``$FIFTYONE_INTRINSIC_CACHE`` or ``~/.cache/fiftyone_intrinsic/features``.
Images are decoded by ``num_workers`` processes (default: the cores available). The store
keeps at most ``$FIFTYONE_INTRINSIC_CACHE_MAX_GB`` GiB (default 50): after an entry is
written, the least recently used others are removed until the rest fits (the new entry
always stays), with the leftovers of decoding processes that died more than a day ago.
A process that has an evicted entry open keeps reading it (POSIX unlink semantics). Only
files named like the store's own are ever removed: the folder may hold other files.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Optional

import numpy as np

from ..core.preprocessing import preprocess_image
from ..core.settings import Preprocessing
from .image_headers import read_image_headers

__all__ = ["store_folder", "store_key", "load_pixels", "decode_pixels", "available_cores", "store_limit_bytes", "evict"]

#: Bump when the layout or the meaning of stored values changes.
FORMAT_VERSION = 2  # 2: 16-bit gray read as RGB keeps its depth (1 clipped it to 8 bits)
#: Images per task sent to a decoding process.
_TASK_IMAGES = 64
#: GiB the store keeps when ``$FIFTYONE_INTRINSIC_CACHE_MAX_GB`` is not set.
DEFAULT_MAX_GB = 50.0
#: Seconds after which a partial entry of a process that no longer runs is removed.
_STALE_PARTIAL_SECONDS = 24 * 3600
#: Names of the store's own files: an entry's description and a partial entry. Nothing
#: else in the folder is ever removed (it may be a user's folder).
_ENTRY_NAME = re.compile(r"(?P<key>[0-9a-f]{40})\.json")
_PARTIAL_NAME = re.compile(r"[0-9a-f]{40}\.(?P<pid>[0-9]+)-[0-9a-f]{8}\.partial\.(npy|json)")


def store_folder() -> Path:
    """Where entries live: ``$FIFTYONE_INTRINSIC_CACHE`` or ``~/.cache/fiftyone_intrinsic/features``."""
    configured = os.environ.get("FIFTYONE_INTRINSIC_CACHE")
    return Path(configured) if configured else Path.home() / ".cache" / "fiftyone_intrinsic" / "features"


def available_cores() -> int:
    """Cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def store_limit_bytes() -> int:
    """Bytes the store keeps: ``$FIFTYONE_INTRINSIC_CACHE_MAX_GB`` GiB (default 50).

    Raises:
        ValueError: a value that is not a non-negative number.
    """
    configured = os.environ.get("FIFTYONE_INTRINSIC_CACHE_MAX_GB")
    if configured is None:
        return int(DEFAULT_MAX_GB * 2**30)
    try:
        gigabytes = float(configured)
    except ValueError:
        gigabytes = -1.0
    if not gigabytes >= 0:
        raise ValueError(
            f"FIFTYONE_INTRINSIC_CACHE_MAX_GB={configured!r} is not a size in GiB; set it to a "
            "non-negative number such as 50 (0 keeps only the entry just written)."
        )
    return int(gigabytes * 2**30)


def evict(keep: str | None = None, limit_bytes: int | None = None) -> list[str]:
    """Remove the least recently used entries (other than ``keep``) until the store holds
    at most ``limit_bytes`` (default :func:`store_limit_bytes`), and partial entries of
    processes that died more than a day ago. Returns the keys removed, oldest first.
    Entries removed meanwhile by another process are skipped."""
    folder = store_folder()
    limit = store_limit_bytes() if limit_bytes is None else limit_bytes
    if not folder.is_dir():
        return []
    _remove_stale_partials(folder)
    entries = []  # (last used, key, bytes)
    for meta in folder.glob("*.json"):
        match = _ENTRY_NAME.fullmatch(meta.name)
        if match is None:  # a partial entry's description, or not the store's
            continue
        key = match["key"]
        try:
            description = meta.stat()
            size = description.st_size + (folder / f"{key}.npy").stat().st_size
            entries.append((description.st_mtime, key, size))
        except FileNotFoundError:
            continue
    total = sum(size for _, _, size in entries)
    removed = []
    for _, key, size in sorted(entries):
        if total <= limit:
            break
        if key == keep:
            continue
        for path in (folder / f"{key}.json", folder / f"{key}.npy"):  # the description first:
            try:  # without it the entry no longer counts
                path.unlink()
            except FileNotFoundError:
                pass
        total -= size
        removed.append(key)
    return removed


def _remove_stale_partials(folder: Path) -> None:
    """Remove ``<key>.<pid>-<id>.partial.*`` files older than a day whose process is gone."""
    now = time.time()
    for path in folder.glob("*.partial.*"):
        match = _PARTIAL_NAME.fullmatch(path.name)
        if match is None:
            continue
        try:
            if now - path.stat().st_mtime < _STALE_PARTIAL_SECONDS or _process_runs(int(match["pid"])):
                continue
            path.unlink()
        except FileNotFoundError:
            continue


def _process_runs(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def store_key(sample_ids, filepaths, preprocessing: Preprocessing) -> str:
    """Hash of the samples (in order), each file's path, size and modification time, and
    the preprocessing. A missing file hashes as missing (and fails when decoded)."""
    digest = hashlib.sha256()
    digest.update(json.dumps({"version": FORMAT_VERSION, "preprocessing": preprocessing.model_dump()}).encode())
    for sample_id, path in zip(sample_ids, filepaths):
        try:
            stat = os.stat(path)
            digest.update(f"{sample_id}\0{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
        except OSError:
            digest.update(f"{sample_id}\0{path}\0missing\n".encode())
    return digest.hexdigest()[:40]


def stored_dtype(preprocessing: Preprocessing):
    """``uint8`` when every value is a byte (range [0, 255], no per-image normalisation:
    bilinear resizing of 8-bit images gives 8-bit images), else ``float32``."""
    return np.uint8 if preprocessing.value_range == "byte" and not preprocessing.normalize_max else np.float32


def load_pixels(key: str) -> Optional[tuple[np.ndarray, dict]]:
    """The stored ``(matrix as a read-only memmap, description)`` of ``key``, or ``None``."""
    folder = store_folder()
    array, meta = folder / f"{key}.npy", folder / f"{key}.json"
    if not (array.exists() and meta.exists()):
        return None
    try:
        description = json.loads(meta.read_text())
        matrix = np.load(array, mmap_mode="r")
    except (OSError, ValueError):
        return None  # unreadable: decode again (and replace it)
    if description.get("version") != FORMAT_VERSION or list(matrix.shape) != description.get("shape"):
        return None
    try:
        os.utime(meta)  # used now: the last to be evicted
    except OSError:
        pass  # a read-only store
    return matrix, description


def decode_pixels(key: str, filepaths, preprocessing: Preprocessing, num_workers: int, progress=None):
    """Decode and preprocess every image into a new entry; returns what :func:`load_pixels`
    returns, or raises ``ValueError`` naming the unreadable files or the differing shapes.

    With no size (or channel count) set, the images' headers are read first and different
    shapes are refused before anything is decoded."""
    store_limit_bytes()  # a bad limit fails before any work
    if preprocessing.size is None or preprocessing.channels is None:
        _check_headers(filepaths, preprocessing)
    try:
        return _decode_into_store(key, filepaths, preprocessing, num_workers, stored_dtype(preprocessing), progress)
    except _NotBytes:  # 16-bit or float images: their bytes-range values are not integers
        return _decode_into_store(key, filepaths, preprocessing, num_workers, np.float32, progress)


class _NotBytes(Exception):
    """A preprocessed image is not exactly a byte image."""


def _decode_into_store(key, filepaths, preprocessing, num_workers, dtype, progress):
    folder = store_folder()
    folder.mkdir(parents=True, exist_ok=True)
    first = _decode_one(filepaths[0], preprocessing)
    if isinstance(first, str):
        raise ValueError(_unreadable_message([first], len(filepaths)))
    shape = first.shape
    partial = folder / f"{key}.{os.getpid()}-{uuid.uuid4().hex[:8]}.partial.npy"
    matrix = np.lib.format.open_memmap(partial, mode="w+", dtype=dtype, shape=(len(filepaths), int(np.prod(shape))))
    failures, shapes = [], {shape: filepaths[0]}
    try:
        for start, arrays in _decoded_batches(filepaths, preprocessing, num_workers):
            for offset, array in enumerate(arrays):
                path = filepaths[start + offset]
                if isinstance(array, str):
                    failures.append(array)
                    continue
                if array.shape != shape:
                    shapes.setdefault(array.shape, path)
                    continue
                if dtype == np.uint8 and not np.array_equal(array, np.rint(array)):
                    raise _NotBytes(path)
                matrix[start + offset] = array.reshape(-1)
            if progress is not None:
                done = min(len(filepaths), start + len(arrays))
                progress(done / len(filepaths), f"Decoded {done}/{len(filepaths)} images")
        if failures:
            raise ValueError(_unreadable_message(failures, len(filepaths)))
        if len(shapes) > 1:
            raise ValueError(shapes_message(shapes))
        matrix.flush()
        del matrix
        description = {
            "version": FORMAT_VERSION, "shape": [len(filepaths), int(np.prod(shape))], "dtype": np.dtype(dtype).name,
            "image_shape": list(shape), "preprocessing": preprocessing.model_dump(),
        }
        meta_partial = partial.with_suffix(".json")
        meta_partial.write_text(json.dumps(description))
        os.replace(partial, folder / f"{key}.npy")  # the array first: an entry counts once both exist
        os.replace(meta_partial, folder / f"{key}.json")
    finally:
        for leftover in (partial, partial.with_suffix(".json")):
            if leftover.exists():
                leftover.unlink()
    evict(keep=key)
    return load_pixels(key)


def _decoded_batches(filepaths, preprocessing, num_workers):
    """``(start, [array or error message, ...])`` batches in order, decoded by
    ``num_workers`` processes (spawned: the parent's database connections stay its own)."""
    starts = range(0, len(filepaths), _TASK_IMAGES)
    if num_workers <= 1 or len(filepaths) <= _TASK_IMAGES:
        for start in starts:
            yield start, [_decode_one(path, preprocessing) for path in filepaths[start : start + _TASK_IMAGES]]
        return
    import multiprocessing

    with ProcessPoolExecutor(num_workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        batches = pool.map(_decode_batch, [(list(filepaths[s : s + _TASK_IMAGES]), preprocessing) for s in starts])
        yield from zip(starts, batches)


def _decode_batch(task):
    paths, preprocessing = task
    return [_decode_one(path, preprocessing) for path in paths]


def _decode_one(path, preprocessing: Preprocessing):
    """The preprocessed ``(height, width, channels)`` array in the stored dtype, or an
    error message naming the file."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.load()
            array = preprocess_image(image, preprocessing)
    except Exception as error:  # any unreadable file is reported with the others
        return f"{path} ({type(error).__name__}: {error})"
    return array.astype(np.float32)  # float64 values of bytes are exact in float32 too


def _check_headers(filepaths, preprocessing: Preprocessing) -> None:
    """Refuse missing or unreadable files, and differing sizes or channel counts after
    ``preprocessing``, from the files' headers alone."""
    headers = read_image_headers(filepaths)
    if headers.failures():
        raise ValueError(_unreadable_message(headers.failures(), len(filepaths)))
    shapes = {}
    for (width, height, channels), path in headers.shapes.items():
        size = preprocessing.size
        shape = (size, size) if size else (height, width)
        shapes.setdefault((*shape, preprocessing.channels or channels), path)
    if len(shapes) > 1:
        raise ValueError(shapes_message(shapes))


def _unreadable_message(failures, n_samples) -> str:
    listed = "\n  ".join(failures[:10])
    return (
        f"{len(failures)} of {n_samples} images are missing or unreadable:\n  {listed}\n"
        "Fix those files or exclude their samples from the view, then run again."
    )


def shapes_message(shapes) -> str:
    """Why images of ``shapes`` ((height, width, channels) -> an example path) cannot be
    stacked, and which settings make them one shape."""
    examples = ", ".join(f"{shape} ({path})" for shape, path in list(shapes.items())[:4])
    return (
        f"Images have {len(shapes)} different shapes (height, width, channels): {examples}. "
        "Set the preprocessing size (e.g. size=224) and channels (1 or 3) so that all "
        "images are converted the same way."
    )
