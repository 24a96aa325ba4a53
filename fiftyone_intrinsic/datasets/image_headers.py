"""What the headers of image files say (size, channels), read without decoding a pixel.

Shared by the feature store (it refuses differing shapes before decoding everything) and
the operators' forms (they say so before the user clicks Execute).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

__all__ = ["ImageHeaders", "read_image_headers"]


@dataclass(frozen=True)
class ImageHeaders:
    """What the headers of some image files say.

    Attributes:
        missing: paths that are not files.
        unreadable: ``"path (Error: message)"`` for files PIL cannot identify.
        shapes: ``(width, height, channels) -> first path`` of each shape found (pixels,
            and 1 or 3 channels as :func:`~fiftyone_intrinsic.core.preprocessing.channels_of`
            counts them).
    """

    missing: list = field(default_factory=list)
    unreadable: list = field(default_factory=list)
    shapes: dict = field(default_factory=dict)

    def failures(self) -> list:
        """Every missing or unreadable file, as ``"path (Error: message)"``."""
        return [f"{path} (FileNotFoundError: no such file)" for path in self.missing] + self.unreadable


def read_image_headers(paths) -> ImageHeaders:
    """The headers of the image files at ``paths`` (each file opened, no pixel decoded)."""
    from PIL import Image

    from ..core.preprocessing import channels_of

    headers = ImageHeaders()
    for path in paths:
        if not os.path.isfile(path):
            headers.missing.append(path)
            continue
        try:
            with Image.open(path) as image:
                shape = (image.size[0], image.size[1], channels_of(image))
        except Exception as error:  # anything PIL cannot identify is reported, with why
            headers.unreadable.append(f"{path} ({type(error).__name__}: {error})")
            continue
        headers.shapes.setdefault(shape, path)
    return headers
