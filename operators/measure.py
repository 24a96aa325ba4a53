"""Operators that measure a view: intrinsic dimension and label sharpness."""

import fiftyone.operators as foo
from fiftyone.operators import types

from fiftyone_intrinsic.core.estimators import ESTIMATORS
from fiftyone_intrinsic.core.settings import DEFAULT_K, DimensionSettings, SharpnessSettings

from . import forms
from .progress import run_with_progress
from .sdk import call_operator


class ComputeIntrinsicDimension(foo.Operator):
    """Estimate the intrinsic dimension d_data of a view and store it as a run."""

    @property
    def config(self):
        return forms.long_running_config(
            "compute_intrinsic_dimension", "Intrinsic dimension d_data: compute",
            "Estimate d_data (MLE or TwoNN) of the target view, exact neighbours", "/assets/dimension.svg",
        )

    def resolve_input(self, ctx):
        inputs = types.Object()
        chosen = ESTIMATORS.get(ctx.params.get("estimator") or forms.param(ctx.params, DimensionSettings, "estimator"))
        at_least = chosen.neighbors_needed(int(forms.param(ctx.params, DimensionSettings, "k"))) + 1 if chosen else 2
        view, too_small = forms.add_target_view(ctx, inputs, at_least)
        forms.add_features(ctx, inputs, view)
        _, estimator = forms.registry_choice(ctx, inputs, DimensionSettings, "estimator", ESTIMATORS, "Estimator")
        k = None
        if "discard_fraction" in estimator.parameters:
            forms.setting_input(inputs, DimensionSettings, "discard_fraction", "Discarded fraction of largest ratios")
        if "k" in estimator.parameters:
            k = forms.setting_input(inputs, DimensionSettings, "k", "Neighbours k")
        needed = estimator.neighbors_needed(int(forms.param(ctx.params, DimensionSettings, "k"))) + 1
        what = f"{estimator.label} with k={needed - 1}" if k is not None else estimator.label
        forms.setting_input(inputs, DimensionSettings, "duplicate_tolerance", "Near-duplicate tolerance")
        forms.setting_input(inputs, DimensionSettings, "max_merged_fraction", "Largest merged fraction")
        forms.add_device(ctx, inputs)
        key_prop, _ = forms.add_run_key(ctx, inputs, "intrinsic_dimension")
        if not too_small:
            forms.check_enough_samples(k if k is not None else key_prop, view, needed, what)
        return types.Property(inputs, view=types.View(label="Intrinsic dimension d_data: compute"))

    def execute(self, ctx):
        from fiftyone_intrinsic import compute_intrinsic_dimension

        params = ctx.params
        view = ctx.target_view()
        result = yield from run_with_progress(
            ctx,
            lambda progress: compute_intrinsic_dimension(
                view,
                run_key=params.get("run_key", "intrinsic_dimension"),
                estimator=forms.param(params, DimensionSettings, "estimator"),
                k=int(forms.param(params, DimensionSettings, "k")),
                discard_fraction=float(forms.param(params, DimensionSettings, "discard_fraction")),
                duplicate_tolerance=float(forms.param(params, DimensionSettings, "duplicate_tolerance")),
                max_merged_fraction=float(forms.param(params, DimensionSettings, "max_merged_fraction")),
                features=forms.feature_settings(params),
                device=forms.device_param(ctx),
                overwrite=bool(params.get("overwrite", False)),
                progress=progress,
            ),
        )
        if not ctx.delegated:
            yield ctx.ops.reload_dataset()
            yield ctx.ops.notify(dimension_notice(result), variant="success")

    def __call__(
        self,
        sample_collection,
        run_key="intrinsic_dimension",
        estimator="mle",
        k=DEFAULT_K,
        discard_fraction=0.1,
        duplicate_tolerance=0.0,
        max_merged_fraction=0.05,
        embeddings_field=None,
        size=None,
        channels="auto",
        value_range="unit",
        normalize_max=False,
        device="auto",
        overwrite=False,
        delegate=False,
    ):
        """Estimate d_data of ``sample_collection`` (see
        :func:`fiftyone_intrinsic.compute_intrinsic_dimension`).

        Returns the stored run results, or the queued operation when ``delegate=True``.
        """
        params = dict(
            run_key=run_key, estimator=estimator, k=k, discard_fraction=discard_fraction,
            duplicate_tolerance=duplicate_tolerance, max_merged_fraction=max_merged_fraction,
            device=device, overwrite=overwrite,
            features_source="embeddings" if embeddings_field else "pixels",
            embeddings_field=embeddings_field, size=size, channels=str(channels or "auto"),
            value_range=value_range, normalize_max=normalize_max,
        )
        return call_operator(self.uri, sample_collection, run_key, params, delegate)


def dimension_notice(result) -> str:
    """The notification of a finished d_data run: the estimate and what was merged."""
    near = ""
    if result.n_near_duplicates:
        near = (
            f", {result.n_near_duplicates} near-duplicates merged (closer than "
            f"{result.duplicate_distance:.3g}, {result.duplicate_tolerance:g} x the median "
            "nearest-neighbour distance)"
        )
    return (
        f"d_data = {result.dimension:.2f} ({result.estimator}), "
        f"{result.n_duplicates} exact duplicates removed{near}"
    )


class ComputeLabelSharpness(foo.Operator):
    """Measure the exact label sharpness K_F of a view, flag the sharpest pairs."""

    @property
    def config(self):
        return forms.long_running_config(
            "compute_label_sharpness", "Label sharpness K_F: compute",
            "Exact K_F over all pairs; flags the sharpest pairs and conflicting duplicates",
            "/assets/sharpness.svg",
        )

    def resolve_input(self, ctx):
        inputs = types.Object()
        view, _ = forms.add_target_view(ctx, inputs, 2)  # a pair of samples with two labels
        forms.add_label_field(ctx, inputs, view)
        forms.add_features(ctx, inputs, view)
        forms.setting_input(inputs, SharpnessSettings, "top", "Sharpest pairs to flag")
        forms.add_device(ctx, inputs)
        forms.add_run_key(ctx, inputs, "label_sharpness")
        return types.Property(inputs, view=types.View(label="Label sharpness K_F: compute"))

    def execute(self, ctx):
        from fiftyone_intrinsic import compute_label_sharpness, load_sharpest_pairs_view

        params = ctx.params
        view = ctx.target_view()
        run_key = params.get("run_key", "label_sharpness")
        result = yield from run_with_progress(
            ctx,
            lambda progress: compute_label_sharpness(
                view,
                params["label_field"],
                run_key=run_key,
                top=int(forms.param(params, SharpnessSettings, "top")),
                features=forms.feature_settings(params),
                device=forms.device_param(ctx),
                overwrite=bool(params.get("overwrite", False)),
                progress=progress,
            ),
        )
        if not ctx.delegated:
            yield ctx.ops.reload_dataset()
            yield ctx.ops.set_view(view=load_sharpest_pairs_view(view, run_key))
            yield ctx.ops.notify(
                f"K_F = {result.k_f:.4g}; {len(result.conflicting_duplicates)} conflicting "
                "duplicates; showing the sharpest pairs",
                variant="success",
            )

    def __call__(
        self,
        sample_collection,
        label_field,
        run_key="label_sharpness",
        top=10,
        embeddings_field=None,
        size=None,
        channels="auto",
        value_range="unit",
        normalize_max=False,
        device="auto",
        overwrite=False,
        delegate=False,
    ):
        """Measure K_F of ``sample_collection`` (see
        :func:`fiftyone_intrinsic.compute_label_sharpness`).

        Returns the stored run results, or the queued operation when ``delegate=True``.
        """
        params = dict(
            label_field=label_field, run_key=run_key, top=top, device=device, overwrite=overwrite,
            features_source="embeddings" if embeddings_field else "pixels",
            embeddings_field=embeddings_field, size=size, channels=str(channels or "auto"),
            value_range=value_range, normalize_max=normalize_max,
        )
        return call_operator(self.uri, sample_collection, run_key, params, delegate)
