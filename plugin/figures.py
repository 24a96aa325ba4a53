"""Plotly traces and layouts (plain JSON dicts) for the Intrinsic properties panel.

Each function returns ``(traces, layout)``. Axes carry titles with units; every trace has a
name for the legend.
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
        "legend": {"orientation": "h", "y": -0.3},
    }
    for axis in ("xaxis", "yaxis"):
        layout[axis].update(extra.pop(axis, {}))
    layout.update(extra)
    return layout


def id_vs_k(by_k, estimator, dimension, k):
    """The MLE estimate against the number of neighbours k."""
    ks = [point[0] for point in by_k]
    values = [point[1] for point in by_k]
    traces = [
        {"type": "scatter", "mode": "lines+markers", "x": ks, "y": values, "name": f"{estimator} estimate"},
        {"type": "scatter", "mode": "markers", "x": [k], "y": [dimension], "name": f"reported (k={k})",
         "marker": {"size": 12, "symbol": "star", "color": THIS}},
    ]
    return traces, _layout("Intrinsic dimension vs k", "neighbours k", "d_data (dimensions)")


def local_histogram(values, estimator):
    """Histogram of the per-sample local estimates."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    traces = [{"type": "histogram", "x": finite, "name": f"local {estimator}", "nbinsx": 40}]
    return traces, _layout("Local intrinsic dimension", "local d (dimensions)", "samples")


def robustness_curves(curves, clean_accuracy, norm):
    """Robust accuracy against budget for the attacks of one norm, with the clean reference."""
    traces, budgets = [], []
    for name, curve in curves.items():
        if curve["norm"] != norm:
            continue
        budgets += curve["epsilons"]
        traces.append({"type": "scatter", "mode": "lines+markers", "x": curve["epsilons"],
                       "y": curve["accuracy"], "name": name.upper().replace("_", "-")})
    if budgets:
        traces.append({"type": "scatter", "mode": "lines", "x": [min(budgets), max(budgets)],
                       "y": [clean_accuracy, clean_accuracy], "name": "clean accuracy",
                       "line": {"dash": "dash", "color": "gray"}})
    unit = "ε (1/255 units, L∞)" if norm == "linf" else "ε (L2 norm, [0,1] images)"
    return traces, _layout(f"Robust accuracy vs {'L∞' if norm == 'linf' else 'L2'} budget", unit,
                           "robust accuracy", yaxis={"range": [0, 1.02]})


def paper_scatter(references, this_name, this_dimension, this_k_f):
    """This dataset among the paper's eleven on d_data and K_F (224 × 224, [0, 255])."""
    traces = []
    for domain, color in (("medical", MEDICAL), ("natural", NATURAL)):
        points = [r for r in references if r.domain == domain]
        traces.append({"type": "scatter", "mode": "markers+text", "name": f"paper: {domain}",
                       "x": [r.d_data for r in points], "y": [r.k_f for r in points],
                       "text": [r.name for r in points], "textposition": "top center",
                       "marker": {"color": color, "size": 9}})
    traces.append({"type": "scatter", "mode": "markers+text", "name": this_name, "x": [this_dimension],
                   "y": [this_k_f], "text": [this_name], "textposition": "bottom center",
                   "marker": {"color": THIS, "size": 14, "symbol": "star"}})
    return traces, _layout("Against the paper's datasets", "d_data (dimensions)",
                           "K_F (1 / pixel-intensity units)", yaxis={"type": "log"})


def datasets_scatter(rows):
    """Datasets of this database with comparable runs: d_data against K_F."""
    traces = [{"type": "scatter", "mode": "markers+text", "name": "datasets (same preprocessing)",
               "x": [row["d_data"] for row in rows], "y": [row["k_f"] for row in rows],
               "text": [row["name"] for row in rows], "textposition": "top center",
               "marker": {"size": 11, "color": [THIS if row["current"] else NATURAL for row in rows]}}]
    return traces, _layout("Datasets of this database", "d_data (dimensions)",
                           "K_F (1 / feature units)", yaxis={"type": "log"})


def robustness_vs_sharpness(rows, slope):
    """R̂ against K_F across datasets (log–log), with the fitted line and the bound's −1."""
    xs = [row["k_f"] for row in rows]
    ys = [row["r_hat"] for row in rows]
    traces = [{"type": "scatter", "mode": "markers+text", "name": "datasets", "x": xs, "y": ys,
               "text": [row["name"] for row in rows], "textposition": "top center", "marker": {"size": 11}}]
    if slope is not None and len(rows) >= 2:
        lo, hi = min(xs), max(xs)
        mean_x = sum(math.log(x) for x in xs) / len(xs)
        mean_y = sum(math.log(y) for y in ys) / len(ys)

        def line(s):
            return [math.exp(mean_y + s * (math.log(x) - mean_x)) for x in (lo, hi)]

        traces.append({"type": "scatter", "mode": "lines", "x": [lo, hi], "y": line(slope),
                       "name": f"fit: slope {slope:.2f}"})
        traces.append({"type": "scatter", "mode": "lines", "x": [lo, hi], "y": line(-1.0),
                       "name": "bound: slope −1", "line": {"dash": "dot"}})
    return traces, _layout("Robustness vs label sharpness", "K_F (1 / feature units)",
                           "R̂ (mean smallest L2 perturbation, feature units)",
                           xaxis={"type": "log"}, yaxis={"type": "log"})


def scaling_law(results):
    """Test loss against training-set size (log–log): every run, the fit with its band,
    and the line of slope −1/d_data. ``results``: a run's
    :class:`~fiftyone_intrinsic.datasets.results.ScalingLawResults`."""
    sizes, losses = results.sizes, results.losses
    traces = [{
        "type": "scatter", "mode": "markers", "name": "runs (one per seed)",
        "x": [n for n, row in zip(sizes, losses) for _ in row],
        "y": [loss for row in losses for loss in row], "marker": {"size": 6, "opacity": 0.6},
    }]
    line, fit = results.fit_line, results.fit or {}
    if line:
        traces.append({"type": "scatter", "mode": "lines", "x": line["n"] + line["n"][::-1],
                       "y": line["high"] + line["low"][::-1], "fill": "toself", "name": "fit interval",
                       "line": {"width": 0}, "opacity": 0.25})
        traces.append({"type": "scatter", "mode": "lines", "x": line["n"], "y": line["loss"],
                       "name": f"fit: slope {fit.get('exponent', float('nan')):.3f}"})
    predicted = results.predicted_line
    if predicted:
        traces.append({"type": "scatter", "mode": "lines", "x": predicted["n"], "y": predicted["loss"],
                       "name": f"−1/d_data = {predicted['exponent']:.3f}", "line": {"dash": "dot"}})
    return traces, _layout("Scaling law", "training-set size N (log)", "test cross-entropy L (nats, log)",
                           xaxis={"type": "log"}, yaxis={"type": "log"})
