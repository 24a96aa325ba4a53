"""The "Intrinsic properties" panel: the audit of the current dataset at a glance, its
comparisons, and one click to the images that matter.

State (round-tripped to the browser on every event) holds only the ids of the sharpest
pairs; plots go to panel data.
"""

import fiftyone.operators as foo
from fiftyone.operators import types

from fiftyone_intrinsic.datasets.describe import describe_features
from fiftyone_intrinsic.datasets.schema import DIMENSION, SHARPNESS

from . import figures

PLUGIN = "@fiftyone-intrinsic/intrinsic"
PANEL_NAME = "intrinsic_properties"
ACTIONS = (
    ("compute_intrinsic_dimension", "Compute d_data"),
    ("compute_label_sharpness", "Compute K_F"),
    ("evaluate_adversarial_robustness", "Evaluate robustness"),
    ("compute_representation_dimension", "Compute d_repr"),
    ("fit_scaling_law", "Fit scaling law"),
)


class IntrinsicPropertiesPanel(foo.Panel):
    """d_data, K_F and robustness of the current dataset, with comparisons."""

    @property
    def config(self):
        return foo.PanelConfig(
            name=PANEL_NAME,
            label="Intrinsic properties",
            surfaces="grid",
            icon="insights",
            help_markdown="Intrinsic dimension, label sharpness and robustness (Konz & Mazurowski, ICLR 2024).",
        )

    def on_load(self, ctx):
        self._refresh(ctx)

    def on_change_dataset(self, ctx):
        self._refresh(ctx)

    def on_change_view(self, ctx):
        self._refresh(ctx)

    def refresh(self, ctx):
        self._refresh(ctx)

    def show_pair(self, ctx):
        """Show the two samples of the clicked sharp pair in the grid."""
        index = int(ctx.params.get("index", 0))
        pairs = ctx.panel.state.pairs or []
        if 0 <= index < len(pairs):
            ctx.ops.set_view(view=ctx.dataset.select(pairs[index], ordered=True))

    def show_duplicates(self, ctx):
        """Show the conflicting duplicates (identical images, different labels)."""
        tag = ctx.panel.state.duplicate_tag
        if tag:
            ctx.ops.set_view(view=ctx.dataset.match_tags(tag))

    def _refresh(self, ctx):
        from fiftyone_intrinsic.datasets.summary import summarize_dataset

        summary = summarize_dataset(ctx.dataset) if ctx.dataset is not None else None
        content = _Content(summary, ctx.dataset)
        ctx.panel.state.pairs = content.pair_ids
        ctx.panel.state.duplicate_tag = content.duplicate_tag
        ctx.panel.state.summary = content.text
        for name, (traces, layout) in content.plots.items():
            ctx.panel.data.set(name, traces)
            ctx.panel.state.set(f"layout_{name}", layout)

    def render(self, ctx):
        panel = types.Object()
        state = ctx.panel.state
        text = state.summary or {}
        panel.md(text.get("header", "### Intrinsic properties"), name="header")
        actions = panel.h_stack("actions", align_x="left", gap=1)
        for name, label in ACTIONS:
            actions.btn(f"open_{name}", label=label, on_click=f"{PLUGIN}/{name}", prompt=True, variant="contained")
        actions.btn("refresh", label="Refresh", on_click=self.refresh, variant="outlined")
        for section in ("dimension", "sharpness", "robustness", "scaling", "paper", "database", "robust_vs_kf"):
            if text.get(section):
                panel.md(text[section], name=f"text_{section}")
            for plot in _PLOTS_OF.get(section, ()):
                layout = state.get(f"layout_{plot}")
                if layout:
                    panel.plot(plot, layout=layout, config={"displaylogo": False})
            if section == "sharpness":
                if state.duplicate_tag:
                    panel.btn("show_duplicates", label="Show conflicting duplicates", on_click=self.show_duplicates)
                for index, label in enumerate(text.get("pair_labels", [])):
                    panel.btn(f"pair_{index}", label=label, on_click=self.show_pair, params={"index": index},
                              variant="outlined")
        return types.Property(panel, view=types.GridView(orientation="vertical", gap=2, px=2, py=2))


_PLOTS_OF = {
    "dimension": ("id_vs_k", "local_dimension"),
    "robustness": ("robust_linf", "robust_l2"),
    "scaling": ("scaling",),
    "paper": ("paper",),
    "database": ("database",),
    "robust_vs_kf": ("robust_vs_kf",),
}


class _Content:
    """What the panel shows for one dataset summary: texts, plots and pair ids."""

    def __init__(self, summary, dataset):
        self._dataset = dataset
        self.text, self.plots, self.pair_ids, self.duplicate_tag = {}, {}, [], None
        if summary is None:
            self.text["header"] = "### Intrinsic properties\nOpen a dataset to audit it."
            return
        self.text["header"] = f"### Intrinsic properties of `{summary.name}`\n{summary.n_samples} samples."
        if summary.incomplete:
            self.text["header"] += (
                f"\n\n**Incomplete runs:** {', '.join(f'`{k}`' for k in summary.incomplete)}: being "
                "computed, or stopped before they finished. Their values are not shown; remove "
                "one with **Delete intrinsic run** (from the operator browser) once its process is gone."
            )
        if not summary.runs:
            self.text["header"] += (
                "\n\nNo audit runs yet. Use **Compute d_data** and **Compute K_F** below (or "
                f"`fiftyone-intrinsic audit {summary.name}` in a terminal); the results appear here."
            )
            return
        self._dimension(summary)
        self._sharpness(summary)
        self._robustness(summary)
        self._scaling(summary)
        self._comparisons(summary)

    def _dimension(self, summary):
        run = summary.dimension
        if run is None:
            self.text["dimension"] = "**Intrinsic dimension**\n\nNot computed yet: use **Compute d_data**."
            return
        r = run.results
        ci = f" (95% CI {r.ci_low:.2f} – {r.ci_high:.2f})" if r.ci_low is not None else ""
        near = f", {r.n_near_duplicates} near-duplicates merged" if r.n_near_duplicates else ""
        self.text["dimension"] = (
            f"**Intrinsic dimension d_data = {r.dimension:.2f}{ci}**\n\n"
            f"Estimator **{r.estimator}**, k = {r.k}, run `{run.key}`; "
            f"{r.n_duplicates} exact duplicates removed{near}. Features: {describe_features(run.features)}."
        )
        if r.by_k:
            self.plots["id_vs_k"] = figures.id_vs_k(r.by_k, r.estimator, r.dimension, r.k)
        local = _local_values(self._dataset, run)
        if local:
            self.plots["local_dimension"] = figures.local_histogram(local, r.estimator)

    def _sharpness(self, summary):
        run = summary.sharpness
        if run is None:
            self.text["sharpness"] = "**Label sharpness**\n\nNot computed yet: use **Compute K_F**."
            return
        r = run.results
        k_f = "undefined" if r.k_f is None else f"{r.k_f:.4g}"
        duplicates = len(r.conflicting_duplicates or [])
        self.text["sharpness"] = (
            f"**Label sharpness K_F = {k_f}**\n\n"
            f"Run `{run.key}` on `{run.config.get('label_field')}`; features: {describe_features(run.features)}. "
            f"**{duplicates}** conflicting duplicates (identical images, different labels). "
            "Sharpest pairs (click to show both images):"
        )
        self.pair_ids = [[p["id_i"], p["id_j"]] for p in r.pairs or []]
        self.text["pair_labels"] = [
            f"{rank}. d = {p['distance']:.4g}: {_short(p['filepath_i'])} [{p['label_i']}] ↔ "
            f"{_short(p['filepath_j'])} [{p['label_j']}]"
            for rank, p in enumerate(r.pairs or [], start=1)
        ]
        if duplicates:
            self.duplicate_tag = SHARPNESS.names(run.key).tag("duplicate")

    def _robustness(self, summary):
        run = summary.robustness
        if run is None:
            self.text["robustness"] = "**Adversarial robustness**\n\nNot evaluated yet: use **Evaluate robustness** with your model."
            return
        r = run.results
        lines = [f"**Adversarial robustness** (run `{run.key}`)",
                 f"Clean accuracy **{r.clean_accuracy:.3f}** on {r.n_samples} samples."]
        if r.delta_loss is not None:
            lines.append(f"FGSM at ε = 2/255: Δloss = **{r.delta_loss:.3f}** nats (the paper's metric).")
        comparison = r.sharpness
        if comparison:
            lines.append(
                f"R̂ = {_num(comparison['r_hat_mean'])} (mean), {_num(comparison['r_hat_median'])} (median) "
                f"against 1/K_F = {_num(comparison['inverse_k_f'])}, in the units of run `{comparison['run_key']}`."
            )
            cert = comparison.get("certificate")
            if cert:
                if cert["holds"] is None:
                    verdict = "not applicable: the model misclassifies an image of the sharpest pair"
                else:
                    verdict = ("holds" if cert["holds"] else "FAILS") + f", margin {cert['margin']:.4g}"
                lines.append(f"Pair certificate (a flip within ‖x_j − x_k‖/2 = {cert['distance'] / 2:.4g}): {verdict}.")
        self.text["robustness"] = "\n\n".join(lines)
        for norm, name in (("linf", "robust_linf"), ("l2", "robust_l2")):
            if any(c["norm"] == norm for c in r.curves.values()):
                self.plots[name] = figures.robustness_curves(r.curves, r.clean_accuracy, norm)

    def _scaling(self, summary):
        run = summary.scaling
        if run is None:
            return
        r = run.results
        if r.mode == "before_labeling":
            p = r.prediction or {}
            self.text["scaling"] = (
                f"**Scaling law (before labeling, run `{run.key}`)**\n\n"
                f"From d_data = {_num(p.get('d_data'))} alone: predicted exponent {_num(p.get('exponent'))}."
            )
            return
        fit, law = r.fit or {}, r.law or {}
        lines = [
            f"**Scaling law** (run `{run.key}`, {r.mode})",
            "",
            f"Fitted exponent **{_num(fit.get('exponent'))}** (95% CI {_num(fit.get('exponent_low'))} to "
            f"{_num(fit.get('exponent_high'))}) against −1/d_data = {_num(law.get('predicted_exponent'))}.",
        ]
        plan = (r.plans or {}).get(r.primary_plan or "fitted")
        if plan and plan.get("targets"):
            target = plan["targets"][0]
            lines.append(
                f"Planner: test loss {target['target_loss']:.3g} needs N ≈ {_num(target['n_needed'])} "
                f"labelled images (interval {_num(target['n_low'])} – {_num(target['n_high'])})."
            )
        self.text["scaling"] = "\n\n".join(lines)
        if r.sizes:
            self.plots["scaling"] = figures.scaling_law(r)

    def _comparisons(self, summary):
        from fiftyone_intrinsic.core.reference import PAPER_DATASETS, paper_comparability
        from fiftyone_intrinsic.datasets.summary import comparable_summaries, loglog_slope

        sharp, dim = summary.sharpness, summary.dimension
        if sharp and dim and sharp.results.k_f:
            comparable, reason = paper_comparability(sharp.features)
            if comparable:
                self.text["paper"] = "**Against the paper's reference datasets**\n\n" + reason + "."
                self.plots["paper"] = figures.paper_scatter(
                    PAPER_DATASETS, summary.name, dim.results.dimension, sharp.results.k_f
                )
            else:
                self.text["paper"] = (
                    "**Against the paper's reference datasets**\n\nNot compared: K_F was " + reason
                    + ". Rerun **Compute K_F** with size 224, range [0, 255] and per-image max normalization."
                )
        others = comparable_summaries(summary)
        rows = [_row(s, current=False) for s in others] + [_row(summary, current=True)]
        rows = [row for row in rows if row]
        if len(rows) > 1:
            self.text["database"] = f"**Datasets of this database with comparable runs** ({len(rows)})"
            self.plots["database"] = figures.datasets_scatter(rows)
        robust_rows = [row for row in rows if row.get("r_hat")]
        if len(robust_rows) >= 2:
            slope = loglog_slope([row["k_f"] for row in robust_rows], [row["r_hat"] for row in robust_rows])
            self.text["robust_vs_kf"] = (
                f"**Robustness vs K_F across datasets**\n\nFitted log–log slope {slope:.2f}; the bound "
                "log R̂ ≳ −log K_F + log b has slope −1."
            )
            self.plots["robust_vs_kf"] = figures.robustness_vs_sharpness(robust_rows, slope)


def _row(summary, current):
    if not (summary.sharpness and summary.dimension and summary.sharpness.results.k_f):
        return None
    robustness = summary.robustness.results.sharpness if summary.robustness else None
    return {
        "name": summary.name, "current": current, "d_data": summary.dimension.results.dimension,
        "k_f": summary.sharpness.results.k_f,
        "r_hat": robustness.get("r_hat_mean") if robustness else None,
    }


def _local_values(dataset, run):
    field = DIMENSION.names(run.key).field("local_dimension")
    return dataset.values(field) if dataset.has_sample_field(field) else []


def _short(path):
    return str(path).rsplit("/", 1)[-1]


def _num(value):
    return "n/a" if value is None else f"{value:.4g}"


class OpenIntrinsicPanel(foo.Operator):
    """Open the Intrinsic properties panel beside the grid."""

    @property
    def config(self):
        return foo.OperatorConfig(name="open_intrinsic_panel", label="Open Intrinsic properties panel")

    def resolve_placement(self, ctx):
        return types.Placement(
            types.Places.SAMPLES_GRID_SECONDARY_ACTIONS,
            types.Button(label="Intrinsic properties", icon="insights", prompt=False),
        )

    def execute(self, ctx):
        ctx.ops.open_panel(PANEL_NAME, layout="horizontal", is_active=True)
        return {"opened": PANEL_NAME}
