"""Images to feature vectors: channel conversion, resizing and intensity scaling, as a
:class:`~fiftyone_intrinsic.core.settings.Preprocessing` says (docs/science.md §2).

Needs numpy and Pillow only.
"""

from __future__ import annotations

import numpy as np

from .settings import Preprocessing

__all__ = ["preprocess_image", "channels_of"]

_SINGLE_CHANNEL_MODES = {"1", "L", "I", "I;16", "I;16B", "I;16L", "F"}


def preprocess_image(image, preprocessing: Preprocessing) -> np.ndarray:
    """One PIL image → ``(size, size, channels)`` float64 array, as ``preprocessing`` says.

    The image is converted to the channel count and resized (bilinear, antialiased when
    shrinking); its intensities are scaled to [0, 1] or [0, 255]. With ``normalize_max``
    the image is first divided by its own maximum (a blank image stays zero instead of
    dividing by zero) and then resized in floating point, each channel on its own, as the
    paper does (docs/science.md §2); ``max_before_resize=False`` resizes first, as
    earlier versions did.

    >>> from PIL import Image
    >>> image = Image.fromarray(np.array([[0, 51], [102, 0]], dtype=np.uint8))
    >>> preprocess_image(image, Preprocessing(channels=1, normalize_max=True))[..., 0].tolist()
    [[0.0, 0.5], [1.0, 0.0]]

    Shrunk to one pixel, the image is the mean of the normalized one; resizing first
    (earlier versions) divided the rounded mean by itself:

    >>> preprocess_image(image, Preprocessing(size=1, normalize_max=True)).item()
    0.375
    >>> preprocess_image(image, Preprocessing(size=1, normalize_max=True, max_before_resize=False)).item()
    1.0
    """
    from PIL import Image

    channels = preprocessing.channels or channels_of(image)
    image, full_scale = _convert(image, channels)
    scale = 255.0 if preprocessing.value_range == "byte" else 1.0
    size = preprocessing.size
    if preprocessing.normalize_max and preprocessing.max_before_resize:
        # float32: what PIL resizes ("F") and the feature store keeps; 4x faster on large RGB
        array = _normalized(np.asarray(image, dtype=np.float32), scale)
        if size is not None:
            array = _resize_float(array, size)
    else:
        if size is not None and image.size != (size, size):
            image = image.resize((size, size), Image.BILINEAR)
        array = np.asarray(image, dtype=np.float64)
        # earlier versions' order: the maximum of the resized image
        array = _normalized(array, scale) if preprocessing.normalize_max else array * (scale / full_scale)
    array = array.reshape(array.shape[0], array.shape[1], -1)
    if array.shape[2] != channels:  # 16-bit or float gray as RGB: R = G = B, at full depth
        array = np.repeat(array, channels, axis=2)
    return array.astype(np.float64, copy=False)


def channels_of(image) -> int:
    """1 for a single-channel PIL image, else 3."""
    return 1 if image.mode in _SINGLE_CHANNEL_MODES else 3


def _convert(image, channels: int):
    """Convert to 1 or 3 channels; returns the image and its full-scale intensity.

    16-bit and float grayscale images are kept as they are, whatever ``channels`` says
    (the caller repeats the gray channel): PIL's conversion to "RGB" or "L" clips them to
    8 bits, so 16-bit values above 255 would all become white."""
    if image.mode in ("I", "I;16", "I;16B", "I;16L"):
        return image, 65535.0  # 16-bit grayscale, kept at full depth
    if image.mode == "F":
        return image, 1.0
    return image.convert("L" if channels == 1 else "RGB"), 255.0


def _normalized(array: np.ndarray, scale: float) -> np.ndarray:
    """``array`` divided by its maximum, times ``scale``."""
    peak = array.max()
    # a blank image has no maximum to divide by; it stays blank
    return array * (scale / peak) if peak > 0 else np.zeros_like(array)


def _resize_float(array: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize (antialiased when shrinking, as PIL's ``BILINEAR``) of a
    ``(height, width)`` or ``(height, width, channels)`` float array to ``size x size``,
    each channel as a 32-bit float image; returns float32."""
    from PIL import Image

    if array.shape[:2] == (size, size):
        return array
    planes = array.reshape(array.shape[0], array.shape[1], -1)
    resized = [
        np.asarray(Image.fromarray(planes[..., c].astype(np.float32)).resize((size, size), Image.BILINEAR))
        for c in range(planes.shape[2])
    ]
    return np.stack(resized, axis=2)
