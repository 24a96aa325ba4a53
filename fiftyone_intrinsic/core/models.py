"""Loading a user's model safely, and wrapping it so it sees [0, 1] images.

Nothing is unpickled from a user-given path: state dicts load with
``torch.load(weights_only=True)`` and TorchScript files with ``torch.jit.load``.
"""

from __future__ import annotations

import contextlib
import pathlib

import torch

from .settings import ModelInput, ModelSource

__all__ = ["load_model", "layer_names", "NormalizedModel", "eval_mode"]


def load_model(source: ModelSource) -> torch.nn.Module:
    """Load the model a :class:`ModelSource` names, on the CPU.

    Raises:
        ValueError: for a missing file, an unknown architecture, a file that is not a
            state dict (e.g. a pickled object) or not TorchScript, or weights that do not
            fit the architecture.
    """
    path = pathlib.Path(source.path).expanduser()
    if not path.is_file():
        raise ValueError(f"Model file {str(path)!r} does not exist.")
    if source.kind == "torchscript":
        return _load_torchscript(path)
    if source.kind == "export":
        return _load_exported(path)
    return _load_torchvision(path, source.architecture, source.num_classes)


def layer_names(model: torch.nn.Module) -> list[str]:
    """Names of the model's submodules, as ``model.named_modules()`` gives them."""
    return [name for name, _ in model.named_modules() if name]


@contextlib.contextmanager
def eval_mode(model: torch.nn.Module):
    """Put the model in eval mode inside the block and restore its previous mode after."""
    was_training = model.training
    _set_mode(model, False)
    try:
        yield model
    finally:
        _set_mode(model, was_training)


def _set_mode(model: torch.nn.Module, training: bool) -> None:
    try:
        model.train(training)
    except (NotImplementedError, RuntimeError):
        pass  # a torch.export program keeps the mode it was exported in


class NormalizedModel(torch.nn.Module):
    """``model((x − mean) / std)`` for images ``x`` in [0, 1] of shape ``(B, C, H, W)``.

    Normalization sits inside the module so that attacks and activations always work on
    [0, 1] images (torchattacks' own normalization is easy to misuse: docs/science.md §5).
    """

    def __init__(self, model: torch.nn.Module, model_input: ModelInput):
        super().__init__()
        self.model = model
        channels = model_input.channels
        mean = torch.tensor(model_input.mean, dtype=torch.float32).expand(channels).clone()
        std = torch.tensor(model_input.std, dtype=torch.float32).expand(channels).clone()
        self.register_buffer("mean", mean.view(1, channels, 1, 1))
        self.register_buffer("std", std.view(1, channels, 1, 1))

    def forward(self, x):
        return self.model((x - self.mean) / self.std)

    def train(self, mode: bool = True):
        self.training = mode
        _set_mode(self.model, mode)
        return self


def _load_torchscript(path: pathlib.Path) -> torch.nn.Module:
    try:
        return torch.jit.load(str(path), map_location="cpu")
    except Exception as error:
        raise ValueError(
            f"{str(path)!r} is not a TorchScript file ({type(error).__name__}). Save the model "
            "with torch.jit.script(model).save(path), or choose 'torchvision' with a state dict."
        ) from error


def _load_exported(path: pathlib.Path) -> torch.nn.Module:
    try:
        return torch.export.load(str(path)).module()
    except Exception as error:
        raise ValueError(
            f"{str(path)!r} is not a torch.export program ({type(error).__name__}). Save one "
            "with torch.export.save(torch.export.export(model, (example,)), path)."
        ) from error


def _load_torchvision(path, architecture: str, num_classes):
    import torchvision

    available = torchvision.models.list_models()
    if architecture not in available:
        close = [name for name in available if name.startswith(architecture[:3])][:8]
        raise ValueError(
            f"Unknown torchvision architecture {architecture!r}; for example {close or available[:8]}."
        )
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as error:
        raise ValueError(
            f"{str(path)!r} is not a plain state dict of tensors, so it is not loaded "
            f"(only weights_only loading is allowed; {type(error).__name__}). Save it with "
            "torch.save(model.state_dict(), path)."
        ) from error
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{str(path)!r} does not hold a state dict (name -> tensor).")
    if num_classes is None:
        num_classes = _infer_num_classes(state)
    model = torchvision.models.get_model(architecture, weights=None, num_classes=num_classes)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise ValueError(
            f"The weights in {str(path)!r} do not fit {architecture} with {num_classes} "
            f"classes: {str(error).splitlines()[0]}"
        ) from error
    return model


def _infer_num_classes(state: dict) -> int:
    """Outputs of the last 2-D weight (the classifier), e.g. ``fc.weight`` of a ResNet."""
    matrices = [value for name, value in state.items() if name.endswith("weight") and value.ndim == 2]
    if not matrices:
        raise ValueError("Cannot infer the number of classes from the state dict; set num_classes.")
    return int(matrices[-1].shape[0])
