"""The array layer: intrinsic dimension, label sharpness, neighbours, attacks, robustness,
layer activations, the scaling law and model loading, on numpy arrays and torch tensors.

Imports numpy, torch (and Pillow, pydantic, scipy) only, never FiftyOne, so it works where
FiftyOne is not installed. Names load on first use: the FiftyOne plugin reads the
estimator and attack registries to draw its forms without importing torch.

>>> import numpy as np
>>> from fiftyone_intrinsic.core import label_sharpness
>>> label_sharpness(np.array([[0.0], [2.0]]), ["a", "b"], device="cpu").k_f
0.5
"""

import importlib

#: Public name → the module of this package that defines it.
_EXPORTS = {
    "intrinsic_dimension": "dimension",
    "DimensionResult": "dimension",
    "label_sharpness": "sharpness",
    "SharpnessResult": "sharpness",
    "SharpPair": "sharpness",
    "nearest_neighbors": "neighbors",
    "find_duplicates": "neighbors",
    "Neighbors": "neighbors",
    "evaluate_robustness": "robustness",
    "RobustnessReport": "robustness",
    "attack_model": "adversarial",
    "pair_certificate": "adversarial",
    "layer_activations": "activations",
    "load_model": "models",
    "NormalizedModel": "models",
    "check_model_file": "model_files",
    "preprocess_image": "preprocessing",
    "fit_power_law": "scaling",
    "compare_with_law": "scaling",
    "plan_budget": "scaling",
    "predict_exponent": "scaling",
    "run_learning_curve": "learning_curve",
    "ESTIMATORS": "estimators",
    "Estimator": "estimators",
    "register_estimator": "estimators",
    "ATTACKS": "attacks",
    "Attack": "attacks",
    "register_attack": "attacks",
    "DimensionSettings": "settings",
    "SharpnessSettings": "settings",
    "Preprocessing": "settings",
    "ModelInput": "settings",
    "ModelSource": "settings",
    "RobustnessSettings": "settings",
    "resolve_device": "devices",
    "PAPER_DATASETS": "reference",
}

__all__ = list(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
