"""Settings of the array computations, shared by the Python functions, the command line
and the FiftyOne operators.

Each model is frozen and validated once, at the boundary every caller passes through. A
:class:`pydantic.ValidationError` is a ``ValueError`` and names the field, the value and
the accepted range. Estimator and attack names are checked against their registries
(:mod:`.estimators`, :mod:`.attacks`), so a registered unit is accepted everywhere.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import Any, Literal, Optional, Tuple

import annotated_types
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_serializer, model_validator

from .attacks import ATTACKS, get_attack
from .estimators import ESTIMATORS, get_estimator
from .model_files import EXPORT_REFUSED

__all__ = [
    "Settings",
    "DimensionSettings",
    "SharpnessSettings",
    "Preprocessing",
    "ModelSource",
    "ModelInput",
    "RobustnessSettings",
    "DEFAULT_K",
    "DEFAULT_SIZES",
    "MIN_SIZES",
    "LearningCurveSettings",
    "FitSettings",
    "SettingSpec",
    "setting_spec",
    "as_model_input",
]

#: Neighbours per point of the MLE estimators: the paper's k = 20.
DEFAULT_K = 20


class Settings(BaseModel):
    """Base of every settings model: frozen, unknown fields refused."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class DimensionSettings(Settings):
    """How to estimate the intrinsic dimension d_data."""

    estimator: str = Field(
        "mle",
        description=(
            "A registered estimator (fiftyone_intrinsic.core.estimators): 'mle': "
            "Levina-Bickel with MacKay-Ghahramani inverse averaging and the (k-2) numerator, "
            "as Konz & Mazurowski (ICLR 2024) and Pope et al. (ICLR 2021); 'mle_mg': the "
            "(k-1) numerator, as scikit-dimension's MLE(); 'twonn': Facco et al. (2017), "
            "least squares through the origin."
        ),
    )
    k: int = Field(DEFAULT_K, ge=3, le=1000, description="Neighbours per point for the MLE estimators.")
    discard_fraction: float = Field(
        0.1, gt=0.0, lt=1.0,
        description="TwoNN: fraction of the largest ratios T2/T1 discarded; above 0, since "
        "the largest ratio's target −log(1 − N/N) is infinite.",
    )
    interval_splits: int = Field(
        4, ge=0, le=100,
        description="Random splits into 10 disjoint groups whose estimates give the interval "
        "(neighbours searched again in each group; docs/science.md §7); 0: no interval.",
    )
    confidence: float = Field(0.95, gt=0.0, lt=1.0, description="Coverage of the interval.")
    seed: int = Field(0, description="Seed of the interval's random splits.")
    duplicate_tolerance: float = Field(
        0.0,
        ge=0.0,
        lt=1.0,
        description="Near-duplicates to merge before estimating: samples closer than this "
        "fraction of the median nearest-neighbour distance of the distinct samples (e.g. "
        "0.2); 0 merges exact duplicates only. Each group lies within that distance of one "
        "kept sample, so groups cannot chain. Near-duplicates make T1 tiny and collapse "
        "TwoNN (BreastMNIST: about 1.1); MLE (k=20) bends far less.",
    )
    max_merged_fraction: float = Field(
        0.05,
        gt=0.0,
        le=1.0,
        description="Largest fraction of the distinct samples that duplicate_tolerance may "
        "merge; a run that would merge more is refused. Raise it explicitly for data known "
        "to hold many near-copies (BreastMNIST: 0.25 at a tolerance of 0.5).",
    )
    device: Optional[str] = Field(
        None, description="'auto' or None (CUDA when present), 'cpu', 'cuda' or 'cuda:N'."
    )

    @field_validator("duplicate_tolerance", mode="before")
    @classmethod
    def _relative_tolerance(cls, value):
        """Before the bounds: their generic message would not say why 1.0 is refused."""
        if isinstance(value, (int, float)) and not 0.0 <= value < 1.0:
            raise ValueError(
                f"duplicate_tolerance={value:g} is not a fraction in [0, 1). It is relative to the "
                "median nearest-neighbour distance of the distinct samples (e.g. 0.2 merges samples "
                "closer than a fifth of it), not a distance in feature units as in earlier builds: "
                "divide such a distance by that median."
            )
        return value

    @field_validator("estimator")
    @classmethod
    def _registered_estimator(cls, value):
        get_estimator(value)  # raises with the registered names
        return value

    @property
    def neighbors_needed(self) -> int:
        """Neighbours of each point that the estimator reads."""
        return get_estimator(self.estimator).neighbors_needed(self.k)


class SharpnessSettings(Settings):
    """How to measure the label sharpness K_F."""

    top: int = Field(10, ge=1, le=10_000, description="Sharpest pairs to report and flag.")
    device: Optional[str] = Field(
        None, description="'auto' or None (CUDA when present), 'cpu', 'cuda' or 'cuda:N'."
    )


class Preprocessing(Settings):
    """How images become feature vectors. Recorded with every result: K_F and d_data are
    comparable only between results of the same preprocessing (docs/science.md §2)."""

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
    max_before_resize: bool = Field(
        True,
        description="With normalize_max: divide by the original image's maximum, then resize "
        "in floating point, as the paper does. False: the order of earlier versions (resize the "
        "8-bit image, then divide by the resized image's maximum), which moved K_F by up to "
        "-6% at 224 x 224; kept to reproduce their runs. Not recorded without normalize_max.",
    )

    @model_serializer(mode="wrap")
    def _order_only_when_normalizing(self, handler):
        # without normalize_max there is no order: leaving it out keeps the records (run
        # fingerprints, feature-store keys) of earlier runs without normalize_max valid, while
        # an earlier record with normalize_max, which lacks the field, differs from every new one
        data = handler(self)
        if not self.normalize_max:
            data.pop("max_before_resize", None)
        return data

    @classmethod
    def paper(cls) -> "Preprocessing":
        """The paper's preprocessing: each image divided by its own maximum, then resized to
        224 x 224, in [0, 255] (channels follow the dataset: 1 for medical and MNIST, 3 for
        CIFAR-10)."""
        return cls(size=224, value_range="byte", normalize_max=True)


class ModelSource(Settings):
    """A model file named in a form. State dicts load with ``torch.load(weights_only=True)``
    and run no code; TorchScript files are programs, run by ``torch.jit.load`` and on every
    call (:mod:`.models`); torch.export programs (``.pt2``) are refused."""

    kind: Literal["torchvision", "torchscript"] = Field(
        ..., description="'torchvision': an architecture name plus a state-dict file (no code "
        "from the file runs); 'torchscript': a TorchScript file, which is a program: use only "
        "files from sources you trust."
    )
    path: str = Field(..., min_length=1, description="The state-dict or TorchScript file.")
    architecture: Optional[str] = Field(
        None, description="torchvision model name, e.g. 'resnet18' (kind 'torchvision' only)."
    )
    num_classes: Optional[int] = Field(
        None, ge=1, description="Outputs of the torchvision model; None infers it from the "
        "state dict's last linear layer."
    )

    @field_validator("kind", mode="before")
    @classmethod
    def _no_export(cls, kind):
        if kind == "export":
            raise ValueError(EXPORT_REFUSED)
        return kind

    @model_validator(mode="after")
    def _architecture_for_torchvision(self):
        if self.kind == "torchvision" and not self.architecture:
            raise ValueError("a torchvision model needs its architecture name, e.g. 'resnet18'")
        return self


class ModelInput(Settings):
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


class RobustnessSettings(Settings):
    """How to attack a model (torchattacks), on images in [0, 1]."""

    attacks: Tuple[str, ...] = Field(
        default_factory=lambda: tuple(ATTACKS), min_length=1,
        description="Registered attacks of the sweep (fiftyone_intrinsic.core.attacks): "
        "FGSM and PGD (L-inf), PGD-L2.",
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

    @field_validator("attacks")
    @classmethod
    def _registered_attacks(cls, values):
        for name in values:
            get_attack(name)  # raises with the registered names
        return values

    @field_validator("epsilons", "epsilons_l2")
    @classmethod
    def _sorted_non_negative(cls, values):
        if any(v < 0 for v in values):
            raise ValueError("budgets must be >= 0")
        return tuple(sorted(set(values)))


#: Training-set sizes of Konz & Mazurowski (ICLR 2024).
DEFAULT_SIZES = (500, 750, 1000, 1250, 1500, 1750)

#: Distinct training-set sizes a fit needs: two points always lie on a line.
MIN_SIZES = 3


class LearningCurveSettings(Settings):
    """How the learning curve is measured (:mod:`.learning_curve`)."""

    sizes: Optional[Tuple[int, ...]] = Field(
        None,
        description="Training-set sizes N (at least 3 distinct); None: the paper's "
        f"{DEFAULT_SIZES}, or the same proportions below the largest class-balanced size "
        "when the data has fewer.",
    )
    n_seeds: int = Field(3, ge=1, le=100, description="Seeds per size: subset order, initialization, batches.")
    seed: int = Field(0, description="First seed; the seeds are seed, seed + 1, ...")
    n_test: Optional[int] = Field(
        None, ge=1,
        description="Held-out images carved from the data when no held-out split is given; "
        "None: min(750, a quarter of the data).",
    )
    split_seed: int = Field(0, description="Seed of the carved held-out split (fixed across seeds).")
    balance: Literal["equal", "stratified"] = Field(
        "equal",
        description="'equal': the same number of images per class in every subset (and in a "
        "carved held-out split); 'stratified': the pool's class proportions.",
    )
    epochs: int = Field(30, ge=1, le=10_000, description="Passes over each training subset.")
    min_steps: int = Field(
        100, ge=0, le=10_000_000,
        description="At least this many optimizer steps per model, so small subsets are trained too.",
    )
    batch_size: int = Field(32, ge=1, le=100_000, description="Images per optimizer step.")
    learning_rate: float = Field(2e-3, gt=0.0, le=10.0, description="Adam's learning rate.")
    weight_decay: float = Field(0.0, ge=0.0, description="Adam's weight decay.")
    schedule: Literal["cosine", "constant"] = Field(
        "cosine",
        description="Learning rate over the steps: 'cosine' decays it to 0, so the final "
        "model is not a snapshot of a noisy iterate (steadier test losses); 'constant'.",
    )
    device: Optional[str] = Field(
        None, description="'auto' or None (CUDA when present), 'cpu', 'cuda' or 'cuda:N'."
    )

    @field_validator("sizes")
    @classmethod
    def _distinct_positive(cls, sizes):
        if sizes is None:
            return None
        if any(n < 1 for n in sizes):
            raise ValueError(f"training-set sizes must be positive; got {list(sizes)}")
        distinct = tuple(sorted(set(sizes)))
        if len(distinct) < MIN_SIZES:
            raise ValueError(
                f"a power law needs at least {MIN_SIZES} distinct training-set sizes; got "
                f"{len(distinct)} ({list(distinct)}). Add sizes"
            )
        return distinct

    @property
    def seeds(self) -> Tuple[int, ...]:
        return tuple(range(self.seed, self.seed + self.n_seeds))


class FitSettings(Settings):
    """How the power law is fitted and how its uncertainty is resampled (:mod:`.scaling`)."""

    n_bootstrap: int = Field(
        2000, ge=100, le=1_000_000,
        description="Resamples of the seeds (or, with one seed, parametric draws) for the intervals.",
    )
    confidence: float = Field(0.95, gt=0.0, lt=1.0, description="Coverage of every interval.")
    seed: int = Field(0, description="Seed of the resampling.")


def as_model_input(model_input) -> ModelInput:
    """A :class:`ModelInput` from itself, a dict of its fields, or ``None`` (the default)."""
    if isinstance(model_input, dict):
        return ModelInput(**model_input)
    return model_input or ModelInput()


@dataclass(frozen=True)
class SettingSpec:
    """One settings field as a command line or a form needs it: the single source of its
    default, description, choices and bounds.

    Attributes:
        name: the field name.
        default: its default value.
        description: its description.
        choices: the accepted values when they are a fixed set (a ``Literal``, or a
            registry for ``estimator`` and ``attacks``), else ``None``.
        minimum, maximum: inclusive bounds, or ``None``.
        type: ``int``, ``float``, ``str`` or ``bool`` (of one value; ``None`` otherwise).
    """

    name: str
    default: Any
    description: str
    choices: Optional[tuple]
    minimum: Optional[float]
    maximum: Optional[float]
    type: Optional[type]


#: Fields whose choices are a registry's names.
_REGISTRY_FIELDS = {
    "estimator": lambda: tuple(ESTIMATORS),
    "attacks": lambda: tuple(ATTACKS),
}


def setting_spec(model: type[BaseModel], name: str) -> SettingSpec:
    """The :class:`SettingSpec` of field ``name`` of a settings model.

    >>> spec = setting_spec(DimensionSettings, "k")
    >>> spec.default, spec.minimum, spec.maximum
    (20, 3, 1000)
    >>> setting_spec(DimensionSettings, "estimator").choices
    ('mle', 'mle_mg', 'twonn')
    """
    info = model.model_fields[name]
    default = info.get_default(call_default_factory=True)
    minimum = maximum = None
    for bound in info.metadata:
        if isinstance(bound, annotated_types.Ge):
            minimum = bound.ge
        elif isinstance(bound, annotated_types.Gt):
            minimum = bound.gt
        elif isinstance(bound, annotated_types.Le):
            maximum = bound.le
        elif isinstance(bound, annotated_types.Lt):
            maximum = bound.lt
    choices, kind = None, None
    annotation = info.annotation
    inner = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
    if typing.get_origin(annotation) is typing.Union and len(inner) == 1:
        annotation = inner[0]  # Optional[X] → X
    if name in _REGISTRY_FIELDS:
        choices, kind = _REGISTRY_FIELDS[name](), str
    elif typing.get_origin(annotation) is Literal:
        choices = typing.get_args(annotation)
        kind = type(choices[0])
    elif annotation in (int, float, str, bool):
        kind = annotation
    return SettingSpec(name, default, info.description or "", choices, minimum, maximum, kind)
