"""Operator: intrinsic dimension of a model layer's representation, d_repr, beside d_data."""

import functools
import os

import fiftyone.operators as foo
from fiftyone.operators import types
from pydantic import ValidationError

from fiftyone_intrinsic import runs

from . import forms
from .progress import run_with_progress

ARCHITECTURES = (
    "resnet18", "resnet34", "resnet50", "vgg13", "vgg16", "vgg19",
    "densenet121", "efficientnet_b0", "mobilenet_v3_small", "convnext_tiny",
)


class ComputeRepresentationDimension(foo.Operator):
    """d_repr of a layer of a model loaded from a file, compared with d_data."""

    @property
    def config(self):
        return foo.OperatorConfig(
            name="compute_representation_dimension",
            label="Compute representation dimension",
            description="Intrinsic dimension of a model layer's activations (eval mode, no gradients)",
            dynamic=True,
            execute_as_generator=True,
            allow_immediate_execution=True,
            allow_delegated_execution=True,
        )

    def resolve_input(self, ctx):
        inputs = types.Object()
        view = ctx.target_view()
        params = ctx.params
        kinds = types.RadioGroup()
        kinds.add_choice("torchvision", label="torchvision architecture + state dict")
        kinds.add_choice("torchscript", label="TorchScript file")
        inputs.enum("model_kind", kinds.values(), default="torchvision", label="Model", view=kinds)
        if params.get("model_kind", "torchvision") == "torchvision":
            archs = types.AutocompleteView()
            for name in ARCHITECTURES:
                archs.add_choice(name, label=name)
            inputs.str("architecture", label="Architecture", required=True, default="resnet18", view=archs)
            inputs.int("num_classes", label="Classes (empty: from the weights)", required=False)
        path_prop = inputs.str("model_path", label="Model file", required=True,
                               description="State dict (loaded with weights_only=True) or TorchScript file")
        layer_prop = inputs.str("layer", label="Layer", required=True, default="layer4",
                                description="A module name, e.g. 'layer4' or 'avgpool'; 'output' for the model output")
        inputs.int("input_size", label="Input size", default=224, min=8)
        channels = types.RadioGroup()
        channels.add_choice("3", label="RGB")
        channels.add_choice("1", label="Gray")
        inputs.enum("input_channels", channels.values(), default="3", label="Input channels", view=channels)
        mean_prop = inputs.str("mean", label="Mean (comma-separated, on [0, 1])", default="0.485,0.456,0.406")
        inputs.str("std", label="Std (comma-separated)", default="0.229,0.224,0.225")
        estimators = types.RadioGroup()
        estimators.add_choice("twonn", label="TwoNN (paper)")
        estimators.add_choice("mle", label="MLE")
        inputs.enum("estimator", estimators.values(), default="twonn", label="Estimator", view=estimators)
        if params.get("estimator", "twonn") != "twonn":
            inputs.int("k", default=20, min=3, label="Neighbours k")
        data_runs = runs.list_intrinsic_runs(ctx.dataset, method="intrinsic_dimension")
        sources = types.DropdownView()
        sources.add_choice("compute", label="Compute d_data now (same estimator)")
        for key in data_runs:
            sources.add_choice(key, label=f"Stored run {key}")
        inputs.enum("data_run_key", ["compute"] + data_runs, default="compute", label="d_data from", view=sources)
        forms.add_device(ctx, inputs)
        forms.add_run_key(ctx, inputs, "representation_dimension")
        self._validate(ctx, path_prop, layer_prop, mean_prop, view)
        return types.Property(inputs, view=types.View(label="Compute representation dimension"))

    def _validate(self, ctx, path_prop, layer_prop, mean_prop, view):
        try:
            model_input(ctx.params)
        except (ValidationError, ValueError) as error:
            forms.invalidate(mean_prop, str(error).splitlines()[-1] if isinstance(error, ValidationError) else str(error))
        try:
            source = model_source(ctx.params)
        except (ValidationError, ValueError) as error:
            forms.invalidate(path_prop, _message(error))
            return
        if source is None:
            return
        layers = _layers_of(source.kind, source.path, _mtime(source.path), source.architecture, source.num_classes)
        if isinstance(layers, str):
            forms.invalidate(path_prop, layers)
            return
        layer = ctx.params.get("layer", "layer4")
        if layer != "output" and layer not in layers:
            hint = "TorchScript models give 'output' only" if source.kind == "torchscript" else f"layers include {layers[:12]}"
            forms.invalidate(layer_prop, f"The model has no layer {layer!r}; {hint}.")
        forms.check_enough_samples(layer_prop, view, 3, "an intrinsic dimension")

    def execute(self, ctx):
        from fiftyone_intrinsic.models import load_model
        from fiftyone_intrinsic.representation import compute_representation_dimension

        params = ctx.params
        view = ctx.target_view()
        model = load_model(model_source(params))
        data_run_key = params.get("data_run_key", "compute")
        result = yield from run_with_progress(
            ctx,
            lambda progress: compute_representation_dimension(
                view, model, layer=params.get("layer", "layer4"), model_input=model_input(params),
                run_key=params.get("run_key", "representation_dimension"),
                estimator=params.get("estimator", "twonn"), k=int(params.get("k", 20)),
                data_run_key=None if data_run_key == "compute" else data_run_key,
                device=forms.device_param(ctx), overwrite=bool(params.get("overwrite", False)),
                progress=progress,
            ),
        )
        if not ctx.delegated:
            verdict = "holds" if result.holds else "does NOT hold"
            yield ctx.ops.reload_dataset()
            yield ctx.ops.notify(
                f"d_repr = {result.representation.dimension:.2f}, d_data = {result.data_dimension:.2f}: "
                f"d_repr <= d_data {verdict}",
                variant="success",
            )

    def __call__(
        self, sample_collection, model_path, layer, model_kind="torchvision", architecture="resnet18",
        num_classes=None, input_size=224, input_channels=3, mean=(0.485, 0.456, 0.406),
        std=(0.229, 0.224, 0.225), estimator="twonn", k=20, data_run_key="compute",
        run_key="representation_dimension", device="auto", overwrite=False, delegate=False,
    ):
        """d_repr of ``layer`` of the model in ``model_path`` (see
        :func:`fiftyone_intrinsic.compute_representation_dimension`); returns the stored
        results, or the queued operation when ``delegate=True``."""
        from .measure import _call

        params = dict(
            model_kind=model_kind, model_path=str(model_path), architecture=architecture,
            num_classes=num_classes, layer=layer, input_size=input_size,
            input_channels=str(input_channels), mean=",".join(map(str, mean)),
            std=",".join(map(str, std)), estimator=estimator, k=k, data_run_key=data_run_key,
            run_key=run_key, device=device, overwrite=overwrite,
        )
        return _call(self.uri, sample_collection, run_key, params, delegate)


def model_source(params):
    """The :class:`ModelSource` of the form, or None while no path is given."""
    from fiftyone_intrinsic.settings import ModelSource

    path = params.get("model_path")
    if not path:
        return None
    kind = params.get("model_kind", "torchvision")
    return ModelSource(
        kind=kind, path=path,
        architecture=params.get("architecture", "resnet18") if kind == "torchvision" else None,
        num_classes=params.get("num_classes") or None,
    )


def model_input(params):
    from fiftyone_intrinsic.settings import ModelInput

    def floats(text, name):
        try:
            return tuple(float(v) for v in str(text).split(",") if v.strip())
        except ValueError:
            raise ValueError(f"{name} must be comma-separated numbers, e.g. 0.5,0.5,0.5; got {text!r}") from None

    return ModelInput(
        size=int(params.get("input_size", 224)), channels=int(params.get("input_channels", "3")),
        mean=floats(params.get("mean", "0.485,0.456,0.406"), "mean"),
        std=floats(params.get("std", "0.229,0.224,0.225"), "std"),
    )


def _mtime(path):
    try:
        return os.path.getmtime(path)
    except OSError:
        return None


@functools.lru_cache(maxsize=8)
def _layers_of(kind, path, mtime, architecture, num_classes):
    """Layer names of a model file, or an error message; cached per file version, since
    forms are re-resolved on every edit."""
    from fiftyone_intrinsic.models import layer_names, load_model
    from fiftyone_intrinsic.settings import ModelSource

    try:
        model = load_model(ModelSource(kind=kind, path=path, architecture=architecture, num_classes=num_classes))
    except ValueError as error:
        return str(error)
    return [] if kind == "torchscript" else layer_names(model)


def _message(error):
    if isinstance(error, ValidationError):
        return "; ".join(e["msg"] for e in error.errors())
    return str(error)
