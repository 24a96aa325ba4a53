"""Operators that show, describe and delete stored runs."""

import json

import fiftyone.operators as foo
from fiftyone.operators import types

from fiftyone_intrinsic.datasets import runs
from fiftyone_intrinsic.datasets.schema import SHARPNESS

from . import forms


def _run_key_input(ctx, inputs, method=None, status="complete"):
    """A dropdown of the dataset's runs (``status=None``: incomplete ones too, marked)."""
    keys = runs.list_intrinsic_runs(ctx.dataset, method=method, status=status)
    incomplete = set(runs.list_intrinsic_runs(ctx.dataset, method=method, status="incomplete")) if status is None else set()
    choices = types.DropdownView()
    for key in keys:
        choices.add_choice(key, label=f"{key} (incomplete)" if key in incomplete else key)
    prop = inputs.str("run_key", label="Run", required=True, view=choices)
    key = ctx.params.get("run_key")
    if not keys:
        kind = "label-sharpness runs" if method == SHARPNESS.method else "fiftyone_intrinsic runs"
        forms.invalidate(prop, f"This dataset has no {kind} yet; compute one first.")
    elif key is not None and key not in keys:
        forms.invalidate(prop, f"No such run {key!r}; runs of this dataset: {keys}.")
    return prop


def _simple_config(name, label, description):
    return foo.OperatorConfig(name=name, label=label, description=description, dynamic=True)


class LoadSharpestPairs(foo.Operator):
    """Show a label-sharpness run's pairs, each side by side, in the grid."""

    @property
    def config(self):
        return _simple_config("load_sharpest_pairs", "Show sharpest pairs",
                              "Load the saved view of a label-sharpness run")

    def resolve_input(self, ctx):
        inputs = types.Object()
        _run_key_input(ctx, inputs, method=SHARPNESS.method)
        return types.Property(inputs, view=types.View(label="Show sharpest pairs"))

    def execute(self, ctx):
        from fiftyone_intrinsic import load_sharpest_pairs_view

        view = load_sharpest_pairs_view(ctx.dataset, ctx.params["run_key"])
        ctx.ops.set_view(view=view)
        return {"run_key": ctx.params["run_key"], "samples": len(view)}

    def __call__(self, sample_collection, run_key="label_sharpness"):
        """The saved view of the run's pairs (conflicting duplicates first)."""
        from fiftyone_intrinsic import load_sharpest_pairs_view

        foo.execute_operator(self.uri, ctx=dict(view=sample_collection.view()), params=dict(run_key=run_key))
        return load_sharpest_pairs_view(sample_collection, run_key)


class GetIntrinsicRunInfo(foo.Operator):
    """Describe a stored run: settings, features and preprocessing, versions, results."""

    @property
    def config(self):
        return _simple_config("get_intrinsic_run_info", "Get intrinsic run info",
                              "Settings, preprocessing and results of a stored run")

    def resolve_input(self, ctx):
        inputs = types.Object()
        _run_key_input(ctx, inputs, status=None)
        return types.Property(inputs, view=types.View(label="Intrinsic run info"))

    def execute(self, ctx):
        key = ctx.params["run_key"]
        info = runs.get_intrinsic_run_info(ctx.dataset, key)
        complete = runs.is_complete(info.config)
        summary = {}
        if complete:
            results = runs.load_intrinsic_results(ctx.dataset, key)
            summary = {
                name: getattr(results, name) for name in results.VALUES
                if not isinstance(getattr(results, name), list)
            }
        return {
            "run_key": key,
            "status": runs.run_status(info.config) if complete else runs.incomplete_message(ctx.dataset, key, info.config),
            "timestamp": str(info.timestamp),
            "config": json.loads(json.dumps(info.config.serialize(), default=str)),
            "results": json.loads(json.dumps(summary, default=str)),
        }

    def resolve_output(self, ctx):
        outputs = types.Object()
        outputs.str("run_key", label="Run key")
        outputs.str("status", label="Status")
        outputs.str("timestamp", label="Computed at (UTC)")
        outputs.obj("results", label="Results", view=types.JSONView())
        outputs.obj("config", label="Config", view=types.JSONView())
        return types.Property(outputs, view=types.View(label="Intrinsic run info"))

    def __call__(self, sample_collection, run_key):
        """The run's info as a dict (run_key, timestamp, config, results)."""
        outcome = foo.execute_operator(self.uri, ctx=dict(view=sample_collection.view()), params=dict(run_key=run_key))
        return outcome.result


class DeleteIntrinsicRun(foo.Operator):
    """Delete a stored run with the fields, tags and saved views it wrote."""

    @property
    def config(self):
        return _simple_config("delete_intrinsic_run", "Delete intrinsic run",
                              "Delete a run and the fields, tags and views it wrote")

    def resolve_input(self, ctx):
        inputs = types.Object()
        _run_key_input(ctx, inputs, status=None)
        return types.Property(inputs, view=types.View(label="Delete intrinsic run"))

    def execute(self, ctx):
        key = ctx.params["run_key"]
        written = runs.get_intrinsic_run_info(ctx.dataset, key).config
        runs.delete_intrinsic_run(ctx.dataset, key)
        ctx.ops.reload_dataset()
        return {"deleted": key, "fields": list(written.fields), "tags": list(written.tags)}

    def __call__(self, sample_collection, run_key):
        """Delete the run ``run_key``; returns what was removed."""
        outcome = foo.execute_operator(self.uri, ctx=dict(view=sample_collection.view()), params=dict(run_key=run_key))
        return outcome.result
