"""fiftyone_intrinsic: audit image datasets by their intrinsic properties.

Two layers:

- :mod:`fiftyone_intrinsic.core`, arrays and tensors, no FiftyOne:
  :func:`intrinsic_dimension` (d_data by MLE or TwoNN), :func:`label_sharpness` (exact
  K_F over all pairs, the sharpest pairs, conflicting duplicates), nearest neighbours,
  attacks, the scaling law, :func:`load_model`.
- :mod:`fiftyone_intrinsic.datasets`, on FiftyOne datasets and views, stored as runs:
  :func:`compute_intrinsic_dimension`, :func:`compute_label_sharpness`,
  :func:`compute_representation_dimension` (d_repr of a model layer),
  :func:`evaluate_robustness` (also on tensors), :func:`fit_scaling_law`, and
  :func:`list_intrinsic_runs`, :func:`load_intrinsic_results`,
  :func:`get_intrinsic_run_info`, :func:`delete_intrinsic_run`, :func:`rename_intrinsic_run`,
  :func:`load_sharpest_pairs_view`, and the review queue of a K_F run
  (:func:`mark_reviewed`, :func:`review_next_view`).

Names load on first use, so that importing the package (as the FiftyOne plugin does on
every operator lookup) pulls in neither torch nor FiftyOne.

Reference: Konz & Mazurowski, "The Effect of Intrinsic Dataset Properties on
Generalization", ICLR 2024. The definitions the code cites are in docs/science.md.
"""

import importlib

from .version import __version__

#: Public name → the module that defines it.
_EXPORTS = {
    "intrinsic_dimension": "core.dimension",
    "DimensionResult": "core.dimension",
    "label_sharpness": "core.sharpness",
    "SharpnessResult": "core.sharpness",
    "SharpPair": "core.sharpness",
    "nearest_neighbors": "core.neighbors",
    "load_model": "core.models",
    "DimensionSettings": "core.settings",
    "SharpnessSettings": "core.settings",
    "Preprocessing": "core.settings",
    "ModelInput": "core.settings",
    "ModelSource": "core.settings",
    "RobustnessSettings": "core.settings",
    "RobustnessReport": "core.robustness",
    "run_learning_curve": "core.learning_curve",
    "fit_power_law": "core.scaling",
    "compare_with_law": "core.scaling",
    "plan_budget": "core.scaling",
    "predict_exponent": "core.scaling",
    "FeatureSettings": "datasets.settings",
    "ScalingLawSettings": "datasets.settings",
    "compute_intrinsic_dimension": "datasets.dimension",
    "compute_label_sharpness": "datasets.sharpness",
    "load_sharpest_pairs_view": "datasets.sharpness",
    "mark_reviewed": "datasets.review",
    "unmark_reviewed": "datasets.review",
    "review_next_view": "datasets.review",
    "compute_representation_dimension": "datasets.representation",
    "evaluate_robustness": "datasets.robustness",
    "fit_scaling_law": "datasets.scaling",
    "list_intrinsic_runs": "datasets.runs",
    "load_intrinsic_results": "datasets.runs",
    "get_intrinsic_run_info": "datasets.runs",
    "delete_intrinsic_run": "datasets.runs",
    "rename_intrinsic_run": "datasets.runs",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
