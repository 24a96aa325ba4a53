"""The paper's reference values (Konz & Mazurowski, ICLR 2024, figure values read from its
pixels; docs/science.md §6), and when a result may be compared with them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

__all__ = ["ReferenceDataset", "PAPER_DATASETS", "PAPER_PREPROCESSING", "paper_comparability"]


@dataclass(frozen=True)
class ReferenceDataset:
    """One dataset of the paper: means over training sizes and models.

    Attributes:
        name: dataset name.
        domain: ``"medical"`` or ``"natural"``.
        d_data: intrinsic dimension (MLE, k = 20; ±0.1 as read).
        k_f: label sharpness (224 × 224, [0, 255]; ±0.03e-4 as read).
        delta_loss: loss increase under FGSM at ε = 2/255 (approximate).
    """

    name: str
    domain: str
    d_data: float
    k_f: float
    delta_loss: Optional[float]


PAPER_DATASETS = (
    ReferenceDataset("BraTS", "medical", 11.0, 2.02e-4, 14.4),
    ReferenceDataset("DBC", "medical", 16.8, 3.11e-4, 31.5),
    ReferenceDataset("OAI", "medical", 8.6, 3.43e-4, 24.0),
    ReferenceDataset("CheXpert", "medical", 15.3, 1.35e-4, 8.4),
    ReferenceDataset("MURA", "medical", 10.7, 2.82e-4, 22.0),
    ReferenceDataset("RSNA-IH-CT", "medical", 11.0, 2.10e-4, 5.7),
    ReferenceDataset("Prostate MRI", "medical", 5.7, 1.81e-4, 21.4),
    ReferenceDataset("MNIST", "natural", 9.3, 1.59e-4, 0.0),
    ReferenceDataset("CIFAR-10", "natural", 16.3, 0.63e-4, 3.0),
    ReferenceDataset("SVHN", "natural", 12.5, 1.03e-4, 2.6),
    ReferenceDataset("ImageNet", "natural", 17.9, 0.61e-4, 3.0),
)

#: The preprocessing of the paper's K_F values.
PAPER_PREPROCESSING = {"size": 224, "value_range": "byte", "normalize_max": True, "max_before_resize": True}


def paper_comparability(features: dict) -> tuple[bool, str]:
    """Whether a run's feature fingerprint matches the paper's preprocessing.

    Returns ``(comparable, reason)``; the reason says what differs.

    >>> paper_comparability({"source": "pixels", "size": 224, "value_range": "byte", "normalize_max": True,
    ...                      "max_before_resize": True, "image_shape": [224, 224, 1]})[0]
    True

    A run of an earlier version recorded no order: it took the maximum after resizing.

    >>> paper_comparability({"source": "pixels", "size": 224, "value_range": "byte",
    ...                      "normalize_max": True, "image_shape": [224, 224, 1]})[1]
    'computed with the per-image maximum taken after resizing (the order of earlier versions); the paper used 224x224, [0, 255], per-image max normalization before resizing'
    >>> paper_comparability({"source": "pixels", "size": None, "value_range": "unit",
    ...                      "normalize_max": False, "image_shape": [28, 28, 1]})[1]
    'computed at 28x28, intensities in [0, 1], without per-image max normalization; the paper used 224x224, [0, 255], per-image max normalization before resizing'
    """
    if features.get("source") != "pixels":
        return False, f"computed on {features.get('source')}; the paper's values are for pixels"
    shape = features.get("image_shape") or [None, None]
    differences = []
    if shape[:2] != [224, 224]:
        differences.append(f"at {shape[0]}x{shape[1]}")
    if features.get("value_range") != "byte":
        differences.append("intensities in [0, 1]")
    if not features.get("normalize_max"):
        differences.append("without per-image max normalization")
    elif features.get("max_before_resize") is not True:  # absent: recorded by an earlier version
        differences.append("with the per-image maximum taken after resizing (the order of earlier versions)")
    if differences:
        return False, (
            "computed " + ", ".join(differences)
            + "; the paper used 224x224, [0, 255], per-image max normalization before resizing"
        )
    return True, "same preprocessing as the paper (224x224, [0, 255], per-image max normalization before resizing)"
