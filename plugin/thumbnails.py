"""Small PNG thumbnails of sample images, as data URLs the panel's image views can show
without another request to the App server."""

import base64
import io

#: Longest side of a thumbnail, in pixels.
THUMBNAIL_SIZE = 96


def thumbnail_url(path, size=THUMBNAIL_SIZE):
    """``data:image/png;base64,…`` of the image at ``path``, at most ``size`` pixels on its
    longest side, or ``None`` when it cannot be read (a missing or remote file).

    Images smaller than ``size`` are enlarged by a whole factor with nearest-neighbour
    sampling, so that a 28-pixel image shows its real pixels rather than a blur.
    """
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.load()
            mode = "L" if image.mode in ("1", "L", "I", "I;16", "F") else "RGB"
            image = image.convert(mode)
            longest = max(image.size)
            if longest * 2 <= size:
                factor = size // longest
                image = image.resize((image.width * factor, image.height * factor), Image.NEAREST)
            else:
                image.thumbnail((size, size))
            buffer = io.BytesIO()
            image.save(buffer, format="PNG", optimize=True)
    except (OSError, ValueError):
        return None
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
