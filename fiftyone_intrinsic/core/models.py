"""Loading a user's model file, and wrapping a model so it sees [0, 1] images.

What loading a file may run:

- A state dict (kind ``"torchvision"``) loads with ``torch.load(weights_only=True)``: torch's
  restricted unpickler builds tensors and plain containers and refuses a pickle that names
  any other Python object, so no code from the file runs.
- A TorchScript file (kind ``"torchscript"``) is a program. ``torch.jit.load`` reads its
  pickles with TorchScript's own C++ unpickler, which resolves only tensors and TorchScript
  types (a pickle naming a Python callable is refused), but it compiles the TorchScript code
  in the archive and runs it: a module's ``__setstate__`` at load, ``forward`` on every call.
  That code can call any operator registered in the process (reading files, for one). Load
  TorchScript only from sources you trust.
- torch.export programs (``.pt2``) are refused, see
  :data:`~fiftyone_intrinsic.core.model_files.EXPORT_REFUSED`.

Every file is first checked by :func:`~fiftyone_intrinsic.core.model_files.check_model_file`,
which reads its zip directory and opcodes without loading it.
"""

from __future__ import annotations

import contextlib
import pathlib

import torch

from .model_files import check_model_file
from .settings import ModelInput, ModelSource

__all__ = ["load_model", "layer_names", "architecture_layers", "check_architecture", "NormalizedModel", "eval_mode"]


def load_model(source: ModelSource) -> torch.nn.Module:
    """Load the model a :class:`ModelSource` names, on the CPU.

    A TorchScript file runs its own code here (module docstring); a state dict runs none.

    Raises:
        ValueError: for a missing file, a torch.export archive, an unknown architecture, a
            file that is not a state dict (e.g. a pickled object) or not TorchScript, or
            weights that do not fit the architecture.
    """
    if source.kind == "torchvision":
        check_architecture(source.architecture)
    path = check_model_file(source.kind, source.path)
    if source.kind == "torchscript":
        return _load_torchscript(path)
    return _load_torchvision(path, source.architecture, source.num_classes)


def check_architecture(architecture: str) -> None:
    """Raise a ValueError naming close matches unless torchvision has ``architecture``."""
    import torchvision

    available = torchvision.models.list_models()
    if architecture not in available:
        close = [name for name in available if name.startswith(architecture[:3])][:8]
        raise ValueError(
            f"Unknown torchvision architecture {architecture!r}; for example {close or available[:8]}."
        )


def architecture_layers(architecture: str) -> list[str]:
    """Layer names of a torchvision architecture, from a freshly built model (no file read)."""
    import torchvision

    check_architecture(architecture)
    return layer_names(torchvision.models.get_model(architecture, weights=None))


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
        pass  # a torch.export program (e.g. one a caller loaded) keeps its exported mode


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


def _load_torchvision(path, architecture: str, num_classes):
    import torchvision

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
