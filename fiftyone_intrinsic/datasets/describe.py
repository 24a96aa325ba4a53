"""Readable descriptions of a run's feature fingerprint, for errors, reports and panels."""

from __future__ import annotations

__all__ = ["describe_features"]


def describe_features(fingerprint: dict | None) -> str:
    """One line saying where a run's features came from.

    >>> describe_features({"source": "pixels", "image_shape": [28, 28, 1], "value_range": "byte",
    ...                    "normalize_max": True, "max_before_resize": True, "dimension": 784})
    'pixels 28x28x1, [0, 255], per-image max normalized (784 dims)'
    >>> describe_features({"source": "pixels", "image_shape": [28, 28, 1], "value_range": "byte",
    ...                    "normalize_max": True, "dimension": 784})  # recorded by an earlier version
    'pixels 28x28x1, [0, 255], per-image max normalized after resizing (784 dims)'
    >>> describe_features({"source": "embeddings:clip", "dimension": 512})
    'embeddings:clip (512 dims)'
    """
    if not fingerprint:
        return "unknown features"
    dims = f" ({fingerprint['dimension']} dims)" if fingerprint.get("dimension") else ""
    if fingerprint.get("source") != "pixels":
        return f"{fingerprint.get('source')}{dims}"
    height, width, channels = fingerprint.get("image_shape") or ["?", "?", "?"]
    scale = "[0, 255]" if fingerprint.get("value_range") == "byte" else "[0, 1]"
    extra = ""
    if fingerprint.get("normalize_max"):  # no recorded order: an earlier version, maximum after resizing
        extra = ", per-image max normalized" + ("" if fingerprint.get("max_before_resize") is True else " after resizing")
    return f"pixels {height}x{width}x{channels}, {scale}{extra}{dims}"
