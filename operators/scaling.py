"""Operator: the scaling law of a labeled view (learning curve, fit, −1/d_data, budget plan)."""

import fiftyone.operators as foo
from fiftyone.operators import types

from fiftyone_intrinsic import runs

from . import forms, model_form
from .progress import run_with_progress

MODE_LABELS = {
    "curve": ("Learning curve", "Train on nested subsets of the paper's sizes (500 … 1750, capped by the data)"),
    "pilot": ("Pilot", "A small labeled set: sizes from an eighth of it to all of it; "
              "the plan takes its slope from d_data"),
    "before_labeling": ("Before labeling", "No labels, no training: the exponent −1/d_data predicts"),
}


class FitScalingLaw(foo.Operator):
    """Fit log L against log N on the target view and plan the labels a target loss needs."""

    @property
    def config(self):
        return forms.long_running_config(
            "fit_scaling_law", "Fit scaling law",
            "Test loss vs training-set size on nested class-balanced subsets; "
            "exponent vs −1/d_data; labels needed for a target loss",
            delegate_by_default=True,
        )

    def resolve_input(self, ctx):
        inputs = types.Object()
        view = ctx.target_view()
        params = ctx.params
        modes = types.RadioGroup()
        for name, (label, description) in MODE_LABELS.items():
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
            inputs.int("n_seeds", label="Seeds per size", default=3, min=1, max=100)
            balance = types.RadioGroup()
            balance.add_choice("equal", label="Equal per class")
            balance.add_choice("stratified", label="Pool proportions")
            inputs.enum("balance", balance.values(), default="equal", label="Class balance", view=balance)
            inputs.int("epochs", label="Epochs", default=30, min=1)
            inputs.int("min_steps", label="At least this many steps per model", default=100, min=0)
            inputs.int("batch_size", label="Batch size", default=32, min=1)
            inputs.float("learning_rate", label="Learning rate (Adam)", default=2e-3, min=0.0)
            props["target_loss"] = inputs.str(
                "target_loss", label="Target test losses (nats)", required=False,
                description="Comma-separated; empty: 0.9, 0.75 and 0.5 times the loss at the largest size",
            )
        props["size"] = inputs.int("size", label="Image size", required=False,
                                   description="Resize to size x size; empty keeps the images' own size")
        channels = types.RadioGroup()
        for choice in forms.CHANNEL_CHOICES:
            channels.add_choice(choice, label={"auto": "Keep", "1": "Gray", "3": "RGB"}[choice])
        inputs.enum("channels", channels.values(), default="auto", label="Channels", view=channels)
        props["dimension_run_key"] = _run_choice(ctx, inputs, "dimension_run_key", "intrinsic_dimension", "d_data from")
        if mode != "before_labeling":
            props["sharpness_run_key"] = _run_choice(ctx, inputs, "sharpness_run_key", "label_sharpness", "K_F from")
            props["representation_run_key"] = _run_choice(
                ctx, inputs, "representation_run_key", "representation_dimension", "d_repr from", compute=False,
            )
        forms.add_device(ctx, inputs)
        forms.add_run_key(ctx, inputs, "scaling_law")
        _validate(ctx, view, props)
        return types.Property(inputs, view=types.View(label="Fit scaling law"))

    def execute(self, ctx):
        from fiftyone_intrinsic.scaling_runs import fit_scaling_law

        view = ctx.target_view()
        kwargs = library_kwargs(ctx.dataset, ctx.params)
        report = yield from run_with_progress(
            ctx,
            lambda progress: fit_scaling_law(
                view, device=forms.device_param(ctx), overwrite=bool(ctx.params.get("overwrite", False)),
                progress=progress, **kwargs,
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
        :func:`fiftyone_intrinsic.scaling_runs.fit_scaling_law`); ``test_tag`` holds out
        the dataset's samples with that tag, else ``n_test`` images are carved from the
        collection. A model factory can be given from Python only, to the library function.

        Returns the stored run results, or the queued operation when ``delegate=True``.
        """
        from .measure import _call

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
        return _call(self.uri, sample_collection, run_key, params, delegate)


def library_kwargs(dataset, params) -> dict:
    """Keyword arguments of :func:`fit_scaling_law` that a form (or SDK call) describes."""
    mode = params.get("mode", "curve")
    channels = params.get("channels", "auto")
    kwargs = dict(
        mode=mode, run_key=params.get("run_key", "scaling_law"), size=params.get("size") or None,
        channels=None if channels in (None, "auto") else int(channels),
        dimension_run_key=_run_key(params, "dimension_run_key"),
    )
    if mode == "before_labeling":
        return dict(kwargs, label_field=None)
    sizes = parse_sizes(params.get("sizes"))
    targets = model_form.numbers(params.get("target_loss") or "", "target_loss")
    tag = params.get("test_tag") if params.get("held_out", "carve") == "tag" else None
    return dict(
        kwargs, label_field=params.get("label_field"), sizes=sizes,
        test_samples=dataset.match_tags(tag) if tag else None,
        n_test=params.get("n_test") or None, n_seeds=int(params.get("n_seeds", 3)),
        balance=params.get("balance", "equal"), epochs=int(params.get("epochs", 30)),
        min_steps=int(params.get("min_steps", 100)), batch_size=int(params.get("batch_size", 32)),
        learning_rate=float(params.get("learning_rate", 2e-3)),
        sharpness_run_key=_run_key(params, "sharpness_run_key"),
        representation_run_key=_run_key(params, "representation_run_key"),
        target_loss=list(targets) or None,
    )


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
    from fiftyone_intrinsic.learning_curve import LearningCurveSettings, resolve_sizes
    from fiftyone_intrinsic.scaling_runs import check_sources, prepare_split

    params = ctx.params
    try:
        kwargs = library_kwargs(ctx.dataset, params)
    except ValueError as error:
        bad = "target_loss" if "target_loss" in str(error) else "sizes"
        forms.invalidate(props.get(bad, props["size"]), model_form.message(error))
        return
    try:
        check_sources(ctx.dataset, kwargs["dimension_run_key"], kwargs.get("sharpness_run_key"),
                      kwargs.get("representation_run_key"), kwargs["size"], kwargs["channels"])
    except ValueError as error:
        name = "sharpness_run_key" if "(K_F)" in str(error) else "dimension_run_key"
        forms.invalidate(props[name], str(error))
    if kwargs["mode"] == "before_labeling" or props["label_field"].invalid or not kwargs["label_field"]:
        return
    try:
        settings = LearningCurveSettings(
            sizes=kwargs["sizes"], n_seeds=kwargs["n_seeds"], n_test=kwargs["n_test"],
            balance=kwargs["balance"], epochs=kwargs["epochs"], min_steps=kwargs["min_steps"],
            batch_size=kwargs["batch_size"], learning_rate=kwargs["learning_rate"],
        )
    except ValueError as error:
        forms.invalidate(props["sizes"], model_form.message(error))
        return
    try:
        _, labels, train, _ = prepare_split(view, kwargs["label_field"], kwargs["test_samples"], settings)
    except ValueError as error:
        forms.invalidate(props.get("test_tag", props["label_field"]), str(error))
        return
    try:
        resolve_sizes(labels[train], settings, pilot=kwargs["mode"] == "pilot")
    except ValueError as error:
        forms.invalidate(props["sizes"], str(error))
