"""Feature vectors of FiftyOne samples: preprocessed pixels or an embeddings field.

The preprocessing is explicit and recorded with every result (:meth:`Features.fingerprint`),
because label sharpness and intrinsic dimension are comparable only under the same one
(docs/science.md §2).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..core.settings import Preprocessing
from .progress import StepProgress
from .settings import FeatureSettings

__all__ = ["Features", "extract_features"]

#: Samples whose embeddings are read per query.
_EMBEDDING_BATCH = 4096


@dataclass(frozen=True)
class Features:
    """Feature vectors of the samples of a collection, in the collection's order.

    Attributes:
        matrix: ``(N, D)``; pixels: ``uint8`` (bytes without per-image normalisation) or
            ``float32``, a read-only memmap of the feature store, ``D = size · size ·
            channels`` flattened row-major as (height, width, channel); embeddings:
            ``float32``.
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
        flat = torch.from_numpy(np.array(self.matrix, dtype=np.float32))  # one writable copy
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
    matrix, preprocessing, image_shape = _pixels(sample_ids, filepaths, settings, progress)
    return Features(matrix, sample_ids, filepaths, "pixels", preprocessing, image_shape)


def _pixels(sample_ids, filepaths, settings: FeatureSettings, progress):
    """Preprocessed pixels from the feature store: decoded once per samples, files and
    preprocessing (:mod:`.feature_store`), read back as a memmap afterwards."""
    from .feature_store import available_cores, decode_pixels, load_pixels, store_key

    preprocessing = settings.preprocessing
    key = store_key(sample_ids, filepaths, preprocessing)
    stored = load_pixels(key) if settings.use_store else None
    if stored is None:
        workers = settings.num_workers or available_cores()
        stored = decode_pixels(key, filepaths, preprocessing, workers, progress)
    elif progress is not None:
        progress(1.0, f"Reused the {len(filepaths)} stored images")
    matrix, description = stored
    image_shape = tuple(description["image_shape"])
    return matrix, preprocessing.model_copy(update={"channels": image_shape[2]}), image_shape


def _embeddings(samples, field: str) -> np.ndarray:
    schema = samples.get_field_schema(flat=True)
    if field not in schema:
        raise ValueError(
            f"Field {field!r} does not exist on the collection; compute embeddings into it "
            "first (e.g. with compute_embeddings) or use the pixels (embeddings_field=None)."
        )
    n_samples = len(samples)
    matrix = None
    missing = 0
    for start in range(0, n_samples, _EMBEDDING_BATCH):  # float32 batches, never a float64 copy
        values = samples.skip(start).limit(_EMBEDDING_BATCH).values(field)
        missing += sum(value is None for value in values)
        if missing:
            continue
        try:
            batch = np.stack([np.asarray(value, dtype=np.float32).reshape(-1) for value in values])
            if matrix is None:
                matrix = np.empty((n_samples, batch.shape[1]), dtype=np.float32)
            matrix[start : start + batch.shape[0]] = batch
        except (ValueError, TypeError) as error:
            raise ValueError(
                f"Field {field!r} does not hold numeric vectors of one length ({error}); "
                "choose a field of fixed-length embeddings."
            ) from error
    if missing:
        raise ValueError(
            f"Field {field!r} has vectors for {n_samples - missing} of {n_samples} samples. "
            "Compute embeddings for the whole view or restrict the view to samples that have them."
        )
    bad = np.flatnonzero(~np.isfinite(matrix).all(axis=1))
    if bad.size:
        raise ValueError(
            f"Field {field!r} has NaN or inf values in {bad.size} of {n_samples} samples "
            f"(first positions in the view: {bad[:10].tolist()}). Recompute or exclude them."
        )
    return matrix
