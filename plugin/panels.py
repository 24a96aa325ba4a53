"""The "Intrinsic properties" panel: the audit of the current dataset at a glance, its
comparisons, and one click to the images that matter.

State (round-tripped to the browser on every event) holds only the ids of the sharpest
pairs and small flags; plots and the pairs' thumbnails go to panel data, the thumbnails
only for the pairs shown and only when those change.
"""

import hashlib
import json
import math

import fiftyone.operators as foo
from fiftyone.operators import types

from fiftyone_intrinsic.core.estimators import collapsed
from fiftyone_intrinsic.datasets.describe import describe_features
from fiftyone_intrinsic.datasets.schema import DIMENSION, SHARPNESS

from . import figures
from .thumbnails import THUMBNAIL_SIZE, thumbnail_url

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
        for slot in SELECTABLE:  # a newly opened panel shows the newest runs
            ctx.panel.state.set(f"run_{slot}", None)
        ctx.panel.state.pairs_shown = PAIRS_SHOWN
        ctx.panel.state.thumbnails = None  # a new panel has no panel data yet
        ctx.panel.state.plots = None
        self._refresh(ctx)

    def on_change_dataset(self, ctx):
        self._refresh(ctx)

    def on_change_view(self, ctx):
        self._refresh(ctx)

    def refresh(self, ctx):
        self._refresh(ctx)

    def show_pair(self, ctx):
        """Show the two samples of the clicked sharp pair in the grid; a click on one of
        its images (``side`` 0 or 1) also opens that image in the sample modal, where the
        arrows go to the other."""
        index = int(ctx.params.get("index", 0))
        pairs = ctx.panel.state.pairs or []
        if 0 <= index < len(pairs):
            ctx.ops.set_view(view=ctx.dataset.select(pairs[index], ordered=True))
            side = ctx.params.get("side")
            if side in (0, 1):
                ctx.ops.open_sample(id=pairs[index][side])

    def more_pairs(self, ctx):
        """Show thumbnails of the next few sharp pairs."""
        ctx.panel.state.pairs_shown = (ctx.panel.state.pairs_shown or PAIRS_SHOWN) + PAIRS_SHOWN
        self._refresh(ctx)

    def mark_pair_reviewed(self, ctx):
        """Tag both samples of the clicked pair ``<run key>:reviewed``."""
        self._review(ctx, mark=True)

    def unmark_pair_reviewed(self, ctx):
        """Remove the reviewed tag from both samples of the clicked pair."""
        self._review(ctx, mark=False)

    def _review(self, ctx, mark):
        from fiftyone_intrinsic.datasets.review import mark_reviewed, unmark_reviewed

        index = int(ctx.params.get("index", -1))
        pairs, key = ctx.panel.state.pairs or [], ctx.panel.state.run_sharpness
        if not key or not 0 <= index < len(pairs):
            return
        try:
            (mark_reviewed if mark else unmark_reviewed)(ctx.dataset, key, pairs[index])
        except ValueError as error:  # e.g. the tag is somebody's own
            ctx.ops.notify(str(error), variant="error")
            return
        ctx.ops.reload_samples()  # the grid and the sidebar's tag counts
        self._refresh(ctx)

    def review_next(self, ctx):
        """Show the next samples to review: closest to an image of another label, not yet
        marked reviewed."""
        from fiftyone_intrinsic.datasets.review import review_next_view

        key = ctx.panel.state.run_sharpness
        if key and ctx.dataset.has_run(key):
            ctx.ops.set_view(view=review_next_view(ctx.dataset, key, REVIEW_BATCH))

    def show_pairs_view(self, ctx):
        """Open the run's saved view of the sharpest pairs."""
        key = ctx.panel.state.run_sharpness
        name = SHARPNESS.names(key).view("pairs") if key else None
        if name and ctx.dataset.has_saved_view(name):
            ctx.ops.set_view(name=name)

    def show_duplicates(self, ctx):
        """Show the conflicting duplicates (identical images, different labels)."""
        tag = ctx.panel.state.duplicate_tag
        if tag:
            ctx.ops.set_view(view=ctx.dataset.match_tags(tag))

    def show_hub(self, ctx):
        """Show a hub sample first, then every sample it forms a sharp pair with."""
        hub = ctx.params.get("id")
        partners = [i for pair in ctx.panel.state.pairs or [] if hub in pair for i in pair if i != hub]
        if hub:
            ctx.ops.set_view(view=ctx.dataset.select(list(dict.fromkeys([hub] + partners)), ordered=True))

    def show_duplicate_groups(self, ctx):
        """Show the exact-duplicate groups (``crossing``: only those across splits), each
        group's samples next to each other."""
        from fiftyone_intrinsic.datasets.summary import duplicate_groups, summarize_run

        key = ctx.panel.state.duplicates_run
        if not key or not ctx.dataset.has_run(key):
            return
        groups = duplicate_groups(ctx.dataset, summarize_run(ctx.dataset, key), _split_field(ctx))
        ids = groups.crossing_ids if ctx.params.get("crossing") else groups.ids
        if ids:
            ctx.ops.set_view(view=ctx.dataset.select(ids, ordered=True))

    def choose_split_source(self, ctx):
        """The "Splits from" selector changed: count the groups across those splits."""
        value = ctx.params.get("value")
        if value:
            ctx.panel.state.split_source = value
        self._refresh(ctx)

    def choose_dimension_run(self, ctx):
        """The d_data run selector changed: show that run and recompute the comparisons."""
        self._choose(ctx, "dimension")

    def choose_sharpness_run(self, ctx):
        """The K_F run selector changed: show that run and recompute the comparisons."""
        self._choose(ctx, "sharpness")

    def choose_robustness_run(self, ctx):
        """The robustness run selector changed: show that run."""
        self._choose(ctx, "robustness")

    def choose_scaling_run(self, ctx):
        """The scaling-law run selector changed: show that run."""
        self._choose(ctx, "scaling")

    def _choose(self, ctx, slot):
        value = ctx.params.get("value")
        if value:
            ctx.panel.state.set(f"run_{slot}", value)
        self._refresh(ctx)

    def _refresh(self, ctx):
        """Summarise the dataset's runs (the chosen ones, else the newest) into the panel.

        Only what differs from the state the event carried is patched. The App sends
        events whose state is older than what it now shows (it fires several view events
        on a load or a resize, and they run concurrently with the user's choices); one that
        finishes after a choice would otherwise write the previous run back over it.
        """
        from fiftyone_intrinsic.datasets.summary import runs_of, summarize_dataset

        if ctx.dataset is not None:
            ctx.dataset.reload()  # runs stored by other processes (the CLI, delegated operators)
        state = ctx.panel.state
        chosen = {slot: state.get(f"run_{slot}") for slot in SELECTABLE}
        summary = summarize_dataset(ctx.dataset, chosen) if ctx.dataset is not None else None
        split_field = _split_field(ctx)
        content = _Content(summary, ctx.dataset, split_field)
        choices = {}
        for slot in SELECTABLE:
            current = getattr(summary, slot) if summary else None
            _patch(state, f"run_{slot}", current.key if current else None)
            choices[slot] = [[r.key, r.label()] for r in runs_of(summary, slot)] if summary else []
        _patch(state, "run_choices", choices)
        _patch(state, "pairs", content.pair_ids)
        _patch(state, "reviewed", content.reviewed)
        self._thumbnails(ctx, content)
        _patch(state, "duplicate_tag", content.duplicate_tag)
        _patch(state, "duplicates_run", content.duplicates_run)
        _patch(state, "split_choices", content.split_choices)
        _patch(state, "split_source", split_field or TAG_SPLITS)
        _patch(state, "summary", content.text)
        self._plots(ctx, content)

    def _plots(self, ctx, content):
        """The plots' traces to panel data and their layouts to state, when they changed."""
        signature = hashlib.sha1(json.dumps(content.plots, sort_keys=True, default=str).encode()).hexdigest()
        if ctx.panel.state.plots == signature:
            return
        for name, (traces, layout) in content.plots.items():
            ctx.panel.data.set(name, traces)
            ctx.panel.state.set(f"layout_{name}", layout)
        ctx.panel.state.plots = signature

    def _thumbnails(self, ctx, content):
        """Thumbnails of the pairs shown, to panel data, when the pairs shown changed."""
        shown = content.pair_ids[: ctx.panel.state.pairs_shown or PAIRS_SHOWN]
        signature = "|".join(",".join(pair) for pair in shown)
        if not shown or ctx.panel.state.thumbnails == signature:
            return
        ids = list(dict.fromkeys(i for pair in shown for i in pair))
        paths = dict(zip(*ctx.dataset.select(ids).values(["id", "filepath"])))  # where the files are now
        for index, pair in enumerate(shown):
            stored = content.pair_paths[index]
            ctx.panel.data.set(f"pair_row_{index}", {
                f"image_{index}_{side}": thumbnail_url(paths.get(sample, path))
                for side, sample, path in zip("ab", pair, stored)
            })
        ctx.panel.state.thumbnails = signature

    def _review_queue(self, panel, state, text):
        """The sharpest pairs side by side, each with its labels, distance and buttons, then
        the controls for more."""
        labels, reviewed = text.get("pair_labels", []), state.reviewed or []
        shown = min(len(labels), state.pairs_shown or PAIRS_SHOWN)
        for index in range(shown):
            row = panel.h_stack(f"pair_row_{index}", align_x="left", align_y="center", gap=2)
            for side, (name, label) in zip("ab", text["pair_sides"][index]):
                row.img(f"image_{index}_{side}", on_click=self.show_pair, params={"index": index, "side": "ab".index(side)},
                        height=f"{THUMBNAIL_SIZE}px", width=f"{THUMBNAIL_SIZE}px", alt_text=f"{name} (label {label})")
            about = row.v_stack(f"pair_about_{index}", align_x="left", gap=1)
            about.md(labels[index], name=f"pair_caption_{index}")
            buttons = about.h_stack(f"pair_buttons_{index}", align_x="left", gap=1)
            buttons.btn(f"pair_{index}", label="Show both in the grid", on_click=self.show_pair,
                        params={"index": index}, variant="outlined")
            done = index < len(reviewed) and reviewed[index]
            buttons.btn(f"review_{index}", label="Reviewed ✓ (undo)" if done else "Mark reviewed",
                        on_click=self.unmark_pair_reviewed if done else self.mark_pair_reviewed,
                        params={"index": index}, variant="outlined" if done else "contained")
        actions = panel.h_stack("review_actions", align_x="left", gap=1)
        if shown < len(labels):
            more = min(PAIRS_SHOWN, len(labels) - shown)
            actions.btn("more_pairs", label=f"Show {more} more pair{'s' if more > 1 else ''}",
                        on_click=self.more_pairs, variant="outlined")
        actions.btn("review_next", label=f"Review next {REVIEW_BATCH}", on_click=self.review_next,
                    variant="contained")
        actions.btn("show_pairs_view", label="Open the saved pairs view", on_click=self.show_pairs_view,
                    variant="outlined")

    def render(self, ctx):
        panel = types.Object()
        state = ctx.panel.state
        text = state.summary or {}
        panel.md(text.get("header", "### Intrinsic properties"), name="header")
        actions = panel.h_stack("actions", align_x="left", gap=1)
        for name, label in ACTIONS:
            actions.btn(f"open_{name}", label=label, on_click=f"{PLUGIN}/{name}", prompt=True, variant="contained")
        actions.btn("refresh", label="Refresh", on_click=self.refresh, variant="outlined")
        choices = state.run_choices or {}
        for section in ("dimension", "sharpness", "robustness", "scaling", "paper", "database", "robust_vs_kf",
                        "dloss_vs_kf", "exponent_vs_d"):
            if len(choices.get(section) or []) > 1:
                selector = types.DropdownView(label=SELECTOR_LABELS[section])
                for key, label in choices[section]:
                    selector.add_choice(key, label=label)
                panel.enum(f"run_{section}", [key for key, _ in choices[section]], default=state.get(f"run_{section}"),
                           view=selector, on_change=getattr(self, f"choose_{section}_run"))
            if text.get(section):
                panel.md(text[section], name=f"text_{section}")
            for plot in _PLOTS_OF.get(section, ()):
                layout = state.get(f"layout_{plot}")
                if layout:
                    # the mode bar covered the titles at panel width; zoom and pan still work
                    panel.plot(plot, layout=layout, config=PLOT_CONFIG)
            if section == "sharpness":
                if state.duplicate_tag:
                    panel.btn("show_duplicates", label="Show conflicting duplicates", on_click=self.show_duplicates)
                if text.get("review"):
                    panel.md(text["review"], name="text_review")
                    self._review_queue(panel, state, text)
                for index, (hub, label) in enumerate(text.get("hubs", [])):
                    panel.btn(f"hub_{index}", label=label, on_click=self.show_hub, params={"id": hub},
                              variant="outlined")
                if text.get("next_sharpness"):
                    panel.md(text["next_sharpness"], name="next_sharpness")
                if text.get("duplicates"):
                    if len(state.split_choices or []) > 1:
                        splits = types.DropdownView(label="Splits from")
                        for value, label in state.split_choices:
                            splits.add_choice(value, label=label)
                        panel.enum("split_source", [value for value, _ in state.split_choices],
                                   default=state.split_source, view=splits, on_change=self.choose_split_source)
                    panel.md(text["duplicates"], name="text_duplicates")
                    buttons = panel.h_stack("duplicate_buttons", align_x="left", gap=1)
                    for crossing, label in text.get("duplicate_buttons", []):
                        buttons.btn(f"show_duplicate_groups{'_crossing' if crossing else ''}", label=label,
                                    on_click=self.show_duplicate_groups, params={"crossing": crossing},
                                    variant="outlined")
        return types.Property(panel, view=types.GridView(orientation="vertical", gap=2, px=2, py=2))


#: Sharp pairs shown with thumbnails at first, and added by each "more" click.
PAIRS_SHOWN = 5
#: Samples the "Review next" button shows.
REVIEW_BATCH = 25

#: The "Splits from" choice that means the train / val / test tags.
TAG_SPLITS = "tags"

#: Sections with a run selector (when the dataset holds more than one run of their method).
SELECTABLE = ("dimension", "sharpness", "robustness", "scaling")
SELECTOR_LABELS = {"dimension": "d_data run shown", "sharpness": "K_F run shown",
                   "robustness": "Robustness run shown", "scaling": "Scaling-law run shown"}

#: Plotly config: no mode bar (it covered the titles at panel width), no logo.
PLOT_CONFIG = {"displayModeBar": False, "displaylogo": False, "responsive": True}

#: What each number means, shown whether or not it has been computed yet.
KF_MEANING = (
    "*K_F (label sharpness) is 1 / the smallest distance between two images with different "
    "labels, in 1/(feature units) at the run's preprocessing. Higher means two differently "
    "labelled images are closer: labels change more abruptly, models need more labelled data "
    "and are easier to fool with small perturbations.*"
)
DIMENSION_MEANING = (
    "*d_data (intrinsic dimension) is the number of degrees of freedom the images really vary "
    "along, however many pixels they have. Higher means more labelled images for the same test "
    "loss.*"
)
KF_FIRST_STEP = (
    "Compute K_F, then review the sharpest pairs it lists: two images that close with different "
    "labels are most often a label error or a near-copy across classes."
)

_PLOTS_OF = {
    "dimension": ("id_vs_k", "local_dimension"),
    "robustness": ("robust_linf", "robust_l2"),
    "scaling": ("scaling",),
    "paper": ("paper",),
    "database": ("database",),
    "robust_vs_kf": ("robust_vs_kf",),
    "dloss_vs_kf": ("dloss_vs_kf",),
    "exponent_vs_d": ("exponent_vs_d",),
}


#: What each cross-dataset relation plot says.
ROBUST_VS_KF_MEANING = (
    "**Robustness vs K_F across datasets**\n\nEach point is a dataset's median R̂ (the "
    "smallest L2 perturbation that flips its model) against its K_F. The dotted line is "
    "1/(2·K_F): the two images of a dataset's sharpest pair cannot both be more robust "
    "than that when the model is right on both; the rest of the dataset can. A point "
    "below the line: that model is more fragile than label sharpness alone forces. "
    "**What the plot cannot show:** a trend or a slope. Each point has its own model, "
    "training and sample size, and the bound holds for the sharpest pair only, so no "
    "line through the points confirms or refutes the paper's relation."
)
DLOSS_VS_KF_MEANING = (
    "**Attack susceptibility vs K_F across datasets**\n\nEach point is a dataset's FGSM "
    "Δloss at ε = 2/255 (nats; the paper's metric) against the K_F its robustness run was "
    "compared with. The paper finds Δloss rising with K_F across its eleven datasets "
    "(Pearson 0.70), medical ones the most fragile. Each point here has its own model "
    "and training, so read the points, not a trend (docs/science.md §8)."
)
EXPONENT_VS_D_MEANING = (
    "**Scaling exponent vs −1/d_data across datasets**\n\nEach point is a dataset's "
    "fitted exponent of test loss on training-set size (95% interval) against "
    "−1/d_data. The law bounds the loss, so a point on or below the dashed line "
    "y = x (steeper) agrees with it; the paper finds lower d_data giving steeper curves."
)

#: The cross-dataset relation plots: section, whether a dataset's row can be drawn, the
#: section's text, and the figure of the drawable rows.
_RELATIONS = (
    ("robust_vs_kf", lambda row: row.get("r_hat") and row.get("r_hat_k_f"), ROBUST_VS_KF_MEANING,
     figures.robustness_vs_sharpness),
    ("dloss_vs_kf", lambda row: row.get("delta_loss") is not None and row.get("r_hat_k_f"), DLOSS_VS_KF_MEANING,
     figures.delta_loss_vs_sharpness),
    ("exponent_vs_d", lambda row: row.get("exponent") is not None and row.get("predicted_exponent"),
     EXPONENT_VS_D_MEANING, figures.exponent_vs_dimension),
)


class _Content:
    """What the panel shows for one dataset summary: texts, plots and pair ids."""

    def __init__(self, summary, dataset, split_field=None):
        self._dataset = dataset
        self.text, self.plots, self.pair_ids, self.duplicate_tag = {}, {}, [], None
        self.pair_paths, self.reviewed = [], []
        self.duplicates_run = None
        self._split_field = split_field
        self.split_choices = []
        if summary is None:
            self.text["header"] = "### Intrinsic properties\nOpen a dataset to audit it."
            return
        self.text["header"] = f"#### Intrinsic properties of {summary.name}\n{_count(summary.n_samples, 'sample')}."
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
                f"\n\n{KF_MEANING}\n\n**What to do first:** {KF_FIRST_STEP}\n\n{DIMENSION_MEANING}"
            )
            return
        self._dimension(summary)
        self._sharpness(summary)
        self._robustness(summary)
        self._scaling(summary)
        self._comparisons(summary)
        self._duplicates(summary)

    def _duplicates(self, summary):
        from fiftyone_intrinsic.datasets.summary import duplicate_groups, split_fields

        run = summary.dimension or summary.sharpness
        if run is None or self._dataset is None:
            return
        found = duplicate_groups(self._dataset, run, self._split_field)
        self.duplicates_run = found.source
        self.split_choices = [[TAG_SPLITS, "Tags train / val / test"]] + [
            [name, f"Field {name}"] for name in split_fields(self._dataset)]
        where = ("tagged train, val or test in different samples" if self._split_field is None
                 else f"with different values of `{self._split_field}`")
        kind = "exact duplicate groups" if run is summary.dimension else "conflicting duplicate groups"
        if not found.groups:
            self.text["duplicates"] = f"**Duplicates** (run `{run.key}`)\n\nNo {kind}."
            return
        n_samples = len(found.ids)
        lines = [
            f"**Duplicates** (run `{run.key}`)",
            f"{_count(len(found.groups), kind[:-1])} ({_count(n_samples, 'sample')}). "
            f"**{_count(len(found.crossing), 'group')}** {'crosses' if len(found.crossing) == 1 else 'cross'} "
            f"splits (the same image {where}): leakage between "
            "training and evaluation. Keep one copy per group, in one split.",
        ]
        self.text["duplicates"] = "\n\n".join(lines)
        self.text["duplicate_buttons"] = [[False, f"Show the {_count(len(found.groups), 'group')}"]]
        if found.crossing:
            self.text["duplicate_buttons"].append(
                [True, f"Show the {_count(len(found.crossing), 'group')} across splits"])

    def _dimension(self, summary):
        run = summary.dimension
        if run is None:
            self.text["dimension"] = (
                f"**Intrinsic dimension**\n\nNot computed yet: use **Compute d_data**.\n\n{DIMENSION_MEANING}"
            )
            return
        r = run.results
        ci = f" (95% CI {r.ci_low:.2f} – {r.ci_high:.2f})" if r.ci_low is not None else ""
        mle = _mle_beside(summary, run)
        collapse = ""
        if mle is not None and collapsed(r.dimension, mle.results.dimension):
            ci = ""  # a tight interval around a collapsed estimate would look trustworthy
            collapse = (
                f"**Collapsed:** TwoNN is far below MLE on the same samples (run `{mle.key}`: "
                f"{mle.results.dimension:.2f}), the mark of near-duplicate images; no interval is "
                "shown. Prefer MLE (k = 20), which is far less sensitive to them.\n\n"
            )
        near = f", {r.n_near_duplicates} near-duplicates merged" if r.n_near_duplicates else ""
        self.text["dimension"] = (
            f"**Intrinsic dimension d_data = {r.dimension:.2f}{ci}**\n\n{collapse}"
            f"The images vary along about {r.dimension:.0f} degrees of freedom"
            f"{_of_dims(run.features)}.\n\n"
            f"{_run_line(run)}\n\n"
            f"Estimator **{r.estimator}**, k = {r.k}, run `{run.key}`; "
            f"{_count(r.n_duplicates, 'exact duplicate')} removed{near}. Features: {describe_features(run.features)}."
            f"{_paper_position(run.features, r.dimension, 'd_data', 'd_data', '{:.1f}'.format)}\n\n"
            f"{_dimension_next_step(r.dimension)}"
        )
        if r.by_k:
            self.plots["id_vs_k"] = figures.id_vs_k(r.by_k, r.estimator, r.dimension, r.k)
        histogram = _local_histogram(self._dataset, run)
        if histogram:
            self.plots["local_dimension"] = figures.local_histogram(*histogram, r.estimator)

    def _sharpness(self, summary):
        run = summary.sharpness
        if run is None:
            self.text["sharpness"] = (
                f"**Label sharpness**\n\nNot computed yet: use **Compute K_F**.\n\n{KF_MEANING}\n\n"
                f"**Next:** {KF_FIRST_STEP}"
            )
            return
        r = run.results
        k_f = "undefined" if r.k_f is None else f"{r.k_f:.4g}"
        duplicates = len(r.conflicting_duplicates or [])
        meaning = ""
        if r.k_f:
            meaning = (
                f"The closest two images with different labels are {_num(1 / r.k_f)} apart "
                f"({_units(run.features)}); K_F = 1 / that distance. Higher K_F means labels change "
                "over a shorter distance: more labels needed, easier to fool."
            )
        classes = ", ".join(f"`{c}`" for c in r.classes or [])
        pairs = r.pairs or []
        self.text["sharpness"] = (
            f"**Label sharpness K_F = {k_f}**\n\n{_run_line(run)}\n\n{meaning}"
            f"{_paper_position(run.features, r.k_f, 'K_F', 'k_f', _sci)}\n\n"
            f"Run `{run.key}` on `{run.config.get('label_field')}` (classes {classes}); "
            f"features: {describe_features(run.features)}. "
            f"**{_count(duplicates, 'conflicting duplicate')}** (identical images, different labels). "
        )
        self.pair_ids = [[p["id_i"], p["id_j"]] for p in pairs]
        self.pair_paths = [[p["filepath_i"], p["filepath_j"]] for p in pairs]
        self.text["pair_sides"] = [[[_short(p["filepath_i"]), p["label_i"]], [_short(p["filepath_j"]), p["label_j"]]]
                                   for p in pairs]
        if pairs:
            self._review(run)
        self.text["pair_labels"] = [
            f"**{rank}.** {_num(p['distance'])} apart: {_short(p['filepath_i'])} (label **{p['label_i']}**) ↔ "
            f"{_short(p['filepath_j'])} (label **{p['label_j']}**)"
            for rank, p in enumerate(pairs, start=1)
        ]
        hubs = _hubs(pairs)
        self.text["hubs"] = [
            [hub, f"Hub: {name} (label {label}) is in {count} of the {len(pairs)} sharpest pairs: show it "
                  "with its partners"]
            for hub, name, label, count in hubs
        ]
        distance_field = SHARPNESS.names(run.key).field("distance")
        hub_note = (
            " Start with the hub samples: one mislabelled or unusual image makes many sharp pairs."
            if hubs else ""
        )
        self.text["next_sharpness"] = (
            "**Next:** review the sharpest pairs above: two images that close with different labels "
            f"are most often a label error or a near-copy across classes.{hub_note} For more, "
            f"**Review next {REVIEW_BATCH}** sorts the grid by `{distance_field}` (each image's distance "
            "to the closest image of another label), ascending, leaving out what is marked reviewed. "
            "Relabel or remove what is wrong, then run **Compute K_F** again."
        )
        if duplicates:
            self.duplicate_tag = SHARPNESS.names(run.key).tag("duplicate")

    def _review(self, run):
        """The review queue's heading: how many of the sharp pairs are reviewed, and how."""
        from fiftyone_intrinsic.datasets.review import reviewed_pairs, reviewed_tag

        self.reviewed = reviewed_pairs(self._dataset, run.key, self.pair_ids) if self._dataset is not None else []
        tag = reviewed_tag(run.key)
        self.text["review"] = (
            f"**Review queue: {sum(self.reviewed)} of {_count(len(self.pair_ids), 'sharp pair')} reviewed**\n\n"
            "Closest first, each pair side by side with its labels and distance. Click an image to see it "
            "full size with its pair in the grid behind (the arrows go to the other), or **Show both in "
            "the grid**. "
            f"**Mark reviewed** tags both images `{tag}`, like tagging them in the grid; tagging them "
            "there counts too. Deleting the run removes this tag from every sample."
        )

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
            lines.extend(_bound_lines(comparison))
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
        from fiftyone_intrinsic.datasets.summary import combinable, comparable_summaries

        sharp, dim = summary.sharpness, summary.dimension
        together, combined = combinable(dim, sharp) if sharp and dim else (False, "")
        if sharp and dim and sharp.results.k_f and not together:
            self.text["paper"] = f"**Against the paper's reference datasets**\n\n{combined}"
        elif sharp and dim and sharp.results.k_f:
            comparable, reason = paper_comparability(sharp.features)
            if comparable:
                self.text["paper"] = f"**Against the paper's reference datasets**\n\n{reason}. {combined}"
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
            self.text["database"] = (
                f"**Datasets of this database with comparable runs** ({len(rows)}): each point combines "
                "a d_data run and a K_F run on the same samples and preprocessing."
            )
            self.plots["database"] = figures.datasets_scatter(rows)
        for name, drawable, meaning, figure in _RELATIONS:
            drawn = [row for row in rows if drawable(row)]
            if len(drawn) >= 2:  # one dataset is not a relation
                self.text[name] = meaning
                self.plots[name] = figure(drawn)


def _split_field(ctx):
    """The field whose values are the splits for the duplicate groups (``None``: the split
    tags): the panel's choice, else a string field named ``split`` when there is one."""
    from fiftyone_intrinsic.datasets.summary import default_split_source, split_fields

    if ctx.dataset is None:
        return None
    chosen = ctx.panel.state.get("split_source")
    if chosen == TAG_SPLITS:
        return None
    if chosen in split_fields(ctx.dataset):
        return chosen
    return default_split_source(ctx.dataset)  # nothing chosen yet, or the field is gone


def _mle_beside(summary, run):
    """For a TwoNN run: the newest MLE run on the same samples and features, else ``None``."""
    from fiftyone_intrinsic.datasets.summary import runs_of

    if run.results.estimator != "twonn":
        return None
    for other in runs_of(summary, "dimension"):
        if (other.results.estimator in ("mle", "mle_mg") and other.features == run.features
                and other.view_stages == run.view_stages):
            return other
    return None


def _bound_lines(comparison) -> list:
    """R̂ against the bound 1/(2·K_F), and where the decision flips near the sharpest pair."""
    units = f"in the units of run `{comparison['run_key']}`"
    bound = comparison.get("radius_bound")
    if bound is None and comparison.get("inverse_k_f") is not None:  # runs stored by earlier versions
        bound = comparison["inverse_k_f"] / 2
    lines = [f"R̂ = {_num(comparison['r_hat_mean'])} (mean), {_num(comparison['r_hat_median'])} (median), "
             f"{units}. The sharpest pair's images cannot both be more robust than 1/(2·K_F) = {_num(bound)}."]
    ratio = comparison["r_hat_median"] / bound if bound and comparison.get("r_hat_median") is not None else None
    if ratio is not None and math.isfinite(ratio):
        side = ("above: typical images keep more room than the sharpest pair" if ratio >= 1 else
                "below: the model is more fragile than label sharpness alone forces")
        lines.append(f"Median R̂ is **{ratio:.2f}×** that bound ({side}).")
    cert = comparison.get("certificate")
    if cert:
        half = cert["distance"] / 2
        flip = cert.get("flip_radius")
        if flip is None:  # stored by earlier versions
            flips = [v for v in (cert.get("segment_flip"), cert.get("pgd_flip")) if v is not None and math.isfinite(v)]
            flip = min(flips) if flips else None
        if not cert["both_correct"]:
            lines.append("Sharpest pair: the model misclassifies one of its images, so the bound says nothing there.")
        elif flip is not None and math.isfinite(flip):
            lines.append(
                f"Sharpest pair: the decision flips {flip:.4g} from the nearer image (model input units), "
                f"{flip / half:.0%} of the half-distance {half:.4g}: that image's robust radius is at most {flip:.4g}."
            )
    return lines


def _row(summary, current):
    from fiftyone_intrinsic.datasets.summary import combinable

    if not (summary.sharpness and summary.dimension and summary.sharpness.results.k_f):
        return None
    if not combinable(summary.dimension, summary.sharpness)[0]:
        return None
    robustness = summary.robustness.results.sharpness if summary.robustness else None
    scaling = summary.scaling.results if summary.scaling else None
    fit, law = ((scaling.fit or {}), (scaling.law or {})) if scaling and scaling.mode != "before_labeling" else ({}, {})
    return {
        "name": summary.name, "current": current, "d_data": summary.dimension.results.dimension,
        "k_f": summary.sharpness.results.k_f,
        # R̂ and the K_F it was compared with (same units: that K_F run's features)
        "r_hat": robustness.get("r_hat_median") if robustness else None,
        "r_hat_k_f": robustness.get("k_f") if robustness else None,
        "delta_loss": summary.robustness.results.delta_loss if summary.robustness else None,
        # the scaling run's fitted exponent (95% interval) and its −1/d_data
        "exponent": fit.get("exponent"), "exponent_low": fit.get("exponent_low"),
        "exponent_high": fit.get("exponent_high"), "predicted_exponent": law.get("predicted_exponent"),
    }


def _local_histogram(dataset, run, bins=40):
    """``(counts, edges)`` of the run's per-sample local estimates, binned by the database
    (a FiftyOne aggregation): the browser gets ``bins`` numbers, not one per sample."""
    field = DIMENSION.names(run.key).field("local_dimension")
    if dataset is None or not dataset.has_sample_field(field):
        return None
    counts, edges, _ = dataset.exists(field).histogram_values(field, bins=bins)
    if not any(counts):
        return None
    return [int(c) for c in counts], [float(e) for e in edges]


def _run_line(run):
    """Which samples a run covered, how they were defined and when it ran."""
    samples = f"{run.n_samples:,} samples" if run.n_samples is not None else "its samples"
    return f"*Run `{run.key}`: {samples} ({run.view}), started {run.date} UTC.*"


def _count(n, noun):
    """``5,856 samples``, ``1 conflicting duplicate``."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def _units(features):
    """The distance unit of a run's features, in words."""
    features = features or {}
    if features.get("source") != "pixels":
        return f"L2 distance in {features.get('source', 'feature')} units"
    scale = "[0, 255]" if features.get("value_range") == "byte" else "[0, 1]"
    shape = "x".join(str(v) for v in features.get("image_shape") or ["?"])
    return f"L2 distance over {shape} pixels with intensities in {scale}"


def _of_dims(features):
    dims = (features or {}).get("dimension")
    return f", out of {dims:,} feature values per image" if dims else ""


def _paper_position(features, value, label, attribute, fmt):
    """Where ``value`` sits against the paper's medical and natural ranges, or why it is not
    placed (another preprocessing)."""
    from fiftyone_intrinsic.core.reference import PAPER_DATASETS, paper_comparability

    if value is None:
        return ""
    comparable, reason = paper_comparability(features or {})
    ranges = {}
    for domain in ("medical", "natural"):
        values = [getattr(r, attribute) for r in PAPER_DATASETS if r.domain == domain]
        ranges[domain] = (min(values), max(values))
    text = {d: f"{fmt(lo)} – {fmt(hi)}" for d, (lo, hi) in ranges.items()}
    if not comparable:
        return (f" Not placed against the paper's medical ({text['medical']}) and natural "
                f"({text['natural']}) {label} ranges: this run was {reason}.")
    inside = [d for d, (lo, hi) in ranges.items() if lo <= value <= hi]
    if len(inside) == 2:
        where = "inside both the medical and the natural range"
    elif inside:
        where = f"inside the paper's {inside[0]} range, outside the {({'medical', 'natural'} - set(inside)).pop()} one"
    elif value > max(hi for _, hi in ranges.values()):
        where = "above every dataset of the paper"
    elif value < min(lo for lo, _ in ranges.values()):
        where = "below every dataset of the paper"
    else:
        where = "between the paper's natural and medical ranges"
    return (f" Same preprocessing as the paper: {label} {fmt(value)} is **{where}** "
            f"(medical {text['medical']}, natural {text['natural']}).")


def _sci(value):
    """``1.35e-4``: K_F values in one readable form (``0.000135`` and ``6.1e-05`` mixed)."""
    mantissa, exponent = f"{value:.2e}".split("e")
    return f"{float(mantissa):.3g}e{int(exponent)}"


def _dimension_next_step(dimension):
    gain = 1 - 2 ** (-1 / dimension) if dimension and dimension > 0 else None
    if gain is None:
        return ""
    return (
        f"**What it implies:** test loss falls roughly as N^(−1/d_data), so each doubling of the "
        f"labelled images lowers it by about {gain:.0%}; a higher d_data needs more labels for the "
        "same gain. **Next:** **Fit scaling law** measures the curve on your data and its planner "
        "estimates how many labelled images a target loss needs."
    )


def _hubs(pairs, minimum=3):
    """Samples in at least ``minimum`` of the sharp ``pairs``: ``(id, file name, label,
    count)``, most frequent first."""
    counts, about = {}, {}
    for p in pairs:
        for side in ("i", "j"):
            sample = p[f"id_{side}"]
            counts[sample] = counts.get(sample, 0) + 1
            about[sample] = (_short(p[f"filepath_{side}"]), p[f"label_{side}"])
    hubs = [(sample, *about[sample], n) for sample, n in counts.items() if n >= minimum]
    return sorted(hubs, key=lambda hub: -hub[3])


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


def _patch(state, key, value):
    """Set ``state[key]`` to ``value`` unless the event's state already holds it (compared
    as the JSON the browser round-trips: tuples arrive as lists)."""
    try:
        unchanged = state.get(key) == json.loads(json.dumps(value))
    except (TypeError, ValueError):  # not plain JSON: send it
        unchanged = False
    if not unchanged:
        state.set(key, value)
