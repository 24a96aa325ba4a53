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

    The image is converted to the channel count, resized (bilinear, antialiased when
    shrinking), scaled to [0, 1] or [0, 255], and optionally divided by its own maximum;
    a blank image stays zero instead of dividing by zero.

    >>> from PIL import Image
    >>> image = Image.fromarray(np.array([[0, 51], [102, 0]], dtype=np.uint8))
    >>> preprocess_image(image, Preprocessing(channels=1, normalize_max=True))[..., 0].tolist()
    [[0.0, 0.5], [1.0, 0.0]]
    """
    from PIL import Image

    channels = preprocessing.channels or channels_of(image)
    image, full_scale = _convert(image, channels)
    if preprocessing.size is not None and image.size != (preprocessing.size, preprocessing.size):
        image = image.resize((preprocessing.size, preprocessing.size), Image.BILINEAR)
    array = np.asarray(image, dtype=np.float64).reshape(image.size[1], image.size[0], -1)
    if array.shape[2] != channels:  # 16-bit or float gray as RGB: R = G = B, at full depth
        array = np.repeat(array, channels, axis=2)
    scale = 255.0 if preprocessing.value_range == "byte" else 1.0
    if preprocessing.normalize_max:
        peak = array.max()
        # a blank image has no maximum to divide by; it stays blank
        return array * (scale / peak) if peak > 0 else np.zeros_like(array)
    return array * (scale / full_scale)


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
