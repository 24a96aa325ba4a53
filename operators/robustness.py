"""Operator: adversarial robustness of a model file with torchattacks, checked against K_F."""

import fiftyone.operators as foo
from fiftyone.operators import types

from fiftyone_intrinsic.core.attacks import ATTACKS
from fiftyone_intrinsic.core.settings import RobustnessSettings, setting_spec
from fiftyone_intrinsic.datasets import runs

from . import data_checks, forms, model_form
from .progress import run_with_progress
from .sdk import call_operator


def _budgets_text(name):
    """A budget list's default as the form shows it: "0,1,2,4,8"."""
    return ",".join(f"{v:g}" for v in setting_spec(RobustnessSettings, name).default)


#: Below this many images a robust accuracy moves in steps of more than 10%: the form then
#: suggests the whole dataset (e.g. after a sharp pair's two samples were opened).
MIN_SAMPLES = 10


class EvaluateAdversarialRobustness(foo.Operator):
    """Robust accuracy over an ε sweep, Δloss, smallest flipping budgets, R̂ vs 1/K_F."""

    @property
    def config(self):
        return forms.long_running_config(
            "evaluate_adversarial_robustness", "Adversarial robustness: evaluate",
            "Attack a model with FGSM, PGD and PGD-L2; compare with K_F",
        )

    def resolve_input(self, ctx):
        inputs = types.Object()
        view, too_small = forms.add_target_view(ctx, inputs, MIN_SAMPLES)
        if too_small:  # the form suggests the dataset: check the labels there
            view = ctx.dataset
        label_prop = forms.add_label_field(ctx, inputs, view)
        path_prop = model_form.add_model_inputs(ctx, inputs)
        model_form.add_input_preprocessing(ctx, inputs)
        classes = inputs.str(
            "class_names", label="Class of each model output (comma-separated, in output order)",
            required=False, description="Empty: the sorted labels of the label field",
        )
        for attack in ATTACKS.values():
            inputs.bool(f"attack_{attack.name}", default=True, label=attack.label)
        chosen_norms = {a.norm for a in ATTACKS.values() if ctx.params.get(f"attack_{a.name}", True)}
        eps_prop = inputs.str("epsilons", label="L-inf budgets (1/255 units)", default=_budgets_text("epsilons"),
                              description=setting_spec(RobustnessSettings, "epsilons").description)
        if "l2" in chosen_norms:
            inputs.str("epsilons_l2", label="L2 budgets", default=_budgets_text("epsilons_l2"),
                       description=setting_spec(RobustnessSettings, "epsilons_l2").description)
        forms.setting_input(inputs, RobustnessSettings, "pgd_steps", "PGD steps")
        forms.setting_input(inputs, RobustnessSettings, "minimal", "Smallest flipping budget per sample (bisection)")
        sharp_runs = runs.list_intrinsic_runs(ctx.dataset, method="label_sharpness")
        choices = types.DropdownView()
        choices.add_choice("none", label="No comparison")
        for key in sharp_runs:
            choices.add_choice(key, label=f"Label-sharpness run {key}")
        sharp_prop = inputs.enum("sharpness_run_key", ["none"] + sharp_runs, default="none",
                                 label="Compare with K_F of", view=choices)
        forms.add_device(ctx, inputs)
        forms.add_run_key(ctx, inputs, "adversarial_robustness")
        self._validate(ctx, view, label_prop, path_prop, classes, eps_prop, sharp_prop)
        return types.Property(inputs, view=types.View(label="Adversarial robustness: evaluate"))

    def _validate(self, ctx, view, label_prop, path_prop, classes_prop, eps_prop, sharp_prop):
        params = ctx.params
        model_form.check_model_file(ctx, path_prop)
        try:
            settings(params)
        except ValueError as error:
            forms.invalidate(eps_prop, model_form.message(error))
        field = params.get("label_field")
        names = class_names(params)
        if field and names and not label_prop.invalid:
            labels = data_checks.cached(view, f"labels:{field}", lambda: view.distinct(f"{field}.label"))
            unknown = sorted(set(labels) - set(names))
            if unknown:
                forms.invalidate(classes_prop, f"Labels {unknown[:10]} are not in the class map {names}.")
        key = params.get("sharpness_run_key", "none")
        if key != "none":
            from fiftyone_intrinsic.datasets.robustness import sharpness_scale

            try:
                sharpness_scale(ctx.dataset, key, model_form.model_input(params))
            except ValueError as error:
                forms.invalidate(sharp_prop, str(error))

    def execute(self, ctx):
        from fiftyone_intrinsic import evaluate_robustness, load_model

        params = ctx.params
        view = ctx.target_view()
        model = load_model(model_form.model_source(params))
        config = settings(params)
        key = params.get("sharpness_run_key", "none")
        report = yield from run_with_progress(
            ctx,
            lambda progress: evaluate_robustness(
                view, model, label_field=params["label_field"], class_names=class_names(params),
                model_input=model_form.model_input(params), sharpness_run_key=None if key == "none" else key,
                run_key=params.get("run_key", "adversarial_robustness"), device=forms.device_param(ctx),
                overwrite=bool(params.get("overwrite", False)), progress=progress, **config,
            ),
        )
        if not ctx.delegated:
            attacks = report.attacks
            delta = "" if attacks.delta_loss is None else f", FGSM(2/255) Δloss {attacks.delta_loss:.3f}"
            yield ctx.ops.reload_dataset()
            yield ctx.ops.notify(f"Clean accuracy {attacks.clean_accuracy:.3f}{delta}", variant="success")

    def __call__(
        self, sample_collection, model_path, label_field="ground_truth", model_kind="torchvision",
        architecture="resnet18", num_classes=None, input_size=224, input_channels=3,
        mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), class_names=None,
        attacks=None, epsilons=None, epsilons_l2=None, pgd_steps=10, minimal=True, sharpness_run_key=None, run_key="adversarial_robustness",
        device="auto", overwrite=False, delegate=False,
    ):
        """Attack the model in ``model_path`` on ``sample_collection`` (see
        :func:`fiftyone_intrinsic.evaluate_robustness`); returns the stored results, or
        the queued operation when ``delegate=True``. ``attacks``, ``epsilons`` and
        ``epsilons_l2`` default to :class:`RobustnessSettings`' defaults."""
        attacks = tuple(ATTACKS) if attacks is None else attacks
        params = dict(
            model_form.sdk_model_params(model_path, model_kind, architecture, num_classes, input_size, input_channels, mean, std),
            label_field=label_field, class_names=",".join(class_names) if class_names else None,
            epsilons=_budgets_text("epsilons") if epsilons is None else ",".join(map(str, epsilons)),
            epsilons_l2=_budgets_text("epsilons_l2") if epsilons_l2 is None else ",".join(map(str, epsilons_l2)),
            pgd_steps=pgd_steps, minimal=minimal, sharpness_run_key=sharpness_run_key or "none",
            run_key=run_key, device=device, overwrite=overwrite,
            **{f"attack_{name}": name in attacks for name in ATTACKS},
        )
        return call_operator(self.uri, sample_collection, run_key, params, delegate)


def class_names(params):
    text = params.get("class_names")
    return [name.strip() for name in str(text).split(",") if name.strip()] if text else None


def settings(params) -> dict:
    """Keyword arguments of :func:`evaluate_robustness` from the form, validated."""
    values = dict(
        attacks=tuple(name for name in ATTACKS if params.get(f"attack_{name}", True)),
        epsilons=model_form.numbers(params.get("epsilons") or _budgets_text("epsilons"), "epsilons"),
        epsilons_l2=model_form.numbers(params.get("epsilons_l2") or _budgets_text("epsilons_l2"), "epsilons_l2"),
        pgd_steps=int(forms.param(params, RobustnessSettings, "pgd_steps")),
        minimal=bool(forms.param(params, RobustnessSettings, "minimal")),
    )
    RobustnessSettings(**values)  # raises a ValueError that names the field
    return values
