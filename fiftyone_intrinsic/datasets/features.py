"""Feature vectors of FiftyOne samples: preprocessed pixels or an embeddings field.

The preprocessing is explicit and recorded with every result (:meth:`Features.fingerprint`),
because label sharpness and intrinsic dimension are comparable only under the same one
(docs/science.md §2).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..core.preprocessing import preprocess_image
from ..core.settings import Preprocessing
from .progress import StepProgress
from .settings import FeatureSettings

__all__ = ["Features", "extract_features"]


@dataclass(frozen=True)
class Features:
    """Feature vectors of the samples of a collection, in the collection's order.

    Attributes:
        matrix: ``(N, D)`` float64; for pixels ``D = size · size · channels``, flattened
            row-major as (height, width, channel).
        sample_ids: ``N`` sample ids, row ``i`` belongs to ``sample_ids[i]``.
        filepaths: ``N`` media paths, for reports.
        source: ``"pixels"`` or ``"embeddings:<field>"``.
        preprocessing: the preprocessing with the channel count filled in, or ``None``
            for embeddings.
        image_shape: ``(height, width, channels)`` of every preprocessed image, or
            ``None`` for embeddings.
    """

    matrix: np.ndarray
    sample_ids: list
    filepaths: list
    source: str
    preprocessing: Optional[Preprocessing]
    image_shape: Optional[tuple]

    def fingerprint(self) -> dict:
        """JSON description of where the features came from; equal fingerprints mean
        comparable K_F and d_data values."""
        description = {"source": self.source, "dimension": int(self.matrix.shape[1])}
        if self.preprocessing is not None:
            description.update(self.preprocessing.model_dump())
            description["image_shape"] = list(self.image_shape)
        return description

    def images(self):
        """The pixels as a ``(N, channels, height, width)`` float32 torch tensor, the layout
        models and attacks take (pixel features only)."""
        import torch

        if self.image_shape is None:
            raise ValueError(f"Features from {self.source} are not images.")
        height, width, channels = self.image_shape
        flat = torch.from_numpy(self.matrix).float()
        return flat.view(-1, height, width, channels).permute(0, 3, 1, 2).contiguous()


def extract_features(
    samples, settings: FeatureSettings | None = None, progress: StepProgress | None = None
) -> Features:
    """Turn every sample of a FiftyOne collection into a feature vector.

    Args:
        samples: a FiftyOne dataset or view, not empty.
        settings (None): :class:`FeatureSettings`; the default uses the pixels at their
            own size and channel count, in [0, 1].
        progress (None): ``progress(fraction_done, label)`` after each batch.

    Raises:
        ValueError: for an empty collection, missing or unreadable images (all listed),
            images of different sizes or channel counts with no size/channels set, or a
            missing, incomplete or non-finite embeddings field.
    """
    settings = settings or FeatureSettings()
    n_samples = len(samples)
    if n_samples == 0:
        raise ValueError("The collection has no samples; choose a dataset or view with samples.")
    sample_ids, filepaths = samples.values(["id", "filepath"])
    if settings.embeddings_field is not None:
        matrix = _embeddings(samples, settings.embeddings_field)
        source = f"embeddings:{settings.embeddings_field}"
        return Features(matrix, sample_ids, filepaths, source, None, None)
    matrix, preprocessing, image_shape = _pixels(filepaths, settings, progress)
    return Features(matrix, sample_ids, filepaths, "pixels", preprocessing, image_shape)


def _pixels(filepaths, settings: FeatureSettings, progress):
    from PIL import Image

    preprocessing = settings.preprocessing
    failures, shapes, rows = [], {}, []
    n_samples = len(filepaths)
    for start in range(0, n_samples, settings.batch_size):
        for path in filepaths[start : start + settings.batch_size]:
            try:
                with Image.open(path) as image:
                    image.load()
                    array = preprocess_image(image, preprocessing)
            except Exception as error:  # any unreadable file is reported below
                failures.append(f"{path} ({type(error).__name__}: {error})")
                continue
            shapes.setdefault(array.shape, path)
            rows.append(array.reshape(-1))
        if progress is not None:
            done = min(n_samples, start + settings.batch_size)
            progress(done / n_samples, f"Loaded {done}/{n_samples} images")
    if failures:
        listed = "\n  ".join(failures[:10])
        raise ValueError(
            f"{len(failures)} of {n_samples} images are missing or unreadable:\n  {listed}\n"
            "Fix those files or exclude their samples from the view, then run again."
        )
    if len(shapes) > 1:
        examples = ", ".join(f"{shape} ({path})" for shape, path in list(shapes.items())[:4])
        raise ValueError(
            f"Images have {len(shapes)} different shapes (height, width, channels): {examples}. "
            "Set the preprocessing size (e.g. size=224) and channels (1 or 3) so that all "
            "images are converted the same way."
        )
    (image_shape,) = shapes.keys()
    return np.stack(rows), preprocessing.model_copy(update={"channels": image_shape[2]}), image_shape


def _embeddings(samples, field: str) -> np.ndarray:
    schema = samples.get_field_schema(flat=True)
    if field not in schema:
        raise ValueError(
            f"Field {field!r} does not exist on the collection; compute embeddings into it "
            "first (e.g. with compute_embeddings) or use the pixels (embeddings_field=None)."
        )
    values = samples.values(field)
    missing = sum(value is None for value in values)
    if missing:
        raise ValueError(
            f"Field {field!r} has vectors for {len(values) - missing} of {len(values)} samples. "
            "Compute embeddings for the whole view or restrict the view to samples that have them."
        )
    try:
        matrix = np.stack([np.asarray(value, dtype=np.float64).reshape(-1) for value in values])
    except (ValueError, TypeError) as error:
        raise ValueError(
            f"Field {field!r} does not hold numeric vectors of one length ({error}); "
            "choose a field of fixed-length embeddings."
        ) from error
    bad = np.flatnonzero(~np.isfinite(matrix).all(axis=1))
    if bad.size:
        raise ValueError(
            f"Field {field!r} has NaN or inf values in {bad.size} of {len(values)} samples "
            f"(first positions in the view: {bad[:10].tolist()}). Recompute or exclude them."
        )
    return matrix
