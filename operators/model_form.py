"""Form inputs naming a model file and its input preprocessing, shared by the operators
that run a user's model.

The form never loads the file: it checks its kind from the zip directory (and a state
dict's pickle opcodes) with :func:`fiftyone_intrinsic.core.model_files.check_model_file`.
The model is loaded only when the operator executes."""

import functools
import os

from fiftyone.operators import types
from pydantic import ValidationError

from . import forms

ARCHITECTURES = (
    "resnet18", "resnet34", "resnet50", "vgg13", "vgg16", "vgg19",
    "densenet121", "efficientnet_b0", "mobilenet_v3_small", "convnext_tiny",
)
KIND_LABELS = {
    "torchvision": "torchvision architecture + state dict (runs no code from the file)",
    "torchscript": "TorchScript file (a program: only from sources you trust)",
}
#: Shown while TorchScript is chosen.
TORCHSCRIPT_WARNING = (
    "A TorchScript file is a program: executing this operator runs the code inside it "
    "(at load and on every image), with your permissions. Use only TorchScript files from "
    "sources you trust; a torchvision architecture + state dict runs no code from the file. "
    "torch.export (.pt2) files are not accepted: loading them can run code."
)


def add_model_inputs(ctx, inputs):
    """Model kind, file, architecture; returns the path property."""
    choices = types.RadioGroup()
    for kind, label in KIND_LABELS.items():
        choices.add_choice(kind, label=label)
    inputs.enum("model_kind", choices.values(), default="torchvision", label="Model", view=choices)
    if ctx.params.get("model_kind", "torchvision") == "torchscript":
        inputs.view("torchscript_warning", types.Warning(label="TorchScript files are code", description=TORCHSCRIPT_WARNING))
    if ctx.params.get("model_kind", "torchvision") == "torchvision":
        archs = types.AutocompleteView()
        for name in ARCHITECTURES:
            archs.add_choice(name, label=name)
        inputs.str("architecture", label="Architecture", required=True, default="resnet18", view=archs)
        inputs.int("num_classes", label="Classes (empty: from the weights)", required=False)
    return inputs.str("model_path", label="Model file", required=True,
                      description="State dict (loaded with weights_only=True) or TorchScript file "
                      "(code: trusted sources only). Checked here, loaded only on execution.")


def add_input_preprocessing(ctx, inputs):
    """Input size, channels, mean and std; flags malformed values on the mean property."""
    inputs.int("input_size", label="Input size", default=224, min=8)
    channels = types.RadioGroup()
    channels.add_choice("3", label="RGB")
    channels.add_choice("1", label="Gray")
    inputs.enum("input_channels", channels.values(), default="3", label="Input channels", view=channels)
    mean = inputs.str("mean", label="Mean (comma-separated, on [0, 1])", default="0.485,0.456,0.406")
    inputs.str("std", label="Std (comma-separated)", default="0.229,0.224,0.225")
    try:
        model_input(ctx.params)
    except (ValidationError, ValueError) as error:
        forms.invalidate(mean, message(error))


def check_model_file(ctx, path_prop):
    """Check the model file named by the form without loading it (cached per file
    version); flag the path when it does not fit the chosen kind. Returns the layer names
    (a torchvision architecture's, built without the file; none for TorchScript), or None."""
    try:
        source = model_source(ctx.params)
    except (ValidationError, ValueError) as error:
        forms.invalidate(path_prop, message(error))
        return None
    if source is None:
        return None
    layers = _layers_of(source.kind, source.path, _mtime(source.path), source.architecture)
    if isinstance(layers, str):
        forms.invalidate(path_prop, layers)
        return None
    return layers


def model_source(params):
    """The :class:`ModelSource` of the form, or None while no path is given."""
    from fiftyone_intrinsic.core.settings import ModelSource

    path = params.get("model_path")
    if not path:
        return None
    kind = params.get("model_kind", "torchvision")
    return ModelSource(
        kind=kind, path=str(path),
        architecture=params.get("architecture", "resnet18") if kind == "torchvision" else None,
        num_classes=params.get("num_classes") or None,
    )


def model_input(params):
    """The :class:`ModelInput` of the form."""
    from fiftyone_intrinsic.core.settings import ModelInput

    return ModelInput(
        size=int(params.get("input_size", 224)), channels=int(params.get("input_channels", "3")),
        mean=numbers(params.get("mean", "0.485,0.456,0.406"), "mean"),
        std=numbers(params.get("std", "0.229,0.224,0.225"), "std"),
    )


def numbers(text, name):
    """Comma-separated numbers → tuple of floats."""
    if isinstance(text, (list, tuple)):
        return tuple(float(v) for v in text)
    try:
        return tuple(float(v) for v in str(text).split(",") if v.strip())
    except ValueError:
        raise ValueError(f"{name} must be comma-separated numbers, e.g. 0.5,0.5,0.5; got {text!r}") from None


def sdk_model_params(model_path, model_kind, architecture, num_classes, input_size, input_channels, mean, std):
    return dict(
        model_kind=model_kind, model_path=str(model_path), architecture=architecture,
        num_classes=num_classes, input_size=input_size, input_channels=str(input_channels),
        mean=",".join(map(str, mean)), std=",".join(map(str, std)),
    )


def message(error):
    """A form message for a settings error: pydantic's names each field, others as raised."""
    if isinstance(error, ValidationError):
        return forms.pydantic_message(error)
    return str(error)


def _mtime(path):
    try:
        return os.path.getmtime(path)
    except OSError:
        return None


@functools.lru_cache(maxsize=8)
def _layers_of(kind, path, mtime, architecture):
    """Layer names for a model file, or an error message; nothing in the file is loaded.
    Cached per file version, since forms are re-resolved on every edit."""
    from fiftyone_intrinsic.core.model_files import check_model_file as check_file
    from fiftyone_intrinsic.core.models import architecture_layers

    try:
        layers = [] if kind == "torchscript" else architecture_layers(architecture)
        check_file(kind, path)
    except ValueError as error:
        return str(error)
    return layers
