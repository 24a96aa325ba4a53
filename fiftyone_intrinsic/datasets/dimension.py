"""Intrinsic dimension d_data of a FiftyOne collection, stored as a run."""

from __future__ import annotations

from typing import Optional

from ..core.dimension import DimensionResult, estimate_dimension
from ..core.settings import DEFAULT_K, DimensionSettings
from .features import extract_features
from .progress import StageReporter, StepProgress
from .results import DimensionResults
from .claims import claim_run
from .schema import DIMENSION
from .settings import FeatureSettings, as_feature_settings
from .storage import json_float, json_floats, make_config

__all__ = ["compute_intrinsic_dimension", "dimension_values"]


def compute_intrinsic_dimension(
    samples,
    *,
    run_key: str = "intrinsic_dimension",
    estimator: str = "mle",
    k: int = DEFAULT_K,
    features: FeatureSettings | dict | None = None,
    device: Optional[str] = None,
    discard_fraction: float = 0.1,
    interval_splits: int = 4,
    confidence: float = 0.95,
    seed: int = 0,
    duplicate_tolerance: float = 0.0,
    max_merged_fraction: float = 0.05,
    overwrite: bool = False,
    progress: StepProgress | None = None,
) -> DimensionResult:
    """Estimate the intrinsic dimension d_data of a collection and store it as a run.

    Writes the float field ``<run_key>_local_dimension`` (local estimate per sample) and a
    run ``run_key`` whose results (:class:`~.results.DimensionResults`) hold the
    estimate, its interval and the duplicate groups (as sample ids). Exact
    duplicates are removed before estimating, and near-duplicates merged when
    ``duplicate_tolerance`` is set; a tolerance that would merge more than
    ``max_merged_fraction`` of the samples is refused before anything is written.

    Args:
        samples: a FiftyOne dataset or view.
        run_key ("intrinsic_dimension"): key of the stored run.
        estimator ("mle"): a registered estimator: ``"mle"``, ``"mle_mg"`` or ``"twonn"``.
        k (20): neighbours per point for the MLE estimators.
        features (None): :class:`FeatureSettings` (or a dict of it): pixels and their
            preprocessing, or an embeddings field.
        device (None): ``"auto"``/``None`` (CUDA when present), ``"cpu"`` or ``"cuda"``.
        discard_fraction (0.1), interval_splits (4), confidence (0.95), seed (0),
        duplicate_tolerance (0.0), max_merged_fraction (0.05): see
            :func:`fiftyone_intrinsic.intrinsic_dimension`.
        overwrite (False): replace an existing run with this key (and what it wrote).
        progress (None): ``progress(fraction, label)``; ``None`` shows a progress bar.

    Returns:
        the :class:`DimensionResult`; ``local`` is in the collection's order.

    Raises:
        ValueError: invalid settings, too few samples, or a ``duplicate_tolerance`` that
            would merge more than ``max_merged_fraction``; the collection is left as it was.
    """
    settings = DimensionSettings(
        estimator=estimator, k=k, discard_fraction=discard_fraction, interval_splits=interval_splits,
        confidence=confidence, seed=seed, duplicate_tolerance=duplicate_tolerance,
        max_merged_fraction=max_merged_fraction, device=device,
    )
    feature_settings = as_feature_settings(features)
    with claim_run(samples, run_key, DIMENSION, overwrite=overwrite) as claim:
        report = StageReporter(progress)
        report(0.0, "Loading features")
        extracted = extract_features(samples, feature_settings, progress=report.fraction(0.0, 0.5))
        result = estimate_dimension(extracted.matrix, settings, report.stage(0.5, 0.95, "Neighbour search"))
        config = make_config(DIMENSION.method, settings, extracted.fingerprint(), claim.names)

        def write():
            local = dict(zip(extracted.sample_ids, json_floats(result.local)))
            samples.set_values(claim.names.field("local_dimension"), local, key_field="id")

        values = dimension_values(result, extracted.sample_ids)
        claim.store(config, DimensionResults, values, write)
    report(1.0, f"d_data = {result.dimension:.2f}")
    return result


def dimension_values(result: DimensionResult, sample_ids: list) -> dict:
    """The stored attributes of a :class:`DimensionResult` (row indices → sample ids)."""
    return dict(
        dimension=result.dimension, ci_low=json_float(result.ci_low),
        ci_high=json_float(result.ci_high), confidence=result.confidence,
        n_samples=result.n_samples, n_duplicates=result.n_duplicates,
        n_near_duplicates=result.n_near_duplicates, duplicate_tolerance=result.duplicate_tolerance,
        duplicate_distance=result.duplicate_distance,
        estimator=result.estimator, k=result.k, discard_fraction=result.discard_fraction,
        duplicate_groups=[[sample_ids[i] for i in group.tolist()] for group in result.duplicate_groups],
        by_k=[list(point) for point in result.by_k],
    )
