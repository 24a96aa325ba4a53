"""Robustness of a model on a FiftyOne collection, stored as a run, compared with K_F."""

from __future__ import annotations

import math

import numpy as np
import torch

from . import compute, runs
from .attacks import attack_model, pair_certificate
from .features import extract_features
from .models import NormalizedModel
from .robustness import RobustnessReport, SharpnessComparison, check_model, encode_targets, robustness_fields
from .settings import FeatureSettings, ModelInput, RobustnessSettings

__all__ = ["evaluate_collection", "sharpness_scale"]


def evaluate_collection(
    samples, model, *, settings: RobustnessSettings, label_field, class_names,
    model_input: ModelInput, sharpness_run_key, run_key, overwrite, progress,
) -> RobustnessReport:
    """See :func:`fiftyone_intrinsic.evaluate_robustness`."""
    runs.validate_run_key(samples, run_key, overwrite)
    labels = compute._classification_labels(samples, label_field)
    targets, names = encode_targets(labels, [str(c) for c in class_names] if class_names else sorted(set(labels)))
    names_of = robustness_fields(run_key)
    flip_fields = [f"{names_of['flip_prefix']}{attack}" for attack in settings.attacks]
    fields = [names_of["correct"], names_of["min_epsilon"], names_of["min_l2"], *flip_fields]
    compute._check_free_fields(samples, run_key, fields)
    scale = sharpness_scale(samples, sharpness_run_key, model_input) if sharpness_run_key else None

    report = compute._Reporter(progress)
    feature_settings = FeatureSettings(preprocessing=model_input.preprocessing())
    pixels = extract_features(samples, feature_settings, progress=lambda f, label: report(0.2 * f, label))
    images = _as_images(pixels.matrix, model_input)
    wrapped = NormalizedModel(model, model_input)
    check_model(wrapped, images[: min(8, len(images))], names, settings)
    result = attack_model(wrapped, images, targets, settings, progress=lambda f, label: report(0.2 + 0.7 * f, label))
    comparison = None
    if sharpness_run_key:
        report(0.92, "Pair certificate")
        comparison = _compare(samples, sharpness_run_key, scale, wrapped, names, result, pixels.sample_ids, model_input, settings, label_field)

    fragile = _fragile(result, settings)
    config = compute._config(
        samples, "adversarial_robustness", settings, pixels, label_field=label_field,
        fields=fields, tags=[names_of["fragile_tag"]], saved_views=[names_of["view"]],
        extra=dict(model=f"{type(model).__module__}.{type(model).__name__}",
                   model_input=model_input.model_dump(), class_names=names,
                   sharpness_run_key=sharpness_run_key),
    )
    values = _stored_values(result, names, comparison)

    def write():
        ids = pixels.sample_ids
        samples.set_values(names_of["correct"], dict(zip(ids, result.clean_correct.tolist())), key_field="id")
        if result.min_epsilon is not None:
            samples.set_values(names_of["min_epsilon"], dict(zip(ids, compute._floats(result.min_epsilon))), key_field="id")
            samples.set_values(names_of["min_l2"], dict(zip(ids, compute._floats(result.min_l2))), key_field="id")
        for field, attack in zip(flip_fields, settings.attacks):
            curve = result.curves[attack]
            first = [next((curve.epsilons[e] for e in np.flatnonzero(row)), None) for row in curve.fooled]
            samples.set_values(field, dict(zip(ids, first)), key_field="id")
        fragile_ids = [ids[i] for i in fragile]
        dataset = samples._dataset
        if fragile_ids:
            dataset.select(fragile_ids).tag_samples(names_of["fragile_tag"])
        dataset.save_view(
            names_of["view"], dataset.select(fragile_ids, ordered=True),
            description=f"Run {run_key!r}: samples that flip at the smallest attack budget",
        )

    compute._store(samples, run_key, config, values, write)
    report(1.0, f"clean accuracy {result.clean_accuracy:.3f}")
    return RobustnessReport(result, names, comparison)


def sharpness_scale(samples, sharpness_run_key, model_input: ModelInput) -> float:
    """Feature units of the sharpness run per L2 unit of the model's [0, 1] input; refuses
    runs whose preprocessing is not the model's (K_F and R̂ would not be comparable)."""
    info = runs.get_intrinsic_run_info(samples, sharpness_run_key)
    if info.config.method != "label_sharpness":
        raise ValueError(f"Run {sharpness_run_key!r} is a {info.config.method} run, not label_sharpness.")
    features = info.config.features
    expected = [model_input.size, model_input.size, model_input.channels]
    if features.get("source") != "pixels" or features.get("image_shape") != expected or features.get("normalize_max"):
        raise ValueError(
            f"Label-sharpness run {sharpness_run_key!r} was computed on {_describe(features)}, but the "
            f"model sees {expected[0]}x{expected[1]}x{expected[2]} pixels in [0, 1]; R̂ and 1/K_F are "
            "comparable only in the same preprocessing. Recompute K_F with "
            f"size={model_input.size}, channels={model_input.channels}, normalize_max=False."
        )
    return 255.0 if features.get("value_range") == "byte" else 1.0


def _describe(features) -> str:
    if features.get("source") != "pixels":
        return str(features.get("source"))
    shape = "x".join(map(str, features.get("image_shape", [])))
    extra = ", per-image max normalized" if features.get("normalize_max") else ""
    return f"{shape} pixels in {features.get('value_range')} range{extra}"


def _as_images(matrix, model_input: ModelInput) -> torch.Tensor:
    size, channels = model_input.size, model_input.channels
    return torch.from_numpy(matrix).float().view(-1, size, size, channels).permute(0, 3, 1, 2).contiguous()


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
    stored = runs.load_intrinsic_results(samples, run_key)
    certificate = None
    if stored.pairs:
        pair = stored.pairs[0]
        dataset = samples._dataset
        both = dataset.select([pair["id_i"], pair["id_j"]], ordered=True)
        x = _as_images(extract_features(both, FeatureSettings(preprocessing=model_input.preprocessing())).matrix, model_input)
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
    def number(value):
        return float(value) if value is not None and math.isfinite(value) else None

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
            scale=comparison.scale,
            certificate=None if cert is None else dict(
                distance=cert.distance, both_correct=cert.both_correct,
                segment_flip=number(cert.segment_flip), pgd_flip=number(cert.pgd_flip),
                holds=cert.holds, margin=number(cert.margin),
            ),
        )
    return values
