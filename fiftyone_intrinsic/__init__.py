"""fiftyone_intrinsic: audit image datasets by their intrinsic properties.

Array functions (no FiftyOne needed):

- :func:`intrinsic_dimension` — d_data by MLE (Levina-Bickel / MacKay-Ghahramani) or TwoNN.
- :func:`label_sharpness` — exact K_F over all pairs, the sharpest pairs, conflicting
  duplicates.
- :func:`evaluate_robustness` — adversarial robustness with torchattacks (also on FiftyOne
  collections, stored as a run and compared with K_F).

FiftyOne layer (stores runs, fields, tags and views on a dataset):

- :func:`compute_intrinsic_dimension`, :func:`compute_label_sharpness`,
  :func:`compute_representation_dimension` (d_repr of a model layer), and
  :func:`list_intrinsic_runs`, :func:`load_intrinsic_results`,
  :func:`get_intrinsic_run_info`, :func:`delete_intrinsic_run`,
  :func:`load_sharpest_pairs_view`, :func:`fit_scaling_law` (learning curve, fitted
  exponent against −1/d_data, labeling-budget planner).

Names load on first use, so that importing the package (as the FiftyOne plugin does on
every operator lookup) pulls in neither torch nor FiftyOne.

Reference: Konz & Mazurowski, "The Effect of Intrinsic Dataset Properties on
Generalization", ICLR 2024.
"""

import importlib

__version__ = "0.1.0"

#: Public name → the module that defines it.
_EXPORTS = {
    "intrinsic_dimension": "dimension",
    "DimensionResult": "dimension",
    "label_sharpness": "sharpness",
    "SharpnessResult": "sharpness",
    "SharpPair": "sharpness",
    "evaluate_robustness": "robustness",
    "RobustnessReport": "robustness",
    "DimensionSettings": "settings",
    "SharpnessSettings": "settings",
    "FeatureSettings": "settings",
    "Preprocessing": "settings",
    "ModelInput": "settings",
    "ModelSource": "settings",
    "RobustnessSettings": "settings",
    "compute_intrinsic_dimension": "compute",
    "compute_label_sharpness": "compute",
    "load_sharpest_pairs_view": "compute",
    "compute_representation_dimension": "representation",
    "list_intrinsic_runs": "runs",
    "load_intrinsic_results": "runs",
    "get_intrinsic_run_info": "runs",
    "delete_intrinsic_run": "runs",
    "fit_scaling_law": "scaling_runs",
    "run_learning_curve": "learning_curve",
    "fit_power_law": "scaling",
    "compare_with_law": "scaling",
    "plan_budget": "scaling",
    "predict_exponent": "scaling",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
