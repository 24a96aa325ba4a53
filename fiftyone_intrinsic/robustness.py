"""Adversarial robustness of a user's model, checked against label sharpness K_F.

:func:`evaluate_robustness` takes image tensors, or a FiftyOne collection (then the result
is stored as a run, with per-sample fields, a tag and a saved view). With a stored
label-sharpness run of the same preprocessing it reports the empirical robustness R̂ beside
1/K_F and checks the pair certificate on the sharpest pair (science.md §1, §5).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import numpy as np
import torch

from .attacks import AttackResult, PairCertificate, attack_model, pair_certificate
from .models import NormalizedModel, eval_mode
from .settings import ModelInput, RobustnessSettings

__all__ = ["RobustnessReport", "SharpnessComparison", "evaluate_robustness", "robustness_fields"]


@dataclass(frozen=True)
class SharpnessComparison:
    """R̂ beside 1/K_F, both in the label-sharpness run's feature space.

    Attributes:
        run_key: the label-sharpness run.
        k_f: its K_F (1 / feature units).
        inverse_k_f: ``1 / K_F``, the smallest distance between differently-labelled samples.
        r_hat_mean, r_hat_median: R̂ converted to the same units.
        scale: feature units per L2 unit of the model's [0, 1] input (255 for [0, 255]).
        certificate: the check on the sharpest pair (distances in model input units).
    """

    run_key: str
    k_f: float
    inverse_k_f: float
    r_hat_mean: float
    r_hat_median: float
    scale: float
    certificate: Optional[PairCertificate]


@dataclass(frozen=True)
class RobustnessReport:
    """Attack results, and the comparison with K_F when a sharpness run was given."""

    attacks: AttackResult
    class_names: list
    sharpness: Optional[SharpnessComparison]


def robustness_fields(run_key: str) -> dict:
    """Names of what a robustness run writes."""
    return {
        "correct": f"{run_key}_clean_correct",
        "min_epsilon": f"{run_key}_min_epsilon",
        "min_l2": f"{run_key}_min_l2",
        "flip_prefix": f"{run_key}_flip_epsilon_",
        "fragile_tag": f"{run_key}:flips_at_smallest_epsilon",
        "view": f"{run_key}_fragile",
    }


def evaluate_robustness(
    data,
    model: torch.nn.Module,
    *,
    labels=None,
    label_field: str = "ground_truth",
    class_names: Sequence[str] | None = None,
    model_input: ModelInput | dict | None = None,
    attacks=("fgsm", "pgd", "pgd_l2"),
    epsilons=(0.0, 1.0, 2.0, 4.0, 8.0),
    epsilons_l2=(0.0, 0.25, 0.5, 1.0, 2.0),
    pgd_steps: int = 10,
    minimal: bool = True,
    max_epsilon: float = 16.0,
    max_l2: float = 4.0,
    sharpness_run_key: Optional[str] = None,
    run_key: str = "adversarial_robustness",
    device=None,
    batch_size: int = 128,
    seed: int = 0,
    overwrite: bool = False,
    progress: Callable[[float, str], None] | None = None,
) -> RobustnessReport:
    """Attack ``model`` on ``data`` with torchattacks and report its robustness.

    Args:
        data: ``(N, C, H, W)`` images in [0, 1] (tensor or array), or a FiftyOne dataset
            or view (its images are preprocessed as ``model_input`` says).
        model: any ``torch.nn.Module`` mapping normalized images to class logits. Its
            train/eval mode is restored afterwards.
        labels: for tensors, ``N`` labels (names in ``class_names`` or class indices).
        label_field ("ground_truth"): for collections, the Classification field.
        class_names (None): the label of each model output index; for collections the
            default is the sorted labels of ``label_field``; for tensors ``range(C)``.
        model_input (None): size, channels and the mean/std normalization put inside the
            model wrapper; for tensors the default is no normalization.
        attacks, epsilons (1/255 units), epsilons_l2, pgd_steps, minimal, max_epsilon,
            max_l2, batch_size, seed: see :class:`~fiftyone_intrinsic.settings.RobustnessSettings`.
        sharpness_run_key (None): a label-sharpness run of the same preprocessing, for R̂
            versus 1/K_F and the pair certificate (collections only).
        run_key ("adversarial_robustness"): key of the stored run (collections only).
        device (None): ``"auto"``/``None`` (CUDA when present), ``"cpu"`` or ``"cuda"``.
        overwrite (False): replace an existing run with this key.
        progress (None): ``progress(fraction, label)``.
    """
    settings = RobustnessSettings(
        attacks=tuple(attacks), epsilons=tuple(epsilons), epsilons_l2=tuple(epsilons_l2),
        pgd_steps=pgd_steps, minimal=minimal, max_epsilon=max_epsilon, max_l2=max_l2,
        batch_size=batch_size, seed=seed, device=None if device is None else str(device),
    )
    if _is_collection(data):
        from .robustness_runs import evaluate_collection

        return evaluate_collection(
            data, model, settings=settings, label_field=label_field, class_names=class_names,
            model_input=_model_input(model_input), sharpness_run_key=sharpness_run_key,
            run_key=run_key, overwrite=overwrite, progress=progress,
        )
    images = torch.as_tensor(np.asarray(data) if not isinstance(data, torch.Tensor) else data, dtype=torch.float32)
    if images.ndim != 4:
        raise ValueError(f"Images must be (N, C, H, W) in [0, 1]; got shape {tuple(images.shape)}.")
    if model_input is None:
        model_input = ModelInput(size=images.shape[-1], channels=images.shape[1], mean=(0.0,), std=(1.0,))
    model_input = _model_input(model_input)
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
    from .devices import resolve_device

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


def _model_input(model_input) -> ModelInput:
    if isinstance(model_input, dict):
        return ModelInput(**model_input)
    return model_input or ModelInput()


def _is_collection(data) -> bool:
    try:
        import fiftyone.core.collections as foc
    except ImportError:
        return False
    return isinstance(data, foc.SampleCollection)
