"""Adversarial robustness of a model on a FiftyOne collection, stored as a run, compared
with a stored label-sharpness run (docs/science.md §1, §5)."""

from __future__ import annotations

from typing import Callable, Optional, Sequence

import numpy as np
import torch

from ..core import robustness as array_robustness
from ..core.adversarial import attack_model, pair_certificate
from ..core.attacks import ATTACKS
from ..core.models import NormalizedModel
from ..core.robustness import RobustnessReport, SharpnessComparison, check_model, encode_targets
from ..core.settings import ModelInput, RobustnessSettings, as_model_input
from .describe import describe_features
from .features import extract_features
from .labels import classification_labels
from .progress import StageReporter
from .results import RobustnessResults
from .claims import claim_run
from .runs import load_intrinsic_results, require_method, validate_run_key
from .schema import ROBUSTNESS, SHARPNESS
from .settings import FeatureSettings
from .storage import json_float, json_floats, make_config

__all__ = ["evaluate_robustness", "evaluate_collection", "sharpness_scale"]


def evaluate_robustness(
    data,
    model: torch.nn.Module,
    *,
    labels=None,
    label_field: str = "ground_truth",
    class_names: Sequence[str] | None = None,
    model_input: ModelInput | dict | None = None,
    attacks=tuple(ATTACKS),
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
            or view (its images are preprocessed as ``model_input`` says; the result is
            stored as a run with per-sample fields, a tag and a saved view).
        model: any ``torch.nn.Module`` mapping normalized images to class logits. Its
            train/eval mode is restored afterwards.
        labels: for tensors, ``N`` labels (names in ``class_names`` or class indices).
        label_field ("ground_truth"): for collections, the Classification field.
        class_names (None): the label of each model output index; for collections the
            default is the sorted labels of ``label_field``; for tensors ``range(C)``.
        model_input (None): size, channels and the mean/std normalization put inside the
            model wrapper; for tensors the default is no normalization.
        attacks (every registered attack), epsilons (1/255 units), epsilons_l2,
            pgd_steps, minimal, max_epsilon, max_l2, batch_size, seed: see
            :class:`~fiftyone_intrinsic.core.settings.RobustnessSettings`.
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
    if not _is_collection(data):
        return array_robustness.evaluate_robustness(
            data, model, labels, class_names=class_names, model_input=model_input,
            settings=settings, progress=progress,
        )
    return evaluate_collection(
        data, model, settings=settings, label_field=label_field, class_names=class_names,
        model_input=as_model_input(model_input), sharpness_run_key=sharpness_run_key,
        run_key=run_key, overwrite=overwrite, progress=progress,
    )


def evaluate_collection(
    samples, model, *, settings: RobustnessSettings, label_field, class_names,
    model_input: ModelInput, sharpness_run_key, run_key, overwrite, progress,
) -> RobustnessReport:
    """See :func:`fiftyone_intrinsic.evaluate_robustness`."""
    validate_run_key(samples, run_key, overwrite, ROBUSTNESS.method)
    labels = classification_labels(samples, label_field)
    targets, names = encode_targets(labels, [str(c) for c in class_names] if class_names else sorted(set(labels)))
    scale = sharpness_scale(samples, sharpness_run_key, model_input) if sharpness_run_key else None

    with claim_run(samples, run_key, ROBUSTNESS, overwrite=overwrite, attacks=settings.attacks) as claim:
        written = claim.names
        report = StageReporter(progress)
        feature_settings = FeatureSettings(preprocessing=model_input.preprocessing())
        pixels = extract_features(samples, feature_settings, progress=report.fraction(0.0, 0.2))
        images = pixels.images()
        wrapped = NormalizedModel(model, model_input)
        check_model(wrapped, images[: min(8, len(images))], names, settings)
        result = attack_model(wrapped, images, targets, settings, progress=report.fraction(0.2, 0.9))
        comparison = None
        if sharpness_run_key:
            report(0.92, "Pair certificate")
            comparison = _compare(samples, sharpness_run_key, scale, wrapped, names, result, pixels.sample_ids, model_input, settings, label_field)

        fragile = _fragile(result, settings)
        config = make_config(
            ROBUSTNESS.method, settings, pixels.fingerprint(), written, label_field=label_field,
            model=f"{type(model).__module__}.{type(model).__name__}",
            model_input=model_input.model_dump(), class_names=names, sharpness_run_key=sharpness_run_key,
        )
        values = _stored_values(result, names, comparison)

        def write():
            ids = pixels.sample_ids
            samples.set_values(written.field("correct"), dict(zip(ids, result.clean_correct.tolist())), key_field="id")
            if result.min_epsilon is not None:
                samples.set_values(written.field("min_epsilon"), dict(zip(ids, json_floats(result.min_epsilon))), key_field="id")
                samples.set_values(written.field("min_l2"), dict(zip(ids, json_floats(result.min_l2))), key_field="id")
            for attack in settings.attacks:
                curve = result.curves[attack]
                first = [next((curve.epsilons[e] for e in np.flatnonzero(row)), None) for row in curve.fooled]
                samples.set_values(written.field(f"flip_epsilon:{attack}"), dict(zip(ids, first)), key_field="id")
            fragile_ids = [ids[i] for i in fragile]
            dataset = samples._root_dataset
            claim.tag_samples("fragile", fragile_ids)
            claim.save_view(
                "fragile", dataset.select(fragile_ids, ordered=True),
                description=f"Run {run_key!r}: samples that flip at the smallest attack budget",
            )

        claim.store(config, RobustnessResults, values, write)
        report(1.0, f"clean accuracy {result.clean_accuracy:.3f}")
        return RobustnessReport(result, names, comparison)


def sharpness_scale(samples, sharpness_run_key, model_input: ModelInput) -> float:
    """Feature units of the sharpness run per L2 unit of the model's [0, 1] input; refuses
    runs whose preprocessing is not the model's (K_F and R̂ would not be comparable)."""
    info = require_method(samples, sharpness_run_key, SHARPNESS.method)
    features = info.config.features
    expected = [model_input.size, model_input.size, model_input.channels]
    if features.get("source") != "pixels" or features.get("image_shape") != expected or features.get("normalize_max"):
        raise ValueError(
            f"Label-sharpness run {sharpness_run_key!r} was computed on {describe_features(features)}, but the "
            f"model sees {expected[0]}x{expected[1]}x{expected[2]} pixels in [0, 1]; R̂ and 1/K_F are "
            "comparable only in the same preprocessing. Recompute K_F with "
            f"size={model_input.size}, channels={model_input.channels}, normalize_max=False."
        )
    return 255.0 if features.get("value_range") == "byte" else 1.0


def _fragile(result, settings) -> list:
    """Samples correct clean that the first L-inf attack fools at its smallest positive ε."""
    linf = [a for a in ("pgd", "fgsm") if a in result.curves]
    name = linf[0] if linf else settings.attacks[0]
    curve = result.curves[name]
    positive = [i for i, eps in enumerate(curve.epsilons) if eps > 0]
    if not positive:
        return []
    return np.flatnonzero(result.clean_correct & curve.fooled[:, positive[0]]).tolist()


def _compare(samples, run_key, scale, wrapped, names, result, sample_ids, model_input, settings, label_field):
    stored = load_intrinsic_results(samples, run_key)
    certificate = None
    if stored.pairs:
        pair = stored.pairs[0]
        dataset = samples._dataset
        both = dataset.select([pair["id_i"], pair["id_j"]], ordered=True)
        x = extract_features(both, FeatureSettings(preprocessing=model_input.preprocessing())).images()
        position = {sample_id: i for i, sample_id in enumerate(sample_ids)}
        flips = [result.min_l2[position[i]] if result.min_l2 is not None and i in position else float("nan")
                 for i in (pair["id_i"], pair["id_j"])]
        y = encode_targets([pair["label_i"], pair["label_j"]], names)[0]
        certificate = pair_certificate(wrapped, x[0], x[1], int(y[0]), int(y[1]), flips, device=settings.device)
    return SharpnessComparison(
        run_key=run_key,
        k_f=float(stored.k_f) if stored.k_f is not None else float("nan"),
        inverse_k_f=1.0 / stored.k_f if stored.k_f else float("nan"),
        r_hat_mean=result.r_hat_mean * scale,
        r_hat_median=result.r_hat_median * scale,
        scale=scale,
        certificate=certificate,
    )


def _stored_values(result, names, comparison) -> dict:
    number = json_float
    values = dict(
        class_names=names,
        clean_accuracy=result.clean_accuracy, clean_loss=result.clean_loss,
        delta_loss=number(result.delta_loss),
        curves={
            name: dict(norm=c.norm, epsilons=list(c.epsilons), accuracy=list(c.accuracy), loss=list(c.loss))
            for name, c in result.curves.items()
        },
        r_hat_mean=number(result.r_hat_mean), r_hat_median=number(result.r_hat_median),
        n_unbroken=result.n_unbroken, n_samples=int(result.predictions.shape[0]),
        sharpness=None,
    )
    if comparison is not None:
        cert = comparison.certificate
        values["sharpness"] = dict(
            run_key=comparison.run_key, k_f=number(comparison.k_f), inverse_k_f=number(comparison.inverse_k_f),
            r_hat_mean=number(comparison.r_hat_mean), r_hat_median=number(comparison.r_hat_median),
            scale=comparison.scale, radius_bound=number(comparison.radius_bound),
            r_hat_over_bound=number(comparison.r_hat_over_bound),
            certificate=None if cert is None else dict(
                distance=cert.distance, both_correct=cert.both_correct,
                segment_flip=number(cert.segment_flip), pgd_flip=number(cert.pgd_flip),
                flip_radius=number(cert.flip_radius),
            ),
        )
    return values


def _is_collection(data) -> bool:
    import fiftyone.core.collections as foc

    return isinstance(data, foc.SampleCollection)
