"""Intrinsic dimension of a model's learned representation, d_repr (science.md §3).

Activations of one layer are taken with the model in eval mode and without gradients (the
paper's reference code does neither), flattened per sample, and given to the same
estimators as d_data. The paper's claim to check: d_repr ≲ d_data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Optional

import numpy as np
import torch

from .devices import resolve_device
from .dimension import DimensionResult, _estimate
from .models import NormalizedModel, eval_mode, layer_names
from .settings import DimensionSettings, ModelInput

__all__ = [
    "RepresentationResult",
    "layer_activations",
    "compute_representation_dimension",
    "OUTPUT_LAYER",
]

#: Layer name meaning "the model's output".
OUTPUT_LAYER = "output"


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


def layer_activations(
    model: torch.nn.Module,
    batches: Iterable[torch.Tensor],
    layer: str,
    *,
    device=None,
) -> np.ndarray:
    """Flattened activations of ``layer`` for every image.

    Args:
        model: a module taking ``(B, C, H, W)`` inputs (wrap it in
            :class:`~fiftyone_intrinsic.models.NormalizedModel` for [0, 1] images).
        batches: image batches, each ``(B, C, H, W)`` float.
        layer: a name from ``model.named_modules()``, or ``"output"``.
        device (None): torch device; CUDA when present, else the CPU.

    Returns:
        ``(N, F)`` float64 activations, one row per image, in batch order.

    >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3), torch.nn.ReLU())
    >>> layer_activations(net, [torch.ones(2, 1, 2, 2)], "1", device="cpu").shape
    (2, 3)
    """
    device = resolve_device(device)
    target = _find_layer(model, layer)
    captured = []
    hook = None
    if target is not None:
        hook = target.register_forward_hook(lambda _m, _i, output: captured.append(output))
    rows = []
    try:
        with eval_mode(model), torch.no_grad():
            model.to(device)
            for batch in batches:
                output = model(batch.to(device=device, dtype=torch.float32))
                value = captured.pop() if target is not None else output
                if isinstance(value, (tuple, list)):
                    value = value[0]
                rows.append(value.reshape(value.shape[0], -1).double().cpu().numpy())
    finally:
        if hook is not None:
            hook.remove()
    return np.concatenate(rows)


def _find_layer(model, layer):
    if layer in ("", OUTPUT_LAYER):
        return None
    if isinstance(model, torch.jit.ScriptModule):
        raise ValueError(
            f"Layer {layer!r} cannot be read from a TorchScript model (it supports no forward "
            "hooks). Use layer 'output' with a TorchScript model that ends at the layer you "
            "want, or a torchvision architecture with a state dict."
        )
    modules = dict(model.named_modules())
    if layer not in modules:
        names = layer_names(model)
        raise ValueError(
            f"The model has no layer {layer!r}. Its layers include {names[:12]}"
            f"{' ...' if len(names) > 12 else ''}; or use 'output'."
        )
    return modules[layer]


def compute_representation_dimension(
    samples,
    model: torch.nn.Module,
    *,
    layer: str,
    model_input: ModelInput | dict | None = None,
    run_key: str = "representation_dimension",
    estimator: str = "twonn",
    k: int = 20,
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
    from . import compute, runs
    from .features import extract_features
    from .settings import FeatureSettings

    model_input = ModelInput(**model_input) if isinstance(model_input, dict) else (model_input or ModelInput())
    settings = DimensionSettings(estimator=estimator, k=k, device=device)
    runs.validate_run_key(samples, run_key, overwrite)
    field = compute.dimension_field(run_key)
    compute._check_free_fields(samples, run_key, [field])
    stored_data = _stored_data_dimension(samples, data_run_key, settings) if data_run_key else None
    _find_layer(model, layer)  # a wrong layer name fails before any work
    report = compute._Reporter(progress)
    pixels = extract_features(
        samples, FeatureSettings(preprocessing=model_input.preprocessing()),
        progress=lambda fraction, label: report(0.3 * fraction, label),
    )
    images = torch.from_numpy(pixels.matrix).float().view(-1, model_input.size, model_input.size, model_input.channels)
    wrapped = NormalizedModel(model, model_input)
    batches = _batches(images.permute(0, 3, 1, 2), batch_size, report)
    activations = layer_activations(wrapped, batches, layer if layer in ("", OUTPUT_LAYER) else f"model.{layer}", device=device)
    if not np.isfinite(activations).all():
        raise ValueError(f"Layer {layer!r} produced NaN or inf activations; check the model and its input.")
    representation = _estimate(activations, settings, report.stage(0.6, 0.8, "d_repr neighbours"))
    if stored_data is None:
        data = _estimate(pixels.matrix, settings.model_copy(update={"n_bootstrap": 0}), report.stage(0.8, 0.95, "d_data neighbours"))
        data_dimension, data_source = data.dimension, "computed"
    else:
        data_dimension, data_source = stored_data, data_run_key
    result = RepresentationResult(
        representation=representation, data_dimension=float(data_dimension),
        data_source=data_source, holds=bool(representation.dimension <= data_dimension),
        layer=layer, n_features=int(activations.shape[1]),
    )
    config = compute._config(
        samples, "representation_dimension", settings, pixels, fields=[field],
        extra=dict(layer=layer, model=_describe(model), model_input=model_input.model_dump()),
    )
    values = dict(
        dimension=representation.dimension, ci_low=compute._finite_or_none(representation.ci_low),
        ci_high=compute._finite_or_none(representation.ci_high), estimator=representation.estimator,
        k=representation.k, n_samples=representation.n_samples, n_duplicates=representation.n_duplicates,
        data_dimension=result.data_dimension, data_source=data_source, holds=result.holds,
        layer=layer, n_features=result.n_features,
    )

    def write():
        samples.set_values(field, dict(zip(pixels.sample_ids, compute._floats(representation.local))), key_field="id")

    compute._store(samples, run_key, config, values, write)
    report(1.0, f"d_repr = {representation.dimension:.2f}, d_data = {data_dimension:.2f}")
    return result


def _batches(images: torch.Tensor, batch_size: int, report):
    n_images = images.shape[0]
    for start in range(0, n_images, batch_size):
        yield images[start : start + batch_size]
        done = min(n_images, start + batch_size)
        report(0.3 + 0.3 * done / n_images, f"Activations {done}/{n_images}")


def _stored_data_dimension(samples, data_run_key, settings) -> float:
    from . import runs

    info = runs.get_intrinsic_run_info(samples, data_run_key)
    if info.config.method != "intrinsic_dimension":
        raise ValueError(f"Run {data_run_key!r} is a {info.config.method} run, not an intrinsic-dimension run.")
    return float(runs.load_intrinsic_results(samples, data_run_key).dimension)


def _describe(model) -> str:
    return f"{type(model).__module__}.{type(model).__name__}"
