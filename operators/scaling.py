"""Operator: the scaling law of a labeled view (learning curve, fit, −1/d_data, budget plan)."""

import json

import fiftyone.operators as foo
from fiftyone.operators import types

from fiftyone_intrinsic.core.settings import LearningCurveSettings, setting_spec
from fiftyone_intrinsic.datasets import runs
from fiftyone_intrinsic.datasets.schema import DIMENSION, REPRESENTATION, SHARPNESS
from fiftyone_intrinsic.datasets.settings import SCALING_MODES, ScalingLawSettings

from . import data_checks, forms, model_form
from .progress import run_with_progress
from .sdk import call_operator

BALANCE_LABELS = {"equal": "Equal per class", "stratified": "Pool proportions"}
MODE_LABELS = {
    "curve": ("Learning curve", "Train on nested subsets of the paper's sizes (500 … 1750, capped by the data)"),
    "pilot": ("Pilot", "A small labeled set: sizes from an eighth of it to all of it; "
              "the plan takes its slope from d_data"),
    "before_labeling": ("Before labeling", "No labels, no training: the exponent −1/d_data predicts"),
}

#: Below this many images no learning curve can be carved (three nested training sizes
#: with every class at least twice, and a held-out quarter): the form then suggests the
#: whole dataset, e.g. after a sharp pair's two samples were opened.
MIN_SAMPLES = 16

class FitScalingLaw(foo.Operator):
    """Fit log L against log N on the target view and plan the labels a target loss needs."""

    @property
    def config(self):
        return forms.long_running_config(
            "fit_scaling_law", "Scaling law: fit",
            "Test loss vs training-set size on nested class-balanced subsets; "
            "exponent vs −1/d_data; labels needed for a target loss",
            delegate_by_default=True,
        )

    def resolve_input(self, ctx):
        inputs = types.Object()
        view, too_small = forms.add_target_view(ctx, inputs, MIN_SAMPLES)
        if too_small:  # the form suggests the dataset: check the labels and split there
            view = ctx.dataset
        params = ctx.params
        modes = types.RadioGroup()
        for name in SCALING_MODES:
            label, description = MODE_LABELS[name]
            modes.add_choice(name, label=label, description=description)
        inputs.enum("mode", modes.values(), default="curve", label="Mode", view=modes)
        mode = params.get("mode", "curve")
        props = {}
        if mode != "before_labeling":
            props["label_field"] = forms.add_label_field(ctx, inputs, view)
            held_out = types.RadioGroup()
            held_out.add_choice("carve", label="Carve from the view",
                                description="A fixed class-balanced held-out split")
            held_out.add_choice("tag", label="Samples with a tag",
                                description="e.g. MedMNIST's 'test'; must not overlap the view")
            inputs.enum("held_out", held_out.values(), default="carve", label="Held-out split", view=held_out)
            if params.get("held_out", "carve") == "tag":
                tags = sorted(ctx.dataset.distinct("tags"))
                tag_choices = types.DropdownView()
                for tag in tags:
                    tag_choices.add_choice(tag, label=tag)
                props["test_tag"] = inputs.str("test_tag", label="Held-out tag", required=True, view=tag_choices)
            else:
                inputs.int("n_test", label="Held-out images", required=False, min=1,
                           description="Empty: min(750, a quarter of the view)")
            props["sizes"] = inputs.str(
                "sizes", label="Training-set sizes", required=False,
                description="Comma-separated, at least 3; empty: the mode's defaults",
            )
            forms.setting_input(inputs, LearningCurveSettings, "n_seeds", "Seeds per size")
            balance = types.RadioGroup()
            for choice in setting_spec(LearningCurveSettings, "balance").choices:
                balance.add_choice(choice, label=BALANCE_LABELS[choice])
            inputs.enum("balance", balance.values(), default=setting_spec(LearningCurveSettings, "balance").default,
                        label="Class balance", view=balance)
            forms.setting_input(inputs, LearningCurveSettings, "epochs", "Epochs")
            forms.setting_input(inputs, LearningCurveSettings, "min_steps", "At least this many steps per model")
            forms.setting_input(inputs, LearningCurveSettings, "batch_size", "Batch size")
            forms.setting_input(inputs, LearningCurveSettings, "learning_rate", "Learning rate (Adam)")
            props["target_loss"] = inputs.str(
                "target_loss", label="Target test losses (nats)", required=False,
                description="Comma-separated; empty: 0.9, 0.75 and 0.5 times the loss at the largest size",
            )
        props["size"] = inputs.int("size", label="Image size", required=False,
                                   description="Resize to size x size; empty keeps the images' own size")
        forms.add_channels(inputs)
        props["dimension_run_key"] = _run_choice(ctx, inputs, "dimension_run_key", DIMENSION.method, "d_data from")
        if mode != "before_labeling":
            props["sharpness_run_key"] = _run_choice(ctx, inputs, "sharpness_run_key", SHARPNESS.method, "K_F from")
            props["representation_run_key"] = _run_choice(
                ctx, inputs, "representation_run_key", REPRESENTATION.method, "d_repr from", compute=False,
            )
        forms.add_device(ctx, inputs)
        forms.add_run_key(ctx, inputs, "scaling_law")
        _validate(ctx, view, props)
        return types.Property(inputs, view=types.View(label="Scaling law: fit"))

    def execute(self, ctx):
        from fiftyone_intrinsic import fit_scaling_law

        view = ctx.target_view()
        kwargs = library_kwargs(ctx.dataset, ctx.params, device=forms.device_param(ctx))
        report = yield from run_with_progress(
            ctx,
            lambda progress: fit_scaling_law(
                view, overwrite=bool(ctx.params.get("overwrite", False)), progress=progress, **kwargs,
            ),
        )
        if not ctx.delegated:
            yield ctx.ops.reload_dataset()
            yield ctx.ops.notify(summary(report), variant="success")

    def __call__(
        self,
        sample_collection,
        label_field="ground_truth",
        mode="curve",
        sizes=None,
        n_seeds=3,
        test_tag=None,
        n_test=None,
        balance="equal",
        epochs=30,
        min_steps=100,
        batch_size=32,
        learning_rate=2e-3,
        size=None,
        channels="auto",
        dimension_run_key=None,
        sharpness_run_key=None,
        representation_run_key=None,
        target_loss=None,
        run_key="scaling_law",
        device="auto",
        overwrite=False,
        delegate=False,
    ):
        """Fit the scaling law of ``sample_collection`` (see
        :func:`fiftyone_intrinsic.fit_scaling_law`); ``test_tag`` holds out
        the dataset's samples with that tag, else ``n_test`` images are carved from the
        collection. A model factory can be given from Python only, to the library function.

        Returns the stored run results, or the queued operation when ``delegate=True``.
        """
        def joined(values):
            if values is None:
                return None
            return ",".join(str(v) for v in (values if isinstance(values, (list, tuple)) else [values]))

        params = dict(
            label_field=label_field, mode=mode, sizes=joined(sizes), n_seeds=n_seeds,
            held_out="tag" if test_tag else "carve", test_tag=test_tag, n_test=n_test, balance=balance,
            epochs=epochs, min_steps=min_steps, batch_size=batch_size, learning_rate=learning_rate,
            size=size, channels=str(channels or "auto"), dimension_run_key=dimension_run_key or "compute",
            sharpness_run_key=sharpness_run_key or "compute",
            representation_run_key=representation_run_key or "none",
            target_loss=joined(target_loss), run_key=run_key, device=device, overwrite=overwrite,
        )
        return call_operator(self.uri, sample_collection, run_key, params, delegate)


def library_kwargs(dataset, params, device=None) -> dict:
    """Keyword arguments of :func:`fit_scaling_law` that a form (or SDK call) describes:
    ``label_field``, ``run_key``, ``test_samples`` and the validated ``settings``.

    Raises:
        ValueError: a malformed number list, or settings out of range.
    """
    mode = params.get("mode", "curve")
    options = dict(
        mode=mode, size=params.get("size") or None, channels=forms.channels_param(params),
        dimension_run_key=_run_key(params, "dimension_run_key"), device=device,
    )
    call = dict(run_key=params.get("run_key", "scaling_law"), label_field=None, test_samples=None)
    if mode != "before_labeling":
        tag = params.get("test_tag") if params.get("held_out", "carve") == "tag" else None
        call.update(label_field=params.get("label_field"), test_samples=dataset.match_tags(tag) if tag else None)
        options.update(
            sizes=parse_sizes(params.get("sizes")), n_test=params.get("n_test") or None,
            target_loss=list(model_form.numbers(params.get("target_loss") or "", "target_loss")) or None,
            sharpness_run_key=_run_key(params, "sharpness_run_key"),
            representation_run_key=_run_key(params, "representation_run_key"),
            **{name: forms.param(params, LearningCurveSettings, name)
               for name in ("n_seeds", "balance", "epochs", "min_steps", "batch_size", "learning_rate")},
        )
    return dict(call, settings=ScalingLawSettings.from_options(**options))


def parse_sizes(text):
    """Comma-separated sizes → tuple of ints, or None for the defaults."""
    if text is None or (isinstance(text, str) and not text.strip()):
        return None
    values = model_form.numbers(text, "sizes")
    if any(v != int(v) for v in values):
        raise ValueError(f"Training-set sizes must be whole numbers; got {list(values)}.")
    return tuple(int(v) for v in values)


def summary(report) -> str:
    """One line for the App's notification."""
    if report.fit is None:
        p = report.prediction
        return (f"Before labeling: d_data = {p.d_data:.2f}, predicted exponent {p.exponent:.3f}; "
                f"halving the loss bound takes {p.data_factor_per_halving:.3g}x the labels")
    fit, law = report.fit, report.law
    plan = report.plans[report.primary_plan]
    text = f"Exponent {fit.exponent:.3f} [{fit.exponent_low:.3f}, {fit.exponent_high:.3f}]"
    if law.predicted_exponent is not None:
        text += f" vs −1/d_data = {law.predicted_exponent:.3f} ({law.agreement})"
    n = plan.n_needed[-1]
    answer = "unreachable on this curve" if n == float("inf") else f"{int(round(n)):,}"
    return text + f"; loss {plan.target_loss[-1]:.3g} needs N ≈ {answer} ({plan.method})"


def _run_key(params, name):
    value = params.get(name)
    return None if value in (None, "compute", "none") else value


def _run_choice(ctx, inputs, name, method, label, compute=True):
    keys = runs.list_intrinsic_runs(ctx.dataset, method=method)
    choices = types.DropdownView()
    first = "compute" if compute else "none"
    choices.add_choice(first, label="Measure on the training pool" if compute else "None")
    for key in keys:
        choices.add_choice(key, label=f"Stored run {key}")
    return inputs.enum(name, [first] + keys, default=first, label=label, view=choices)


def _validate(ctx, view, props):
    """Refuse, on the form, what the library would refuse: nothing is trained for it."""
    from fiftyone_intrinsic.core.learning_curve import resolve_sizes
    from fiftyone_intrinsic.datasets.scaling import check_sources

    params = ctx.params
    try:
        kwargs = library_kwargs(ctx.dataset, params)
    except ValueError as error:
        text = str(error)
        bad = "target_loss" if "target_loss" in text or "target loss" in text else "sizes"
        forms.invalidate(props.get(bad, props["size"]), model_form.message(error))
        return
    settings = kwargs["settings"]
    try:
        check_sources(ctx.dataset, settings.dimension_run_key, settings.sharpness_run_key,
                      settings.representation_run_key, settings.size, settings.channels)
    except ValueError as error:
        name = "sharpness_run_key" if "(K_F)" in str(error) or "give K_F" in str(error) else "dimension_run_key"
        forms.invalidate(props.get(name, props["dimension_run_key"]), str(error))
    if settings.mode == "before_labeling" or props["label_field"].invalid or not kwargs["label_field"]:
        return
    error, train_labels = _split_check(view, kwargs["label_field"], kwargs["test_samples"], settings.curve)
    if error is not None:
        forms.invalidate(props.get("test_tag", props["label_field"]), error)
        return
    try:
        resolve_sizes(train_labels, settings.curve, pilot=settings.mode == "pilot")
    except ValueError as error:
        forms.invalidate(props["sizes"], str(error))


def _split_check(view, label_field, test_samples, curve):
    """``(error message or None, labels of the training pool)``: the held-out split the run
    would make, read once per state of the view (and of the held-out view) and settings,
    not on every keystroke (:func:`.data_checks.cached`)."""
    from fiftyone_intrinsic.datasets.scaling import prepare_split

    def check():
        try:
            _, labels, train, _ = prepare_split(view, label_field, test_samples, curve)
        except ValueError as error:
            return str(error), None
        return None, labels[train]

    what = json.dumps([
        "scaling_split", label_field, None if test_samples is None else data_checks.view_state(test_samples),
        curve.n_test, curve.split_seed, curve.balance,  # what the split depends on (not the sizes)
    ], default=str)
    return data_checks.cached(view, what, check)
