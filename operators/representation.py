"""Operator: intrinsic dimension of a model layer's representation, d_repr, beside d_data."""

import fiftyone.operators as foo
from fiftyone.operators import types

from fiftyone_intrinsic.core.estimators import ESTIMATORS
from fiftyone_intrinsic.core.settings import DEFAULT_K, DimensionSettings
from fiftyone_intrinsic.datasets import runs

from . import forms, model_form
from .progress import run_with_progress
from .sdk import call_operator

#: The paper's estimator for d_repr (TwoNN on a layer's activations).
REPRESENTATION_ESTIMATOR = "twonn"


class ComputeRepresentationDimension(foo.Operator):
    """d_repr of a layer of a model loaded from a file, compared with d_data."""

    @property
    def config(self):
        return forms.long_running_config(
            "compute_representation_dimension", "Representation dimension d_repr: compute",
            "d_repr of a model layer's activations beside d_data (eval mode, no gradients)",
        )

    def resolve_input(self, ctx):
        inputs = types.Object()
        view, too_small = forms.add_target_view(ctx, inputs, 3)
        path_prop = model_form.add_model_inputs(ctx, inputs)
        layer_prop = inputs.str("layer", label="Layer", required=True, default="layer4",
                                description="A module name, e.g. 'layer4' or 'avgpool'; 'output' for the model output")
        model_form.add_input_preprocessing(ctx, inputs)
        _, estimator = forms.registry_choice(
            ctx, inputs, DimensionSettings, "estimator", ESTIMATORS, "Estimator (the paper: TwoNN)",
            default=REPRESENTATION_ESTIMATOR,
        )
        if "k" in estimator.parameters:
            forms.setting_input(inputs, DimensionSettings, "k", "Neighbours k")
        data_runs = runs.list_intrinsic_runs(ctx.dataset, method="intrinsic_dimension")
        sources = types.DropdownView()
        sources.add_choice("compute", label="Compute d_data now (same estimator)")
        for key in data_runs:
            sources.add_choice(key, label=f"Stored run {key}")
        inputs.enum("data_run_key", ["compute"] + data_runs, default="compute", label="d_data from", view=sources)
        forms.add_device(ctx, inputs)
        forms.add_run_key(ctx, inputs, "representation_dimension")
        layers = model_form.check_model_file(ctx, path_prop)
        layer = ctx.params.get("layer", "layer4")
        if layers is not None and layer != "output" and layer not in layers:
            kind = ctx.params.get("model_kind", "torchvision")
            hint = "TorchScript models give 'output' only" if kind == "torchscript" else f"layers include {layers[:12]}"
            forms.invalidate(layer_prop, f"The model has no layer {layer!r}; {hint}.")
        if not too_small:
            forms.check_enough_samples(layer_prop, view, 3, "an intrinsic dimension")
        return types.Property(inputs, view=types.View(label="Representation dimension d_repr: compute"))

    def execute(self, ctx):
        from fiftyone_intrinsic import compute_representation_dimension, load_model

        params = ctx.params
        view = ctx.target_view()
        model = load_model(model_form.model_source(params))
        data_run_key = params.get("data_run_key", "compute")
        result = yield from run_with_progress(
            ctx,
            lambda progress: compute_representation_dimension(
                view, model, layer=params.get("layer", "layer4"), model_input=model_form.model_input(params),
                run_key=params.get("run_key", "representation_dimension"),
                estimator=params.get("estimator") or REPRESENTATION_ESTIMATOR,
                k=int(forms.param(params, DimensionSettings, "k")),
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
        std=(0.229, 0.224, 0.225), estimator=REPRESENTATION_ESTIMATOR, k=DEFAULT_K, data_run_key="compute",
        run_key="representation_dimension", device="auto", overwrite=False, delegate=False,
    ):
        """d_repr of ``layer`` of the model in ``model_path`` (see
        :func:`fiftyone_intrinsic.compute_representation_dimension`); returns the stored
        results, or the queued operation when ``delegate=True``."""
        params = dict(
            model_form.sdk_model_params(model_path, model_kind, architecture, num_classes, input_size, input_channels, mean, std),
            layer=layer, estimator=estimator, k=k, data_run_key=data_run_key,
            run_key=run_key, device=device, overwrite=overwrite,
        )
        return call_operator(self.uri, sample_collection, run_key, params, delegate)
