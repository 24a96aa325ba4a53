"""Arrays of images written as PNG files, values unchanged, never over an existing file.

What each array becomes (README, "The audit command"):

- ``uint8``: written as it is. ``uint16`` grayscale: a 16-bit PNG (full scale 65535, read
  back at full depth). ``uint16`` colour is refused: PNG writers here have no 48-bit mode.
- float in [0, 1]: multiplied by 255 and rounded to 8 bits; a warning gives the largest
  change when that rounding loses precision (it does not for values ``k / 255``).
- float or any other integer type holding whole numbers 0-255 only: those bytes.
- anything else (negative, NaN or infinite values, floats above 1 that are not whole
  numbers, integers above 255 that are not ``uint16``, booleans) is refused with a
  message saying how to convert it.
- ``(N, H, W, 1)`` is read as ``(N, H, W)``; ``(N, H, W, 3)`` is RGB.
"""

from __future__ import annotations

import os
import pathlib
import warnings
from dataclasses import dataclass, field

import numpy as np

__all__ = ["as_png_arrays", "WrittenFiles", "claim_folder", "write_pngs", "png_name"]

#: Rounding to 8 bits that moves a value by more than this (in byte levels) is reported.
_ROUNDING_TOLERANCE = 1e-3


def as_png_arrays(images) -> np.ndarray:
    """``images`` as the array the PNG files will hold: ``(N, H, W)`` or ``(N, H, W, 3)``
    ``uint8``, or ``(N, H, W)`` ``uint16``; the conversions are those of the module text.

    Raises:
        ValueError: an unsupported shape, dtype or value range (the message says how to
            convert the images).

    >>> as_png_arrays(np.array([[[0.0, 0.2, 1.0]]])).tolist()
    [[[0, 51, 255]]]
    >>> as_png_arrays(np.zeros((2, 3, 3, 1), np.uint8)).shape
    (2, 3, 3)
    """
    images = np.asarray(images)
    if images.ndim == 4 and images.shape[3] == 1:
        images = images[..., 0]
    if images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[3] != 3):
        raise ValueError(
            f"Images of shape {images.shape} cannot be imported; give (N, H, W) grayscale, "
            "(N, H, W, 1) or (N, H, W, 3) RGB images."
        )
    if images.dtype == np.uint8:
        return images
    if images.dtype == np.uint16:
        if images.ndim == 4:
            raise ValueError(
                "16-bit RGB images cannot be written as PNG here. Convert them to 8 bits "
                "yourself, e.g. (images / 257).round().astype(numpy.uint8), or import one "
                "16-bit channel (N, H, W) at a time."
            )
        return images
    if np.issubdtype(images.dtype, np.floating):
        return _floats_as_bytes(images)
    if np.issubdtype(images.dtype, np.integer):
        return _integers_as_bytes(images)
    raise ValueError(
        f"Images of dtype {images.dtype} cannot be imported; give uint8, uint16 (grayscale), "
        "float in [0, 1], or whole numbers 0-255."
    )


def _floats_as_bytes(images: np.ndarray) -> np.ndarray:
    if images.size and not np.isfinite(images).all():
        raise ValueError(
            f"{int((~np.isfinite(images)).sum())} pixel values are NaN or infinite; replace "
            "them before importing."
        )
    low, high = (float(images.min()), float(images.max())) if images.size else (0.0, 0.0)
    if low >= 0.0 and high <= 1.0:
        scaled = images.astype(np.float64) * 255.0
        rounded = np.round(scaled)
        change = float(np.abs(scaled - rounded).max()) if images.size else 0.0
        if change > _ROUNDING_TOLERANCE:
            warnings.warn(
                f"Float images in [0, 1] are stored as 8-bit PNGs (x 255, rounded); values "
                f"move by up to {change / 255:.2g} (of 1). Save them as uint16 grayscale to "
                "keep 16 bits.",
                UserWarning,
                stacklevel=3,
            )
        return rounded.astype(np.uint8)
    if low >= 0.0 and high <= 255.0 and np.array_equal(images, np.round(images)):
        return images.astype(np.uint8)
    raise ValueError(
        f"Float images range over [{low:g}, {high:g}]; the importer takes floats in [0, 1] "
        "(scaled by 255) or whole numbers 0-255. Rescale them, e.g. to [0, 1] with "
        "(images - images.min()) / (images.max() - images.min()), if that is what they mean."
    )


def _integers_as_bytes(images: np.ndarray) -> np.ndarray:
    low, high = (int(images.min()), int(images.max())) if images.size else (0, 0)
    if low >= 0 and high <= 255:
        return images.astype(np.uint8)
    raise ValueError(
        f"{images.dtype} images range over [{low}, {high}]; the importer takes values 0-255 "
        "in any integer type, or uint16 grayscale (full scale 65535). Convert them to uint16 "
        "or uint8 with the scale they are meant to have."
    )


def png_name(index: int) -> str:
    """File name of image ``index``: ``000000.png``, ``000001.png``, ..."""
    return f"{index:06d}.png"


@dataclass
class WrittenFiles:
    """Files and folders one import created, so that a failed import removes exactly those."""

    files: list = field(default_factory=list)
    folders: list = field(default_factory=list)

    def remove(self) -> None:
        """Delete the files written, then the folders created if they are empty."""
        for path in reversed(self.files):
            try:
                os.remove(path)
            except FileNotFoundError:
                pass
        for folder in reversed(self.folders):  # deepest first
            try:
                os.rmdir(folder)
            except OSError:  # not empty: something else lives there now
                pass
        self.files.clear()
        self.folders.clear()


def claim_folder(images_dir, default_base: pathlib.Path, name: str, written: WrittenFiles) -> pathlib.Path:
    """The folder PNG files go to.

    ``images_dir`` when given (created if missing; files already in it are never
    replaced, see :func:`write_pngs`); otherwise a folder that this call creates itself
    under ``default_base``: ``<name>``, or ``<name>-2``, ``<name>-3``, ... when taken, so a
    re-import never meets the files of an earlier one. Folders created are recorded in
    ``written``.
    """
    if images_dir is not None:
        folder = pathlib.Path(images_dir).expanduser().absolute()
        _make_folders(folder, written)
        return folder
    base = pathlib.Path(default_base).expanduser().absolute()
    _make_folders(base, written)
    for attempt in range(1, 10_000):
        folder = base / (name if attempt == 1 else f"{name}-{attempt}")
        try:
            folder.mkdir()
        except FileExistsError:
            continue
        written.folders.append(folder)
        return folder
    raise ValueError(f"{base} holds 10,000 folders named after {name!r}; give --images-dir.")


def _make_folders(folder: pathlib.Path, written: WrittenFiles) -> None:
    missing = [p for p in [folder, *folder.parents] if not p.exists()]
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{folder} is a file, not a folder; give a folder for the images.")
    for path in reversed(missing):  # the outermost first
        path.mkdir(exist_ok=True)
        written.folders.append(path)


def write_pngs(images: np.ndarray, folder: pathlib.Path, written: WrittenFiles) -> list[str]:
    """Write ``images`` (from :func:`as_png_arrays`) as ``folder/000000.png``, ... and
    return their paths; every file written is recorded in ``written``.

    Raises:
        ValueError: when any of those files exists already (nothing is written then; a
            file that appears meanwhile is not replaced either).
    """
    from PIL import Image

    names = [png_name(i) for i in range(len(images))]
    taken = sorted(set(names) & set(os.listdir(folder)))
    if taken:
        raise ValueError(
            f"{folder} already holds {len(taken)} of the files this import would write "
            f"({', '.join(taken[:3])}{', ...' if len(taken) > 3 else ''}); existing files are "
            "never replaced. Give an empty or new --images-dir (images_dir=), or leave it "
            "out to write into a new folder."
        )
    paths = []
    for image, file_name in zip(images, names):
        path = folder / file_name
        with open(path, "xb") as handle:  # "x": never replace a file that appeared meanwhile
            written.files.append(path)
            Image.fromarray(np.ascontiguousarray(image)).save(handle, format="PNG")
        paths.append(str(path))
    return paths
