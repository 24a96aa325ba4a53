"""Settings shared by the Python functions, the command line and the FiftyOne operators.

Each model is frozen and validated once, at the boundary every caller passes through. A
:class:`pydantic.ValidationError` is a ``ValueError`` and names the field, the value and
the accepted range.
"""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = [
    "DimensionSettings",
    "SharpnessSettings",
    "Preprocessing",
    "FeatureSettings",
    "ESTIMATORS",
]

#: Intrinsic-dimension estimators, by name.
ESTIMATORS = ("mle", "mle_mg", "twonn")


class _Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DimensionSettings(_Settings):
    """How to estimate the intrinsic dimension d_data."""

    estimator: Literal["mle", "mle_mg", "twonn"] = Field(
        "mle",
        description=(
            "'mle': Levina-Bickel with MacKay-Ghahramani inverse averaging and the (k-2) "
            "numerator, as Konz & Mazurowski (ICLR 2024) and Pope et al. (ICLR 2021); "
            "'mle_mg': the (k-1) numerator, as scikit-dimension's MLE(); "
            "'twonn': Facco et al. (2017), least squares through the origin."
        ),
    )
    k: int = Field(20, ge=3, le=1000, description="Neighbours per point for the MLE estimators.")
    discard_fraction: float = Field(
        0.1, ge=0.0, lt=1.0, description="TwoNN: fraction of the largest ratios T2/T1 discarded."
    )
    n_bootstrap: int = Field(
        200, ge=0, le=100_000, description="Bootstrap resamples of the points for the interval."
    )
    confidence: float = Field(0.95, gt=0.0, lt=1.0, description="Coverage of the interval.")
    seed: int = Field(0, description="Seed of the bootstrap resampling.")
    duplicate_tolerance: float = Field(
        0.0,
        ge=0.0,
        description="Samples closer than this (feature units) are merged as near-duplicates "
        "before estimating; 0 merges exact duplicates only. Near-duplicates make T1 tiny "
        "and collapse TwoNN (BreastMNIST: about 1.1).",
    )
    device: Optional[str] = Field(
        None, description="'auto' or None (CUDA when present), 'cpu', 'cuda' or 'cuda:N'."
    )

    @property
    def neighbors_needed(self) -> int:
        """Neighbours of each point that the estimator reads."""
        return 2 if self.estimator == "twonn" else self.k


class SharpnessSettings(_Settings):
    """How to measure the label sharpness K_F."""

    top: int = Field(10, ge=1, le=10_000, description="Sharpest pairs to report and flag.")
    device: Optional[str] = Field(
        None, description="'auto' or None (CUDA when present), 'cpu', 'cuda' or 'cuda:N'."
    )


class Preprocessing(_Settings):
    """How images become feature vectors. Recorded with every result: K_F and d_data are
    comparable only between results of the same preprocessing (science.md §2)."""

    size: Optional[int] = Field(
        None,
        ge=1,
        le=4096,
        description="Resize to size x size pixels (bilinear, antialiased); None keeps the "
        "images' own size, which must then be the same for all.",
    )
    channels: Optional[Literal[1, 3]] = Field(
        None,
        description="1 (grayscale) or 3 (RGB); None keeps the images' own channel count, "
        "which must then be the same for all.",
    )
    value_range: Literal["unit", "byte"] = Field(
        "unit", description="'unit': intensities in [0, 1]; 'byte': in [0, 255] as the paper."
    )
    normalize_max: bool = Field(
        False,
        description="Divide each image by its own maximum before scaling to the range, as "
        "the paper does; blank images stay zero.",
    )

    @classmethod
    def paper(cls) -> "Preprocessing":
        """The paper's preprocessing: 224 x 224, [0, 255], per-image max normalization
        (channels follow the dataset: 1 for medical and MNIST, 3 for CIFAR-10)."""
        return cls(size=224, value_range="byte", normalize_max=True)


class FeatureSettings(_Settings):
    """Where the feature vectors of FiftyOne samples come from."""

    embeddings_field: Optional[str] = Field(
        None,
        description="Use this field's vectors as features; None uses the pixels, "
        "preprocessed as `preprocessing` says.",
    )
    preprocessing: Preprocessing = Field(default_factory=Preprocessing)
    batch_size: int = Field(256, ge=1, le=100_000, description="Images loaded per batch.")

    @field_validator("embeddings_field")
    @classmethod
    def _not_blank(cls, value):
        if value is not None and not value.strip():
            raise ValueError("embeddings_field must be a field name or None, not blank")
        return value
