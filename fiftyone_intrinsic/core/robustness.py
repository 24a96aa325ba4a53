"""Adversarial robustness of a user's model on image tensors, and the report types that
compare it with label sharpness K_F (docs/science.md §1, §5).

The FiftyOne layer (:mod:`fiftyone_intrinsic.datasets.robustness`) runs the same on a
collection, stores it as a run and fills in :class:`SharpnessComparison` from a stored
label-sharpness run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import numpy as np
import torch

from .adversarial import AttackResult, PairCertificate, attack_model
from .devices import resolve_device
from .models import NormalizedModel, eval_mode
from .settings import ModelInput, RobustnessSettings, as_model_input

__all__ = [
    "RobustnessReport",
    "SharpnessComparison",
    "evaluate_robustness",
    "encode_targets",
    "check_model",
]


@dataclass(frozen=True)
class SharpnessComparison:
    """R̂ beside the bound that K_F sets, both in the label-sharpness run's feature space.

    The two images of the sharpest pair cannot both be more robust than ``1 / (2 K_F)``
    when the model is right on both (docs/science.md §5); the rest of the dataset can.
    ``r_hat_over_bound`` compares the dataset's typical robustness with that bound: it can
    come out on either side of 1, and says how much the model's fragility exceeds what
    label sharpness alone forces (below 1) or how much room the model keeps (above 1).

    Attributes:
        run_key: the label-sharpness run.
        k_f: its K_F (1 / feature units).
        inverse_k_f: ``1 / K_F``, the smallest distance between differently-labelled samples.
        r_hat_mean, r_hat_median: R̂ converted to the same units.
        scale: feature units per L2 unit of the model's [0, 1] input (255 for [0, 255]).
        certificate: where the decision flips near the sharpest pair (model input units).
    """

    run_key: str
    k_f: float
    inverse_k_f: float
    r_hat_mean: float
    r_hat_median: float
    scale: float
    certificate: Optional[PairCertificate]

    @property
    def radius_bound(self) -> float:
        """``1 / (2 K_F)``: the robust radius the sharpest pair's images cannot both exceed."""
        return self.inverse_k_f / 2

    @property
    def r_hat_over_bound(self) -> float:
        """Median R̂ divided by :attr:`radius_bound` (NaN when either is undefined)."""
        bound = self.radius_bound
        return self.r_hat_median / bound if bound and math.isfinite(bound) else float("nan")


@dataclass(frozen=True)
class RobustnessReport:
    """Attack results, and the comparison with K_F when a sharpness run was given."""

    attacks: AttackResult
    class_names: list
    sharpness: Optional[SharpnessComparison]


def evaluate_robustness(
    images,
    model: torch.nn.Module,
    labels,
    *,
    class_names: Sequence[str] | None = None,
    model_input: ModelInput | dict | None = None,
    settings: RobustnessSettings | None = None,
    progress: Callable[[float, str], None] | None = None,
) -> RobustnessReport:
    """Attack ``model`` on ``images`` with torchattacks and report its robustness.

    Args:
        images: ``(N, C, H, W)`` images in [0, 1] (tensor or array).
        model: any ``torch.nn.Module`` mapping normalized images to class logits. Its
            train/eval mode is restored afterwards.
        labels: ``N`` labels (names in ``class_names`` or class indices).
        class_names (None): the label of each model output index; ``range(C)`` by default.
        model_input (None): the mean/std normalization put inside the model wrapper;
            default: none.
        settings (None): :class:`RobustnessSettings` (attacks, budgets, device, ...).
        progress (None): ``progress(fraction, label)``.

    Returns:
        the :class:`RobustnessReport` (``sharpness`` is ``None``: no K_F run here).
    """
    settings = settings or RobustnessSettings()
    images = torch.as_tensor(np.asarray(images) if not isinstance(images, torch.Tensor) else images, dtype=torch.float32)
    if images.ndim != 4:
        raise ValueError(f"Images must be (N, C, H, W) in [0, 1]; got shape {tuple(images.shape)}.")
    if model_input is None:
        model_input = ModelInput(size=images.shape[-1], channels=images.shape[1], mean=(0.0,), std=(1.0,))
    model_input = as_model_input(model_input)
    if labels is None:
        raise ValueError("Give the true labels of the images (labels=...).")
    names = [str(c) for c in class_names] if class_names is not None else None
    targets, names = encode_targets(labels, names)
    wrapped = NormalizedModel(model, model_input)
    check_model(wrapped, images[: min(8, len(images))], names, settings)
    return RobustnessReport(attack_model(wrapped, images, targets, settings, progress), names, None)


def encode_targets(labels, class_names):
    """Map labels to model output indices; ``class_names`` defaults to ``0..C-1`` for
    integer labels. Raises when a label has no output index."""
    labels = [str(label) for label in np.asarray(labels).reshape(-1).tolist()]
    if class_names is None:
        class_names = sorted(set(labels), key=lambda s: (len(s), s))
    index = {name: i for i, name in enumerate(class_names)}
    unknown = sorted(set(labels) - set(index))
    if unknown:
        raise ValueError(
            f"Labels {unknown[:10]} are not in the model's class map {class_names[:20]}; give "
            "class_names listing the label of every model output, in output order."
        )
    return torch.tensor([index[label] for label in labels], dtype=torch.int64), list(class_names)


def check_model(model, probe: torch.Tensor, class_names, settings: RobustnessSettings) -> None:
    """Fail early, with what to change, when the model does not fit the data."""
    device = resolve_device(settings.device)
    with eval_mode(model), torch.no_grad():
        model.to(device)
        try:
            output = model(probe.to(device))
        except Exception as error:  # any failure here means the input does not fit
            raise ValueError(
                f"The model rejected input of shape {tuple(probe.shape)} (N, C, H, W): "
                f"{str(error).splitlines()[0]}. Set the input size and channels the model "
                "expects (a torch.export program needs a dynamic batch dimension)."
            ) from error
    if output.ndim != 2 or output.shape[1] != len(class_names):
        raise ValueError(
            f"The model outputs shape {tuple(output.shape)}, but the class map has "
            f"{len(class_names)} classes {class_names[:20]}; it must output one logit per class."
        )
    if not torch.isfinite(output).all():
        raise ValueError("The model outputs NaN or inf on these images; check its weights and input normalization.")
