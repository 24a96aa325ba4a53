"""Run the measurements on a FiftyOne dataset or view and store them as runs.

Everything is validated and computed before the dataset is touched, so bad input or a
failed computation leaves the dataset's fields, tags, saved views and runs as they were.
"""

from __future__ import annotations

import math
from typing import Callable, Optional

import numpy as np

from . import runs
from .dimension import DimensionResult, _estimate
from .features import Features, extract_features
from .neighbors import as_feature_matrix
from .settings import DimensionSettings, FeatureSettings, SharpnessSettings
from .sharpness import SharpnessResult, _encode_labels, _measure

__all__ = [
    "compute_intrinsic_dimension",
    "compute_label_sharpness",
    "load_sharpest_pairs_view",
    "dimension_field",
    "sharpness_fields",
]

#: ``progress(fraction_done, label)``: fraction in [0, 1].
StepProgress = Callable[[float, str], None]


def dimension_field(run_key: str) -> str:
    """The per-sample float field of local intrinsic dimension written by ``run_key``."""
    return f"{run_key}_local_dimension"


def sharpness_fields(run_key: str) -> dict:
    """Names of what a label-sharpness run writes: fields, tags and the saved view."""
    return {
        "distance": f"{run_key}_nearest_other_distance",
        "neighbor": f"{run_key}_nearest_other_id",
        "pair_tag": f"{run_key}:sharp_pair",
        "duplicate_tag": f"{run_key}:conflicting_duplicate",
        "view": f"{run_key}_sharp_pairs",
    }


def compute_intrinsic_dimension(
    samples,
    *,
    run_key: str = "intrinsic_dimension",
    estimator: str = "mle",
    k: int = 20,
    features: FeatureSettings | dict | None = None,
    device: Optional[str] = None,
    discard_fraction: float = 0.1,
    n_bootstrap: int = 200,
    confidence: float = 0.95,
    seed: int = 0,
    duplicate_tolerance: float = 0.0,
    overwrite: bool = False,
    progress: StepProgress | None = None,
) -> DimensionResult:
    """Estimate the intrinsic dimension d_data of a collection and store it as a run.

    Writes the float field ``<run_key>_local_dimension`` (local estimate per sample) and a
    run ``run_key`` whose results hold the estimate, its bootstrap interval and the
    duplicate groups (as sample ids). Exact duplicates are removed before estimating.

    Args:
        samples: a FiftyOne dataset or view.
        run_key ("intrinsic_dimension"): key of the stored run.
        estimator ("mle"): ``"mle"``, ``"mle_mg"`` or ``"twonn"``.
        k (20): neighbours per point for the MLE estimators.
        features (None): :class:`FeatureSettings` (or a dict of it): pixels and their
            preprocessing, or an embeddings field.
        device (None): ``"auto"``/``None`` (CUDA when present), ``"cpu"`` or ``"cuda"``.
        discard_fraction (0.1), n_bootstrap (200), confidence (0.95), seed (0),
        duplicate_tolerance (0.0): see :func:`fiftyone_intrinsic.intrinsic_dimension`.
        overwrite (False): replace an existing run with this key (and what it wrote).
        progress (None): ``progress(fraction, label)``; ``None`` shows a progress bar.

    Returns:
        the :class:`DimensionResult`; ``local`` is in the collection's order.
    """
    settings = DimensionSettings(
        estimator=estimator, k=k, discard_fraction=discard_fraction, n_bootstrap=n_bootstrap,
        confidence=confidence, seed=seed, duplicate_tolerance=duplicate_tolerance, device=device,
    )
    feature_settings = _feature_settings(features)
    runs.validate_run_key(samples, run_key, overwrite)
    field = dimension_field(run_key)
    _check_free_fields(samples, run_key, [field])
    report = _Reporter(progress)
    extracted = _features(samples, feature_settings, report)
    result = _estimate(extracted.matrix, settings, report.stage(0.5, 0.95, "Neighbour search"))
    groups = [[extracted.sample_ids[i] for i in group.tolist()] for group in result.duplicate_groups]
    config = _config(samples, "intrinsic_dimension", settings, extracted, fields=[field])
    values = dict(
        dimension=result.dimension, ci_low=_finite_or_none(result.ci_low),
        ci_high=_finite_or_none(result.ci_high), confidence=result.confidence,
        n_samples=result.n_samples, n_duplicates=result.n_duplicates,
        n_near_duplicates=result.n_near_duplicates, duplicate_tolerance=result.duplicate_tolerance,
        estimator=result.estimator, k=result.k, discard_fraction=result.discard_fraction,
        duplicate_groups=groups, by_k=[list(point) for point in result.by_k],
    )

    def write():
        samples.set_values(
            field, dict(zip(extracted.sample_ids, _floats(result.local))), key_field="id"
        )

    _store(samples, run_key, config, values, write)
    report(1.0, f"d_data = {result.dimension:.2f}")
    return result


def compute_label_sharpness(
    samples,
    label_field: str,
    *,
    run_key: str = "label_sharpness",
    top: int = 10,
    features: FeatureSettings | dict | None = None,
    device: Optional[str] = None,
    overwrite: bool = False,
    progress: StepProgress | None = None,
) -> SharpnessResult:
    """Measure the exact label sharpness K_F of a collection and store it as a run.

    Writes ``<run_key>_nearest_other_distance`` (distance to the nearest sample with
    another label) and ``<run_key>_nearest_other_id`` (its id); tags the samples of the
    ``top`` sharpest pairs ``<run_key>:sharp_pair`` and the conflicting duplicates
    (identical inputs, different labels) ``<run_key>:conflicting_duplicate``; saves the
    view ``<run_key>_sharp_pairs`` with the conflicting duplicates, then each sharp pair,
    side by side.

    Args:
        samples: a FiftyOne dataset or view.
        label_field: a :class:`fiftyone.core.labels.Classification` field.
        run_key ("label_sharpness"): key of the stored run.
        top (10): sharpest pairs to report and flag.
        features (None): :class:`FeatureSettings` (or a dict of it).
        device (None): ``"auto"``/``None`` (CUDA when present), ``"cpu"`` or ``"cuda"``.
        overwrite (False): replace an existing run with this key (and what it wrote).
        progress (None): ``progress(fraction, label)``; ``None`` shows a progress bar.

    Returns:
        the :class:`SharpnessResult`; indices refer to the collection's order.
    """
    settings = SharpnessSettings(top=top, device=device)
    feature_settings = _feature_settings(features)
    runs.validate_run_key(samples, run_key, overwrite)
    labels = _classification_labels(samples, label_field)
    names = sharpness_fields(run_key)
    _check_free_fields(samples, run_key, [names["distance"], names["neighbor"]])
    report = _Reporter(progress)
    extracted = _features(samples, feature_settings, report)
    codes, classes = _encode_labels(labels, len(labels))
    result = _measure(
        as_feature_matrix(extracted.matrix), codes, classes, settings,
        report.stage(0.5, 0.95, "Exact pair search"),
    )
    ids = extracted.sample_ids
    pair_ids = [(ids[p.i], ids[p.j]) for p in result.pairs]
    duplicate_ids = [(ids[i], ids[j]) for i, j in result.conflicting_duplicates]
    config = _config(
        samples, "label_sharpness", settings, extracted, label_field=label_field,
        fields=[names["distance"], names["neighbor"]],
        tags=[names["pair_tag"], names["duplicate_tag"]], saved_views=[names["view"]],
    )
    values = dict(
        k_f=_finite_or_none(result.k_f), min_distance=_finite_or_none(result.min_distance),
        pairs=[
            dict(id_i=a, id_j=b, distance=p.distance, label_i=p.label_i, label_j=p.label_j,
                 filepath_i=extracted.filepaths[p.i], filepath_j=extracted.filepaths[p.j])
            for (a, b), p in zip(pair_ids, result.pairs)
        ],
        conflicting_duplicates=[list(pair) for pair in duplicate_ids],
        classes=[str(c) for c in classes],
        class_min_distance=[[_finite_or_none(v) for v in row] for row in result.class_min_distance],
        n_samples=result.n_samples, n_duplicates=result.n_duplicates,
    )

    def write():
        samples.set_values(
            names["distance"], dict(zip(ids, _floats(result.nearest_distance))), key_field="id"
        )
        neighbor_ids = [ids[j] if j >= 0 else None for j in result.nearest_index.tolist()]
        samples.set_values(names["neighbor"], dict(zip(ids, neighbor_ids)), key_field="id")
        dataset = samples._dataset
        flagged_pairs = sorted({i for pair in pair_ids for i in pair})
        flagged_duplicates = sorted({i for pair in duplicate_ids for i in pair})
        if flagged_pairs:
            dataset.select(flagged_pairs).tag_samples(names["pair_tag"])
        if flagged_duplicates:
            dataset.select(flagged_duplicates).tag_samples(names["duplicate_tag"])
        ordered = list(dict.fromkeys(i for pair in duplicate_ids + pair_ids for i in pair))
        dataset.save_view(
            names["view"], dataset.select(ordered, ordered=True),
            description=f"Run {run_key!r}: conflicting duplicates, then the {len(pair_ids)} "
            f"sharpest pairs of {label_field!r}, each pair side by side (K_F = {result.k_f:.4g}).",
        )

    _store(samples, run_key, config, values, write)
    report(1.0, f"K_F = {result.k_f:.4g}")
    return result


def load_sharpest_pairs_view(samples, run_key: str = "label_sharpness"):
    """The saved view of a label-sharpness run: conflicting duplicates, then the sharpest
    pairs, each pair side by side."""
    info = runs.get_intrinsic_run_info(samples, run_key)
    if info.config.method != "label_sharpness":
        raise ValueError(f"Run {run_key!r} is a {info.config.method} run, not label_sharpness.")
    return samples._dataset.load_saved_view(sharpness_fields(run_key)["view"])


class _Reporter:
    """Turns stage-local progress into overall ``progress(fraction, label)`` calls."""

    def __init__(self, progress: StepProgress | None):
        self._bar = None
        if progress is None:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=1000, unit="‰", leave=False)
            progress = self._bar_progress
        self._progress = progress

    def _bar_progress(self, fraction, label):
        self._bar.set_description(label)
        self._bar.update(int(1000 * fraction) - self._bar.n)
        if fraction >= 1.0:
            self._bar.close()

    def __call__(self, fraction: float, label: str) -> None:
        self._progress(min(1.0, max(0.0, fraction)), label)

    def stage(self, start: float, stop: float, label: str):
        """A ``progress(done, total)`` callback mapped onto [start, stop]."""

        def callback(done, total):
            self(start + (stop - start) * done / max(total, 1), f"{label}: {done}/{total}")

        return callback


def _feature_settings(features) -> FeatureSettings:
    if features is None:
        return FeatureSettings()
    if isinstance(features, FeatureSettings):
        return features
    if isinstance(features, dict):
        return FeatureSettings(**features)
    raise TypeError(
        f"features must be a FeatureSettings, a dict of its fields or None; got {type(features).__name__}."
    )


def _features(samples, settings: FeatureSettings, report: _Reporter) -> Features:
    report(0.0, "Loading features")
    return extract_features(
        samples, settings, progress=lambda fraction, label: report(0.5 * fraction, label)
    )


def _classification_labels(samples, label_field: str) -> list:
    import fiftyone as fo

    if len(samples) == 0:
        raise ValueError("The collection has no samples; choose a dataset or view with samples.")
    field = samples.get_field(label_field)
    classification_fields = sorted(
        samples.get_field_schema(embedded_doc_type=fo.Classification).keys()
    )
    if field is None:
        raise ValueError(
            f"Label field {label_field!r} does not exist. Classification fields of this "
            f"collection: {classification_fields}."
        )
    if getattr(field, "document_type", None) is not fo.Classification:
        kind = getattr(field, "document_type", type(field)).__name__
        raise ValueError(
            f"Label field {label_field!r} holds {kind}, not Classification; label sharpness "
            f"needs one class label per sample. Classification fields: {classification_fields}."
        )
    labels = samples.values(f"{label_field}.label")
    missing = sum(label is None for label in labels)
    if missing:
        raise ValueError(
            f"{missing} of {len(labels)} samples have no label in {label_field!r}. Label them "
            f"or restrict the view, e.g. view.exists('{label_field}')."
        )
    return labels


def _check_free_fields(samples, run_key: str, fields: list) -> None:
    """Refuse to overwrite sample fields that another run or the user owns."""
    dataset = samples._dataset
    owned = set()
    if run_key in dataset.list_runs():
        owned = set(getattr(dataset.get_run_info(run_key).config, "fields", []))
    taken = [f for f in fields if dataset.has_sample_field(f) and f not in owned]
    if taken:
        raise ValueError(
            f"Sample field(s) {taken} already exist and were not written by run {run_key!r}; "
            "choose another run key or delete those fields."
        )


def _config(samples, method, settings, extracted: Features, **written):
    import fiftyone as fo
    import torch

    from . import __version__

    from .devices import resolve_device

    return runs.IntrinsicRunConfig(
        method=method,
        settings=settings.model_dump(),
        features=extracted.fingerprint(),
        device=str(resolve_device(settings.device)),
        versions={
            "fiftyone_intrinsic": __version__, "fiftyone": fo.__version__,
            "torch": torch.__version__, "numpy": np.__version__,
        },
        label_field=written.get("label_field"),
        fields=written.get("fields", []),
        tags=written.get("tags", []),
        saved_views=written.get("saved_views", []),
        **written.get("extra", {}),
    )


def _store(samples, run_key, config, values, write) -> None:
    """Register the run, write its fields, tags and views, save its results; on any
    failure, remove what was written so the dataset is left as it was."""
    dataset = samples._dataset
    dataset.register_run(run_key, config, overwrite=True, cleanup=True)
    try:
        write()
        results = dataset.init_run_results(run_key, **values)
        dataset.save_run_results(run_key, results, overwrite=True)
    except BaseException:
        dataset.delete_run(run_key)
        raise


def _floats(values: np.ndarray) -> list:
    return [float(v) if math.isfinite(v) else None for v in values.tolist()]


def _finite_or_none(value):
    return float(value) if value is not None and math.isfinite(value) else None
