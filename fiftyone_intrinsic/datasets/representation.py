"""Intrinsic dimension of a model's learned representation, d_repr, on a FiftyOne
collection, stored as a run (docs/science.md §3).

Activations of one layer are taken with the model in eval mode and without gradients (the
paper's reference code does neither), flattened per sample, and given to the same
estimators as d_data. The paper's claim to check: d_repr ≲ d_data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import torch

from ..core.activations import OUTPUT_LAYER, find_layer, layer_activations
from ..core.dimension import DimensionResult, estimate_dimension
from ..core.models import NormalizedModel
from ..core.settings import DEFAULT_K, DimensionSettings, ModelInput, as_model_input
from .features import extract_features
from .progress import StageReporter
from .results import RepresentationResults
from .claims import claim_run
from .runs import load_intrinsic_results, require_method, validate_run_key
from .schema import DIMENSION, REPRESENTATION
from .settings import FeatureSettings
from .storage import json_float, json_floats, make_config

__all__ = ["RepresentationResult", "compute_representation_dimension"]


@dataclass(frozen=True)
class RepresentationResult:
    """d_repr of a layer beside the dataset's d_data.

    Attributes:
        representation: the :class:`DimensionResult` of the layer's activations.
        data_dimension: d_data of the same samples (same estimator and k).
        data_source: the run key d_data was read from, or ``"computed"``.
        holds: whether ``d_repr <= d_data``.
        layer: the layer name.
        n_features: activation values per sample.
    """

    representation: DimensionResult
    data_dimension: float
    data_source: str
    holds: bool
    layer: str
    n_features: int


def compute_representation_dimension(
    samples,
    model: torch.nn.Module,
    *,
    layer: str,
    model_input: ModelInput | dict | None = None,
    run_key: str = "representation_dimension",
    estimator: str = "twonn",
    k: int = DEFAULT_K,
    data_run_key: Optional[str] = None,
    device: Optional[str] = None,
    batch_size: int = 64,
    overwrite: bool = False,
    progress: Callable[[float, str], None] | None = None,
) -> RepresentationResult:
    """d_repr of ``layer`` on a FiftyOne collection, beside d_data, stored as a run.

    Args:
        samples: a FiftyOne dataset or view.
        model: the model (its parameters are not changed; its train/eval mode is restored).
        layer: a name from ``model.named_modules()``, or ``"output"``.
        model_input (None): :class:`ModelInput` (size, channels, mean, std); default
            224 x 224 RGB with ImageNet statistics.
        run_key ("representation_dimension"): key of the stored run.
        estimator ("twonn"): as the paper for d_repr; ``"mle"`` and ``"mle_mg"`` too.
        k (20): neighbours for the MLE estimators.
        data_run_key (None): a stored intrinsic-dimension run to read d_data from; ``None``
            computes d_data on the model's input pixels with the same estimator.
        device (None): ``"auto"``/``None``, ``"cpu"`` or ``"cuda"``.
        batch_size (64): images per forward pass.
        overwrite (False): replace an existing run with this key.
        progress (None): ``progress(fraction, label)``.
    """
    model_input = as_model_input(model_input)
    settings = DimensionSettings(estimator=estimator, k=k, device=device)
    validate_run_key(samples, run_key, overwrite, REPRESENTATION.method)
    stored_data = _stored_data_dimension(samples, data_run_key) if data_run_key else None
    find_layer(model, layer)  # a wrong layer name fails before any work
    with claim_run(samples, run_key, REPRESENTATION, overwrite=overwrite) as claim:
        report = StageReporter(progress)
        pixels = extract_features(
            samples, FeatureSettings(preprocessing=model_input.preprocessing()), progress=report.fraction(0.0, 0.3),
        )
        wrapped = NormalizedModel(model, model_input)
        batches = _batches(pixels.images(), batch_size, report)
        activations = layer_activations(wrapped, batches, layer if layer in ("", OUTPUT_LAYER) else f"model.{layer}", device=device)
        if not np.isfinite(activations).all():
            raise ValueError(f"Layer {layer!r} produced NaN or inf activations; check the model and its input.")
        representation = estimate_dimension(activations, settings, report.stage(0.6, 0.8, "d_repr neighbours"))
        if stored_data is None:
            no_interval = settings.model_copy(update={"interval_splits": 0})
            data = estimate_dimension(pixels.matrix, no_interval, report.stage(0.8, 0.95, "d_data neighbours"))
            data_dimension, data_source = data.dimension, "computed"
        else:
            data_dimension, data_source = stored_data, data_run_key
        result = RepresentationResult(
            representation=representation, data_dimension=float(data_dimension),
            data_source=data_source, holds=bool(representation.dimension <= data_dimension),
            layer=layer, n_features=int(activations.shape[1]),
        )
        config = make_config(
            REPRESENTATION.method, settings, pixels.fingerprint(), claim.names,
            layer=layer, model=_describe(model), model_input=model_input.model_dump(),
        )

        def write():
            local = dict(zip(pixels.sample_ids, json_floats(representation.local)))
            samples.set_values(claim.names.field("local_dimension"), local, key_field="id")

        claim.store(config, RepresentationResults, _stored_values(result), write)
        report(1.0, f"d_repr = {representation.dimension:.2f}, d_data = {data_dimension:.2f}")
        return result


def _stored_values(result: RepresentationResult) -> dict:
    representation = result.representation
    return dict(
        dimension=representation.dimension, ci_low=json_float(representation.ci_low),
        ci_high=json_float(representation.ci_high), estimator=representation.estimator,
        k=representation.k, n_samples=representation.n_samples, n_duplicates=representation.n_duplicates,
        data_dimension=result.data_dimension, data_source=result.data_source, holds=result.holds,
        layer=result.layer, n_features=result.n_features,
    )


def _batches(images: torch.Tensor, batch_size: int, report):
    n_images = images.shape[0]
    for start in range(0, n_images, batch_size):
        yield images[start : start + batch_size]
        done = min(n_images, start + batch_size)
        report(0.3 + 0.3 * done / n_images, f"Activations {done}/{n_images}")


def _stored_data_dimension(samples, data_run_key) -> float:
    require_method(samples, data_run_key, DIMENSION.method, "an intrinsic-dimension run")
    return float(load_intrinsic_results(samples, data_run_key).dimension)


def _describe(model) -> str:
    return f"{type(model).__module__}.{type(model).__name__}"
