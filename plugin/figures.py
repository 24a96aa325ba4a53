"""Plotly traces and layouts (plain JSON dicts) for the Intrinsic properties panel.

Each function returns ``(traces, layout)``. Axes carry titles with units; every trace has a
name for the legend and a hover template with units and three significant digits. Layouts
are built for the panel's width (about 600 px): the legend sits below the plot, log axes get
explicit 1-2-5 ticks instead of Plotly's digit-only minor labels, and point labels that would
collide are left to the hover.
"""

import math

MEDICAL = "#d62728"
NATURAL = "#1f77b4"
THIS = "#ff7f0e"


def _layout(title, x_title, y_title, **extra):
    layout = {
        "title": {"text": title},
        "xaxis": {"title": {"text": x_title}},
        "yaxis": {"title": {"text": y_title}},
        "height": 320,
        "margin": {"l": 60, "r": 20, "t": 40, "b": 50},
        "showlegend": True,
        # below the x title, left-aligned: a side legend squeezed the plot to half the panel
        "legend": {"orientation": "h", "x": 0, "xanchor": "left", "y": -0.25, "yanchor": "top"},
        "hovermode": "closest",
    }
    for axis in ("xaxis", "yaxis"):
        layout[axis].update(extra.pop(axis, {}))
    layout.update(extra)
    layout["margin"]["b"] = 110  # room for the legend below
    layout["height"] = 400
    return layout


def log_ticks(values, max_ticks=6):
    """Explicit ticks for a log axis over ``values``: 1-2-5 steps, written in full.

    Plotly's automatic log ticks label minor ticks with a single digit ("9 8 … 3"), which
    is unreadable in a narrow panel.

    >>> log_ticks([0.61e-4, 3.43e-4])["ticktext"]
    ['5e-5', '1e-4', '2e-4', '5e-4']
    >>> log_ticks([40, 90])["ticktext"]
    ['20', '50', '100']
    """
    positive = [v for v in values if v is not None and math.isfinite(v) and v > 0]
    if not positive:
        return {}
    lo, hi = min(positive), max(positive)
    ticks = []
    for mantissas in ((1, 2, 5), (1,)):
        ticks = [m * 10.0 ** e for e in range(math.floor(math.log10(lo)) - 1, math.ceil(math.log10(hi)) + 1)
                 for m in mantissas]
        below = [t for t in ticks if t <= lo]
        above = [t for t in ticks if t >= hi]
        ticks = [t for t in ticks if (below and t >= below[-1]) and (above and t <= above[0])]
        if len(ticks) <= max_ticks:
            break
    while len(ticks) > max_ticks:
        ticks = ticks[::2]
        while ticks[-1] < hi:  # every other decade: keep one tick above the data
            ticks.append(ticks[-1] * ticks[1] / ticks[0])
    return {"tickmode": "array", "tickvals": ticks, "ticktext": [_tick(t) for t in ticks]}


def _tick(value):
    if 1e-3 <= value < 1e5:
        return f"{value:g}"
    mantissa, exponent = f"{value:.0e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def _hover(x, y, name=False):
    """A hover template: ``x`` and ``y`` are "label (unit)" strings, values to 3 digits."""
    first = "%{text}<br>" if name else ""
    return f"{first}{x}: %{{x:.3g}}<br>{y}: %{{y:.3g}}<extra>%{{fullData.name}}</extra>"


def place_labels(xs, ys, names, log_x=False, log_y=False, char_width=0.016, height=0.07):
    """Text positions for point labels that do not overlap, else no label (the hover has it).

    Positions are tried in order around each point, in axis fractions estimated for a
    panel about 600 px wide (``char_width`` of the width per character, ``height`` of the
    plot per line). Returns ``(texts, positions)``.
    """
    def scale(values, log):
        values = [math.log10(v) if log else v for v in values]
        lo, hi = min(values), max(values)
        span = (hi - lo) or 1.0
        return [(v - lo) / span for v in values]

    px, py = scale(xs, log_x), scale(ys, log_y)
    placed, texts, positions = [], [], []
    offsets = {"top center": (0, 1), "bottom center": (0, -1), "middle right": (1, 0), "middle left": (-1, 0)}
    for x, y, name in zip(px, py, names):
        width = len(name) * char_width
        for position, (dx, dy) in offsets.items():
            cx = x + dx * (width / 2 + 0.01)
            cy = y + dy * height * 0.8
            box = (cx - width / 2, cy - height / 2, cx + width / 2, cy + height / 2)
            if all(box[2] <= b[0] or box[0] >= b[2] or box[3] <= b[1] or box[1] >= b[3] for b in placed):
                placed.append(box)
                texts.append(name)
                positions.append(position)
                break
        else:
            texts.append("")
            positions.append("top center")
    return texts, positions


def id_vs_k(by_k, estimator, dimension, k):
    """The MLE estimate against the number of neighbours k."""
    ks = [point[0] for point in by_k]
    values = [point[1] for point in by_k]
    traces = [
        {"type": "scatter", "mode": "lines+markers", "x": ks, "y": values, "name": f"{estimator} estimate",
         "hovertemplate": _hover("k (neighbours)", "d_data (dimensions)")},
        {"type": "scatter", "mode": "markers", "x": [k], "y": [dimension], "name": f"reported (k={k})",
         "marker": {"size": 12, "symbol": "star", "color": THIS},
         "hovertemplate": _hover("k (neighbours)", "d_data (dimensions)")},
    ]
    return traces, _layout("Intrinsic dimension vs k", "neighbours k", "d_data (dimensions)")


def local_histogram(counts, edges, estimator):
    """Histogram of the per-sample local estimates, binned already: ``counts`` of the bins
    between consecutive ``edges``."""
    lows, highs = edges[:-1], edges[1:]
    traces = [{"type": "bar", "x": [(lo + hi) / 2 for lo, hi in zip(lows, highs)], "y": counts,
               "width": [hi - lo for lo, hi in zip(lows, highs)], "customdata": [[lo, hi] for lo, hi in zip(lows, highs)],
               "name": f"local {estimator}", "marker": {"line": {"width": 0}},
               "hovertemplate": "local d: %{customdata[0]:.3g} – %{customdata[1]:.3g} dimensions"
                                "<br>%{y} samples<extra></extra>"}]
    return traces, _layout("Local intrinsic dimension", "local d (dimensions)", "samples", bargap=0)


def robustness_curves(curves, clean_accuracy, norm):
    """Robust accuracy against budget for the attacks of one norm, with the clean reference."""
    traces, budgets = [], []
    hover_unit = "ε (/255, L∞)" if norm == "linf" else "ε (L2)"
    for name, curve in curves.items():
        if curve["norm"] != norm:
            continue
        budgets += curve["epsilons"]
        traces.append({"type": "scatter", "mode": "lines+markers", "x": curve["epsilons"],
                       "y": curve["accuracy"], "name": name.upper().replace("_", "-"),
                       "hovertemplate": _hover(hover_unit, "robust accuracy")})
    if budgets:
        traces.append({"type": "scatter", "mode": "lines", "x": [min(budgets), max(budgets)],
                       "y": [clean_accuracy, clean_accuracy], "name": "clean accuracy",
                       "line": {"dash": "dash", "color": "gray"}, "hoverinfo": "skip"})
    unit = "ε (1/255 units, L∞)" if norm == "linf" else "ε (L2 norm, [0,1] images)"
    return traces, _layout(f"Robust accuracy vs {'L∞' if norm == 'linf' else 'L2'} budget", unit,
                           "robust accuracy", yaxis={"range": [0, 1.02]})


def paper_scatter(references, this_name, this_dimension, this_k_f):
    """This dataset among the paper's eleven on d_data and K_F (224 × 224, [0, 255])."""
    hover = _hover("d_data (dimensions)", "K_F (1/intensity units)", name=True)
    # this dataset is labelled first so that a reference label never hides it
    points = [(this_dimension, this_k_f, this_name)] + [(r.d_data, r.k_f, r.name) for r in references]
    texts, positions = place_labels(*zip(*points), log_y=True)
    traces = []
    for domain, color in (("medical", MEDICAL), ("natural", NATURAL)):
        chosen = [(r, label) for r, label in zip(references, zip(texts[1:], positions[1:])) if r.domain == domain]
        traces.append({"type": "scatter", "mode": "markers+text", "name": f"paper: {domain}",
                       "x": [r.d_data for r, _ in chosen], "y": [r.k_f for r, _ in chosen],
                       "text": [t for _, (t, _) in chosen], "textposition": [q for _, (_, q) in chosen],
                       "customdata": [r.name for r, _ in chosen],
                       "hovertemplate": hover.replace("%{text}", "%{customdata}"),
                       "textfont": {"size": 10, "color": color}, "marker": {"color": color, "size": 9}})
    traces.append({"type": "scatter", "mode": "markers+text", "name": this_name, "x": [this_dimension],
                   "y": [this_k_f], "text": [texts[0]], "textposition": positions[0],
                   "customdata": [this_name], "hovertemplate": hover.replace("%{text}", "%{customdata}"),
                   "marker": {"color": THIS, "size": 14, "symbol": "star"}})
    ks = [p[1] for p in points]
    return traces, _layout("Against the paper's datasets", "d_data (dimensions)",
                           "K_F (1 / intensity units, 224 px, [0, 255])", yaxis={"type": "log", **log_ticks(ks)})


def _dataset_points(rows, x_key, y_key, name, x_hover, y_hover, log_x=False, log_y=False, colored=True, **extra):
    """One labelled marker per dataset row (``rows[i][x_key]``, ``rows[i][y_key]``, named by
    ``rows[i]["name"]``; the current dataset highlighted when ``colored``); returns
    ``(trace, xs, ys)``. ``extra``: more trace attributes (e.g. ``error_y``)."""
    xs, ys, names = [row[x_key] for row in rows], [row[y_key] for row in rows], [row["name"] for row in rows]
    texts, positions = place_labels(xs, ys, names, log_x=log_x, log_y=log_y)
    marker = {"size": 11}
    if colored:
        marker["color"] = [THIS if row["current"] else NATURAL for row in rows]
    trace = {"type": "scatter", "mode": "markers+text", "name": name, "x": xs, "y": ys,
             "text": texts, "textposition": positions, "customdata": names, **extra,
             "hovertemplate": _hover(x_hover, y_hover, name=True).replace("%{text}", "%{customdata}"),
             "marker": marker}
    return trace, xs, ys


def datasets_scatter(rows):
    """Datasets of this database with comparable runs: d_data against K_F."""
    trace, _, ys = _dataset_points(rows, "d_data", "k_f", "datasets (same preprocessing)",
                                   "d_data (dimensions)", "K_F (1/feature units)", log_y=True)
    return [trace], _layout("Datasets of this database", "d_data (dimensions)",
                            "K_F (1 / feature units)", yaxis={"type": "log", **log_ticks(ys)})


def robustness_vs_sharpness(rows):
    """Median R̂ against K_F across datasets (log–log), with the bound 1/(2·K_F) that the
    images of each dataset's sharpest pair cannot both exceed. No fitted line: the points
    come from different models, so a slope through them means nothing."""
    trace, xs, ys = _dataset_points(rows, "r_hat_k_f", "r_hat", "datasets (median R̂)", "K_F (1/feature units)",
                                    "median R̂ (feature units)", log_x=True, log_y=True, colored=False)
    traces = [trace]
    lo, hi = min(xs) / 1.5, max(xs) * 1.5
    grid = [lo * (hi / lo) ** (i / 20) for i in range(21)]
    traces.append({"type": "scatter", "mode": "lines", "x": grid, "y": [1 / (2 * x) for x in grid],
                   "name": "bound for the sharpest pair: 1/(2·K_F)", "line": {"dash": "dot"}, "hoverinfo": "skip"})
    bounds = [1 / (2 * x) for x in (lo, hi)]
    return traces, _layout("Robustness vs label sharpness", "K_F (1 / feature units)",
                           "median R̂ (smallest L2 perturbation, feature units)",
                           xaxis={"type": "log", **log_ticks(xs + [lo, hi])},
                           yaxis={"type": "log", **log_ticks(ys + bounds)})


def delta_loss_vs_sharpness(rows):
    """FGSM Δloss at 2/255 (nats) against K_F across datasets (log K_F). No fitted line:
    each point has its own model."""
    trace, xs, _ = _dataset_points(rows, "r_hat_k_f", "delta_loss", "datasets (FGSM Δloss)",
                                   "K_F (1/feature units)", "Δloss (nats)", log_x=True)
    return [trace], _layout("Attack susceptibility vs label sharpness", "K_F (1 / feature units)",
                           "FGSM Δloss at ε = 2/255 (nats)", xaxis={"type": "log", **log_ticks(xs)})


def exponent_vs_dimension(rows):
    """Fitted scaling exponent (95% interval) against −1/d_data across datasets, with the
    line y = x over the points' x range."""
    high = [max(0.0, row["exponent_high"] - row["exponent"]) if row.get("exponent_high") is not None else 0.0
            for row in rows]
    low = [max(0.0, row["exponent"] - row["exponent_low"]) if row.get("exponent_low") is not None else 0.0
           for row in rows]
    trace, xs, _ = _dataset_points(
        rows, "predicted_exponent", "exponent", "datasets (fitted exponent)", "−1/d_data", "fitted exponent",
        error_y={"type": "data", "symmetric": False, "array": high, "arrayminus": low},
    )
    traces = [trace]
    lo, hi = min(xs), max(xs)
    traces.append({"type": "scatter", "mode": "lines", "x": [lo, hi], "y": [lo, hi], "hoverinfo": "skip",
                   "name": "y = x: exponent = −1/d_data", "line": {"dash": "dash", "color": "gray"}})
    return traces, _layout("Scaling exponent vs −1/d_data", "−1/d_data", "fitted exponent of log L on log N")


def scaling_law(results):
    """Test loss against training-set size (log–log): every run, the fit with its band,
    and the line of slope −1/d_data. ``results``: a run's
    :class:`~fiftyone_intrinsic.datasets.results.ScalingLawResults`."""
    sizes, losses = results.sizes, results.losses
    traces = [{
        "type": "scatter", "mode": "markers", "name": "runs (one per seed)",
        "x": [n for n, row in zip(sizes, losses) for _ in row],
        "y": [loss for row in losses for loss in row], "marker": {"size": 6, "opacity": 0.6},
        "hovertemplate": "N: %{x:,} images<br>L: %{y:.3g} nats<extra>%{fullData.name}</extra>",
    }]
    line, fit = results.fit_line, results.fit or {}
    if line:
        traces.append({"type": "scatter", "mode": "lines", "x": line["n"] + line["n"][::-1],
                       "y": line["high"] + line["low"][::-1], "fill": "toself", "name": "fit interval",
                       "line": {"width": 0}, "opacity": 0.25, "hoverinfo": "skip"})
        traces.append({"type": "scatter", "mode": "lines", "x": line["n"], "y": line["loss"],
                       "name": f"fit: slope {fit.get('exponent', float('nan')):.3f}",
                       "hovertemplate": "N: %{x:,.0f} images<br>fitted L: %{y:.3g} nats<extra></extra>"})
    predicted = results.predicted_line
    if predicted:
        traces.append({"type": "scatter", "mode": "lines", "x": predicted["n"], "y": predicted["loss"],
                       "name": f"−1/d_data = {predicted['exponent']:.3f}", "line": {"dash": "dot"},
                       "hovertemplate": "N: %{x:,.0f} images<br>L: %{y:.3g} nats<extra>%{fullData.name}</extra>"})
    all_x = [x for t in traces for x in t["x"]]
    all_y = [y for t in traces for y in t["y"]]
    return traces, _layout("Scaling law", "training-set size N (log)", "test cross-entropy L (nats, log)",
                           xaxis={"type": "log", **log_ticks(all_x)}, yaxis={"type": "log", **log_ticks(all_y)})
