"""Settings shared by the Python functions, the command line and the FiftyOne operators.

Each model is frozen and validated once, at the boundary every caller passes through. A
:class:`pydantic.ValidationError` is a ``ValueError`` and names the field, the value and
the accepted range.
"""

from __future__ import annotations

from typing import Literal, Optional, Tuple

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "DimensionSettings",
    "SharpnessSettings",
    "Preprocessing",
    "FeatureSettings",
    "ModelSource",
    "ModelInput",
    "RobustnessSettings",
    "ESTIMATORS",
    "ATTACKS",
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
        0.1, gt=0.0, lt=1.0,
        description="TwoNN: fraction of the largest ratios T2/T1 discarded; above 0, since "
        "the largest ratio's target −log(1 − N/N) is infinite.",
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


class ModelSource(_Settings):
    """A model file named in a form. Nothing is ever unpickled from it: state dicts load
    with ``torch.load(weights_only=True)``, TorchScript files with ``torch.jit.load``."""

    kind: Literal["torchvision", "torchscript", "export"] = Field(
        ..., description="'torchvision': an architecture name plus a state-dict file; "
        "'torchscript': a TorchScript file; 'export': a torch.export program (.pt2)."
    )
    path: str = Field(..., min_length=1, description="The state-dict or TorchScript file.")
    architecture: Optional[str] = Field(
        None, description="torchvision model name, e.g. 'resnet18' (kind 'torchvision' only)."
    )
    num_classes: Optional[int] = Field(
        None, ge=1, description="Outputs of the torchvision model; None infers it from the "
        "state dict's last linear layer."
    )

    @model_validator(mode="after")
    def _architecture_for_torchvision(self):
        if self.kind == "torchvision" and not self.architecture:
            raise ValueError("a torchvision model needs its architecture name, e.g. 'resnet18'")
        return self


class ModelInput(_Settings):
    """How images are fed to a model: resized, channels, then normalized with mean/std
    inside the model wrapper (so attacks and activations see [0, 1] images)."""

    size: int = Field(224, ge=8, le=4096, description="Input size x size pixels.")
    channels: Literal[1, 3] = Field(3, description="Input channels (gray images are repeated to RGB).")
    mean: Tuple[float, ...] = Field((0.485, 0.456, 0.406), description="Per-channel mean on [0, 1].")
    std: Tuple[float, ...] = Field((0.229, 0.224, 0.225), description="Per-channel std on [0, 1].")

    @model_validator(mode="after")
    def _one_value_per_channel(self):
        for name in ("mean", "std"):
            values = getattr(self, name)
            if len(values) not in (1, self.channels):
                raise ValueError(
                    f"{name} has {len(values)} values for {self.channels} channel(s); give 1 or {self.channels}"
                )
        if any(v <= 0 for v in self.std):
            raise ValueError("std values must be positive")
        return self

    def preprocessing(self) -> "Preprocessing":
        """The pixel preprocessing before normalization."""
        return Preprocessing(size=self.size, channels=self.channels, value_range="unit")


#: Attacks offered by :func:`fiftyone_intrinsic.evaluate_robustness` (torchattacks).
ATTACKS = ("fgsm", "pgd", "pgd_l2")


class RobustnessSettings(_Settings):
    """How to attack a model (torchattacks), on images in [0, 1]."""

    attacks: Tuple[Literal["fgsm", "pgd", "pgd_l2"], ...] = Field(
        ATTACKS, min_length=1, description="Attacks of the sweep: FGSM and PGD (L-inf), PGD-L2."
    )
    epsilons: Tuple[float, ...] = Field(
        (0.0, 1.0, 2.0, 4.0, 8.0), min_length=1,
        description="L-inf budgets of FGSM and PGD, in 1/255 units of [0, 1] images.",
    )
    epsilons_l2: Tuple[float, ...] = Field(
        (0.0, 0.25, 0.5, 1.0, 2.0), min_length=1,
        description="L2 budgets of PGD-L2, in L2 norm of [0, 1] images.",
    )
    pgd_steps: int = Field(10, ge=1, le=1000, description="PGD iterations.")
    minimal: bool = Field(
        True, description="Find each sample's smallest flipping budget by bisection with PGD."
    )
    max_epsilon: float = Field(16.0, gt=0, description="Largest L-inf budget searched (1/255 units).")
    max_l2: float = Field(4.0, gt=0, description="Largest L2 budget searched.")
    bisection_steps: int = Field(8, ge=1, le=30, description="Bisection halvings per sample.")
    batch_size: int = Field(128, ge=1, le=100_000, description="Images per attack batch.")
    seed: int = Field(0, description="Seed of PGD's random start.")
    device: Optional[str] = Field(
        None, description="'auto' or None (CUDA when present), 'cpu', 'cuda' or 'cuda:N'."
    )

    @field_validator("epsilons", "epsilons_l2")
    @classmethod
    def _sorted_non_negative(cls, values):
        if any(v < 0 for v in values):
            raise ValueError("budgets must be >= 0")
        return tuple(sorted(set(values)))
