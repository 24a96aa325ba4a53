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
  :func:`load_sharpest_pairs_view`.

Reference: Konz & Mazurowski, "The Effect of Intrinsic Dataset Properties on
Generalization", ICLR 2024.
"""

__version__ = "0.1.0"

from .dimension import DimensionResult, intrinsic_dimension
from .robustness import RobustnessReport, evaluate_robustness
from .settings import DimensionSettings, FeatureSettings, Preprocessing, SharpnessSettings
from .sharpness import SharpnessResult, SharpPair, label_sharpness


def __getattr__(name):
    # the FiftyOne layer imports fiftyone (slow, starts no database); load it on first use
    lazy = {
        "compute_intrinsic_dimension": "compute",
        "compute_label_sharpness": "compute",
        "load_sharpest_pairs_view": "compute",
        "compute_representation_dimension": "representation",
        "list_intrinsic_runs": "runs",
        "load_intrinsic_results": "runs",
        "get_intrinsic_run_info": "runs",
        "delete_intrinsic_run": "runs",
    }
    if name in lazy:
        import importlib

        return getattr(importlib.import_module(f".{lazy[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "__version__",
    "intrinsic_dimension",
    "label_sharpness",
    "evaluate_robustness",
    "RobustnessReport",
    "DimensionResult",
    "SharpnessResult",
    "SharpPair",
    "DimensionSettings",
    "SharpnessSettings",
    "FeatureSettings",
    "Preprocessing",
    "compute_intrinsic_dimension",
    "compute_label_sharpness",
    "load_sharpest_pairs_view",
    "compute_representation_dimension",
    "list_intrinsic_runs",
    "load_intrinsic_results",
    "get_intrinsic_run_info",
    "delete_intrinsic_run",
]
