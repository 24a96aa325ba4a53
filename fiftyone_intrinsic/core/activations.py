"""Activations of one layer of a model, in eval mode and without gradients
(docs/science.md §3: the paper's reference code does neither)."""

from __future__ import annotations

from typing import Iterable

import numpy as np
import torch

from .devices import resolve_device
from .models import eval_mode, layer_names

__all__ = ["layer_activations", "find_layer", "OUTPUT_LAYER"]

#: Layer name meaning "the model's output".
OUTPUT_LAYER = "output"


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
    target = find_layer(model, layer)
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


def find_layer(model: torch.nn.Module, layer: str):
    """The submodule named ``layer``, or ``None`` for the model's output.

    Raises:
        ValueError: a layer the model lacks (its layer names are listed), or a named layer
            of a TorchScript model (which supports no forward hooks).
    """
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
