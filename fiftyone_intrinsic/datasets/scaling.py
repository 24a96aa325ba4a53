"""The scaling law on a FiftyOne collection: learning curve, fit, law, plan, stored as a run.

Everything is validated before any image is loaded or model trained, and nothing is
written before the computation has finished, so bad input or a failed run leaves the
dataset as it was.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
import torch

from ..core.dimension import intrinsic_dimension
from ..core.learning_curve import (
    LearningCurve,
    LearningCurveSettings,
    ModelFactory,
    measure_curve,
    resolve_sizes,
    resolve_split,
)
from ..core.scaling import (
    ExponentPrediction,
    LawComparison,
    PowerLawFit,
    compare_with_law,
    fit_power_law,
    plan_budget,
    predict_exponent,
)
from ..core.settings import Preprocessing
from ..core.sharpness import label_sharpness
from .describe import describe_features
from .features import Features, extract_features
from .labels import classification_labels
from .progress import StageReporter
from .results import ScalingLawResults
from .claims import claim_run
from .runs import get_intrinsic_run_info, load_intrinsic_results, require_method, validate_run_key
from .schema import DIMENSION, REPRESENTATION, SCALING, SHARPNESS
from .settings import SCALING_MODES, FeatureSettings, ScalingLawSettings
from .storage import json_float, make_config

__all__ = [
    "ScalingLawReport",
    "fit_scaling_law",
    "prepare_split",
    "check_sources",
    "DEFAULT_TARGET_FRACTIONS",
]

#: Default targets of the planner: these fractions of the fitted loss at the largest size.
DEFAULT_TARGET_FRACTIONS = (0.9, 0.75, 0.5)


@dataclass(frozen=True)
class ScalingLawReport:
    """What a scaling-law run found.

    Attributes:
        mode: one of :data:`~fiftyone_intrinsic.datasets.settings.SCALING_MODES`.
        curve: the :class:`LearningCurve` (``None`` before labeling).
        fit: the :class:`PowerLawFit` of the curve (``None`` before labeling).
        law: the :class:`LawComparison` with d_data, d_repr and K_F (``None`` before labeling).
        plans: ``{"fitted": BudgetPlan, "law": BudgetPlan}``; ``"law"`` only with d_data.
        primary_plan: the plan to show first: ``"law"`` in pilot mode, else ``"fitted"``.
        prediction: the :class:`ExponentPrediction` from d_data alone (``None`` without it).
        sources: where d_data, K_F and d_repr came from: a run key or ``"computed"``.
    """

    mode: str
    curve: Optional[LearningCurve]
    fit: Optional[PowerLawFit]
    law: Optional[LawComparison]
    plans: dict
    primary_plan: Optional[str]
    prediction: Optional[ExponentPrediction]
    sources: dict = field(default_factory=dict)


def fit_scaling_law(
    samples,
    label_field: Optional[str] = "ground_truth",
    *,
    settings: ScalingLawSettings | None = None,
    run_key: str = "scaling_law",
    test_samples=None,
    model_factory: Optional[ModelFactory] = None,
    overwrite: bool = False,
    progress: Callable[[float, str], None] | None = None,
    **options,
) -> ScalingLawReport:
    """Measure the scaling law of a labeled collection and plan a labeling budget.

    Trains a model on nested class-balanced subsets of the collection (see
    :func:`~fiftyone_intrinsic.core.learning_curve.run_learning_curve`), fits
    ``log L = offset + exponent · log N`` with a bootstrap over seeds, compares the
    exponent with ``−1/d_data`` and ``−1/d_repr`` and the offset with ``log K_F``
    (docs/science.md §1), and predicts the N needed for target losses. Stores a run
    ``run_key`` (method ``"scaling_law"``, results
    :class:`~fiftyone_intrinsic.datasets.results.ScalingLawResults`) holding every
    per-size, per-seed loss, the fit line with its band, the line of slope ``−1/d_data``,
    and the plans; writes the field ``<run_key>_split`` (``"test"`` or ``"pool"``).

    Args:
        samples: a FiftyOne dataset or view: the labeled images (the training pool, and
            the held-out split too when ``test_samples`` is None).
        label_field ("ground_truth"): a Classification field; unused before labeling.
        settings (None): :class:`~fiftyone_intrinsic.datasets.settings.ScalingLawSettings`;
            or give its fields (and those of its ``curve`` and ``fit``) as flat keywords
            in ``options``: ``mode``, ``sizes``, ``n_seeds``, ``seed``, ``n_test``,
            ``split_seed``, ``balance``, ``epochs``, ``min_steps``, ``batch_size``,
            ``learning_rate``, ``weight_decay``, ``schedule``, ``size``, ``channels``,
            ``dimension_run_key``, ``sharpness_run_key``, ``representation_run_key``,
            ``measure``, ``dimension_k``, ``target_loss``, ``n_bootstrap``,
            ``confidence``, ``device``.
        run_key ("scaling_law"): key of the stored run.
        test_samples (None): a view of the same dataset to hold out; it must not share a
            sample with ``samples``. None carves ``n_test`` images from ``samples``.
        model_factory (None): ``factory(n_classes, channels, size)`` returning a fresh
            model for [0, 1] images; None: the built-in
            :class:`~fiftyone_intrinsic.core.learning_curve.SmallCNN`.
        overwrite (False): replace an existing run with this key.
        progress (None): ``progress(fraction, label)``; None shows a progress bar.

    Raises:
        ValueError: fewer than three distinct sizes, sizes larger than the labeled view
            allows, a single class, a held-out split that overlaps the training view or
            comes from another dataset, runs of another preprocessing, a taken run key.
        TypeError: an unknown option, or both ``settings`` and options.
    """
    if settings is None:
        if options.get("mode", "curve") not in SCALING_MODES:
            raise ValueError(f"Unknown mode {options['mode']!r}; use one of {list(SCALING_MODES)}.")
        settings = ScalingLawSettings.from_options(**options)
    elif options:
        raise TypeError(f"Give either settings or options, not both; got options {sorted(options)}.")
    curve_settings = settings.curve
    preprocessing = Preprocessing(size=settings.size, channels=settings.channels, value_range="unit")
    validate_run_key(samples, run_key, overwrite, SCALING.method)
    sources = check_sources(
        samples, settings.dimension_run_key, settings.sharpness_run_key, settings.representation_run_key,
        settings.size, settings.channels,
    )
    if settings.mode == "before_labeling":
        return _before_labeling(samples, run_key, settings, preprocessing, sources, progress, overwrite)

    with claim_run(samples, run_key, SCALING, overwrite=overwrite) as claim:
        ids, labels, train_pos, test_pos = prepare_split(samples, label_field, test_samples, curve_settings)
        sizes = resolve_sizes(labels[train_pos], curve_settings, pilot=settings.mode == "pilot")
        curve_settings = curve_settings.model_copy(update={"sizes": tuple(sizes.tolist())})
        report = StageReporter(progress)
        features = _features(samples, ids, preprocessing, report)
        _require_same_preprocessing(samples, sources, features.fingerprint())
        pool_matrix = features.matrix[train_pos]
        dimension = _data_dimension(samples, sources, pool_matrix, settings, report)
        sharpness = _sharpness(samples, sources, pool_matrix, labels[train_pos], settings, report)
        d_repr = _representation_dimension(samples, sources)
        images = _as_images(features)
        curve = measure_curve(
            images, labels, train_pos, test_pos, sizes, curve_settings, model_factory, report.fraction(0.25, 0.95),
        )
        fit = fit_power_law(curve.sizes, curve.losses, **settings.fit.model_dump())
        d_value, d_interval = dimension if dimension else (None, None)
        law = compare_with_law(fit, d_data=d_value, d_data_interval=d_interval, d_repr=d_repr, k_f=sharpness)
        targets = _targets(fit, settings.target_loss)
        plans = {"fitted": plan_budget(fit, targets)}
        if d_value is not None:
            plans["law"] = plan_budget(fit, targets, method="law", d_data=d_value, d_data_interval=d_interval)
        primary = "law" if settings.mode == "pilot" and "law" in plans else "fitted"
        prediction = predict_exponent(d_value, d_interval) if d_value is not None else None
        sources = dict(
            d_data=sources["d_data"] or ("computed" if d_value is not None else None),
            k_f=sources["k_f"] or ("computed" if sharpness is not None else None),
            d_repr=sources["d_repr"],
        )
        result = ScalingLawReport(settings.mode, curve, fit, law, plans, primary, prediction, sources)

        recorded = settings.model_copy(update={"curve": curve_settings})
        config = make_config(
            SCALING.method, recorded, features.fingerprint(), claim.names, label_field=label_field,
            mode=settings.mode, model=curve.model,
            test_view=None if test_samples is None else _describe_view(test_samples),
        )
        values = _stored_values(result, ids, features, train_pos, test_pos)

        def write():
            split = {ids[i]: "pool" for i in train_pos.tolist()}
            split.update({ids[i]: "test" for i in test_pos.tolist()})
            samples._root_dataset.set_values(claim.names.field("split"), split, key_field="id")

        claim.store(config, ScalingLawResults, values, write)
        plan = plans[primary]
        report(1.0, f"exponent {fit.exponent:.3f} [{fit.exponent_low:.3f}, {fit.exponent_high:.3f}]"
               + (f", −1/d_data = {law.predicted_exponent:.3f}" if law.predicted_exponent is not None else "")
               + f"; N for loss {plan.target_loss[-1]:.3g}: {_format_n(plan.n_needed[-1])}")
        return result


def _before_labeling(samples, run_key, settings: ScalingLawSettings, preprocessing, sources, progress, overwrite):
    if sources["d_data"] is None and not settings.measure:
        raise ValueError(
            "Before labeling, the prediction needs d_data: give dimension_run_key or measure=True."
        )
    with claim_run(samples, run_key, SCALING, overwrite=overwrite) as claim:
        report = StageReporter(progress)
        ids = samples.values("id")
        features = _features(samples, ids, preprocessing, report)
        _require_same_preprocessing(samples, sources, features.fingerprint())
        measured = settings.model_copy(update={"measure": True})
        d_value, d_interval = _data_dimension(samples, sources, features.matrix, measured, report)
        prediction = predict_exponent(d_value, d_interval)
        config = make_config(
            SCALING.method, settings, features.fingerprint(), None, mode="before_labeling",
        )
        sources = dict(sources, d_data=sources["d_data"] or "computed")
        values = dict(mode="before_labeling", prediction=prediction.as_dict(), n_pool=len(ids), sources=sources)
        claim.store(config, ScalingLawResults, values, lambda: None)
        report(1.0, f"predicted exponent −1/d_data = {prediction.exponent:.3f}; halving the loss bound "
                    f"takes {prediction.data_factor_per_halving:.3g}× the labels")
        return ScalingLawReport("before_labeling", None, None, None, {}, None, prediction, sources)


def prepare_split(samples, label_field, test_samples, settings: LearningCurveSettings):
    """``(ids, labels, train_positions, test_positions)``: the sample ids (training view,
    then the held-out view when given), their labels as strings, and the positions of the
    training pool and of the held-out split. Reads labels only, no image.

    Raises:
        ValueError: no label field, missing labels, a single class, a held-out view from
            another dataset or sharing samples with the training view, a held-out class
            the pool lacks, or a carved split larger than the data allows.
    """
    if label_field is None:
        raise ValueError("A learning curve needs labels: give label_field (a Classification field).")
    labels = classification_labels(samples, label_field)
    ids = samples.values("id")
    if test_samples is None:
        train_pos, test_pos = resolve_split(np.asarray([str(v) for v in labels]), settings)
        return ids, np.asarray([str(v) for v in labels]), train_pos, test_pos
    if test_samples._dataset.name != samples._dataset.name:
        raise ValueError(
            f"The held-out view belongs to dataset {test_samples._dataset.name!r}, not "
            f"{samples._dataset.name!r}; hold out samples of the same dataset."
        )
    test_labels = classification_labels(test_samples, label_field)
    test_ids = test_samples.values("id")
    overlap = sorted(set(ids) & set(test_ids))
    if overlap:
        raise ValueError(
            f"The held-out split overlaps the training view: {len(overlap)} of its "
            f"{len(test_ids)} samples are in both (e.g. {overlap[:3]}); a test loss on training "
            "images is not a test loss. Exclude them from the training view, e.g. "
            "view.match_tags('test', bool=False), or hold out another view."
        )
    all_labels = np.asarray([str(v) for v in list(labels) + list(test_labels)])
    n_pool = len(ids)
    train_pos, test_pos = resolve_split(
        all_labels, settings, train_index=np.arange(n_pool),
        test_index=np.arange(n_pool, n_pool + len(test_ids)),
    )
    return ids + test_ids, all_labels, train_pos, test_pos


def _features(samples, ids, preprocessing, report) -> Features:
    report(0.0, "Loading images")
    ordered = samples._dataset.select(ids, ordered=True)
    return extract_features(ordered, FeatureSettings(preprocessing=preprocessing), progress=report.fraction(0.0, 0.15))


def _as_images(features: Features) -> torch.Tensor:
    height, width, channels = features.image_shape
    if height != width:
        raise ValueError(
            f"The images are {height}x{width}; the built-in model and the runner need square "
            "images. Set the image size (e.g. size=28) to resize them."
        )
    return features.images()


def check_sources(samples, dimension_run_key=None, sharpness_run_key=None, representation_run_key=None,
                  size=None, channels=None) -> dict:
    """``{"d_data": key, "k_f": key, "d_repr": key}`` after checking each stored run's
    method and, when ``size`` and ``channels`` fix the preprocessing, that d_data and K_F
    were measured in it."""
    sources = dict(
        d_data=_checked_source(samples, dimension_run_key, DIMENSION.method, "d_data"),
        k_f=_checked_source(samples, sharpness_run_key, SHARPNESS.method, "K_F"),
        d_repr=_checked_source(samples, representation_run_key, REPRESENTATION.method, "d_repr"),
    )
    expected = _expected_fingerprint(size, channels)
    if expected is not None:
        _require_same_preprocessing(samples, sources, expected)
    return sources


def _checked_source(samples, run_key, method, what):
    """The run key, after checking that it is a run of ``method``."""
    if run_key is None:
        return None
    require_method(samples, run_key, method, f"{method}; it cannot give {what}")
    return run_key


def _require_same_preprocessing(samples, sources, ours: dict) -> None:
    """d_data and K_F of stored runs must be of the images the models see (docs/science.md §2):
    same pixels, size and channels, no per-image max; K_F also the same intensity range."""
    for what, label in (("d_data", "d_data"), ("k_f", "K_F")):
        run_key = sources[what]
        if run_key is None:
            continue
        stored = get_intrinsic_run_info(samples, run_key).config.features
        keys = ("source", "image_shape", "normalize_max") + (("value_range",) if what == "k_f" else ())
        mismatched = [key for key in keys if stored.get(key) != ours.get(key)]
        if mismatched:
            raise ValueError(
                f"Run {run_key!r} ({label}) was computed on {describe_features(stored)}, but the "
                f"models see {describe_features(ours)}; the two are comparable only in the same "
                f"preprocessing (they differ in {mismatched}). Recompute {label} with "
                f"size={ours['image_shape'][0]}, channels={ours['image_shape'][2]}, "
                "value_range='unit', normalize_max=False, or leave the run out."
            )


def _expected_fingerprint(size, channels):
    """The features' fingerprint when size and channels are fixed in advance, else None."""
    if size is None or channels is None:
        return None
    return dict(source="pixels", image_shape=[size, size, channels], normalize_max=False, value_range="unit")


def _data_dimension(samples, sources, pool_matrix, settings: ScalingLawSettings, report):
    """``(d_data, (low, high))`` from the stored run or measured on the pool; ``None``."""
    run_key = sources["d_data"]
    if run_key is not None:
        stored = load_intrinsic_results(samples, run_key)
        return float(stored.dimension), (json_float(stored.ci_low), json_float(stored.ci_high))
    if not settings.measure:
        return None
    report(0.15, "d_data of the training pool")
    # a pool too small for k neighbours gets the largest k it has room for
    k = min(settings.dimension_k, max(3, pool_matrix.shape[0] // 2 - 1))
    result = intrinsic_dimension(pool_matrix, estimator="mle", k=k, device=settings.device)
    return result.dimension, (result.ci_low, result.ci_high)


def _sharpness(samples, sources, pool_matrix, pool_labels, settings: ScalingLawSettings, report):
    run_key = sources["k_f"]
    if run_key is not None:
        value = load_intrinsic_results(samples, run_key).k_f
        return None if value is None else float(value)
    if not settings.measure:
        return None
    report(0.2, "K_F of the training pool")
    value = label_sharpness(pool_matrix, pool_labels, top=1, device=settings.device).k_f
    return float(value) if math.isfinite(value) else None


def _representation_dimension(samples, sources):
    run_key = sources["d_repr"]
    if run_key is None:
        return None
    return float(load_intrinsic_results(samples, run_key).dimension)


def _targets(fit: PowerLawFit, target_loss) -> np.ndarray:
    if target_loss is not None:
        return np.atleast_1d(np.asarray(target_loss, dtype=np.float64))
    return float(fit.predict(fit.sizes[-1])) * np.asarray(DEFAULT_TARGET_FRACTIONS)


def _stored_values(result: ScalingLawReport, ids, features, train_pos, test_pos) -> dict:
    curve, fit, law = result.curve, result.fit, result.law
    plans = {name: plan.as_dict() for name, plan in result.plans.items()}
    grid = _grid(fit, result.plans.values())
    low, high = fit.band(grid)
    values = dict(
        mode=result.mode,
        class_names=list(curve.class_names),
        sizes=curve.sizes.tolist(), seeds=curve.seeds.tolist(),
        losses=curve.losses.tolist(), accuracies=curve.accuracies.tolist(), steps=curve.steps.tolist(),
        n_pool=int(train_pos.size), n_test=int(test_pos.size),
        subset_class_counts=curve.subset_class_counts.tolist(),
        test_class_counts=curve.test_class_counts.tolist(),
        n_test_duplicates_in_pool=_duplicates_across(features.matrix[train_pos], features.matrix[test_pos]),
        model=curve.model,
        fit=fit.as_dict(),
        fit_line=dict(n=grid.tolist(), loss=fit.predict(grid).tolist(), low=low.tolist(), high=high.tolist()),
        law=law.as_dict(),
        predicted_line=None,
        prediction=None if result.prediction is None else result.prediction.as_dict(),
        plans=plans, primary_plan=result.primary_plan,
        sources=dict(result.sources),
        test_ids=[ids[i] for i in test_pos.tolist()],
        train_order_ids=[[ids[i] for i in row] for row in curve.orders.tolist()],
    )
    if law.predicted_exponent is not None:
        values["predicted_line"] = dict(
            n=grid.tolist(),
            loss=np.exp(law.offset_at_predicted + law.predicted_exponent * np.log(grid)).tolist(),
            exponent=law.predicted_exponent,
        )
    return values


def _grid(fit: PowerLawFit, plans, points: int = 50) -> np.ndarray:
    """Sizes to draw the lines at: the measured range, stretched to the plans' answers
    (at most 100 times the largest size)."""
    low, high = float(fit.sizes[0]), float(fit.sizes[-1])
    for plan in plans:
        finite = plan.n_needed[np.isfinite(plan.n_needed)]
        if finite.size:
            low = min(low, max(1.0, float(finite.min())))
            high = max(high, min(100.0 * float(fit.sizes[-1]), float(finite.max())))
    return np.geomspace(low, high, points)


def _duplicates_across(pool: np.ndarray, test: np.ndarray) -> int:
    """Held-out images identical, pixel for pixel, to a training-pool image (a leak the
    sample ids cannot show)."""
    seen = {row.tobytes() for row in np.ascontiguousarray(pool)}
    return int(sum(row.tobytes() in seen for row in np.ascontiguousarray(test)))


def _describe_view(view) -> str:
    return f"{view._dataset.name}: {len(view)} samples"


def _format_n(n) -> str:
    return "unreachable on this curve" if not math.isfinite(n) else f"{math.ceil(n):,}"
