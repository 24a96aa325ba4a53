"""Typed results of each kind of run, as stored in the database.

One class per method, as FiftyOne Brain does: the attributes a run stores are declared once
(:attr:`IntrinsicResults.VALUES`), a results object with a missing or unknown attribute
cannot be built, and readers (the panel, the command line, the operators) use attributes,
never string keys. The classes live at this stable import path because stored results
name them. Results stored by version 0.1.0 (plain ``RunResults`` with the same attributes)
are converted on loading (:func:`as_typed_results`).

Values are JSON: numbers are ``float`` or ``None`` (never NaN or inf), sample ids strings.
"""

from __future__ import annotations

from typing import ClassVar

import fiftyone.core.runs as fors

__all__ = [
    "IntrinsicResults",
    "DimensionResults",
    "SharpnessResults",
    "RepresentationResults",
    "RobustnessResults",
    "ScalingLawResults",
    "RESULTS_CLASSES",
    "as_typed_results",
]


class IntrinsicResults(fors.RunResults):
    """Stored results of a run; the subclass's :attr:`VALUES` are its attributes."""

    #: The attributes of the results, in storage order.
    VALUES: ClassVar[tuple[str, ...]] = ()
    #: Attributes that may be absent (older runs, or modes that do not compute them).
    OPTIONAL: ClassVar[tuple[str, ...]] = ()

    def __init__(self, samples, config, key, backend=None, **values):
        unknown = sorted(set(values) - set(self.VALUES))
        missing = sorted(set(self.VALUES) - set(values) - set(self.OPTIONAL))
        if unknown or missing:
            raise TypeError(
                f"{type(self).__name__} stores {list(self.VALUES)}; got unknown {unknown} and "
                f"missing {missing}."
            )
        values = {name: values.get(name) for name in self.VALUES}
        super().__init__(samples, config, key, backend=backend, **values)

    def attributes(self):
        return ["cls", *self.VALUES]


class DimensionResults(IntrinsicResults):
    """An intrinsic-dimension run (see :class:`~fiftyone_intrinsic.core.dimension.DimensionResult`).

    Attributes:
        dimension: d_data (degrees of freedom).
        ci_low, ci_high: the interval at ``confidence`` (``None`` without one; runs of
            earlier versions hold a percentile bootstrap, which was too narrow).
        confidence: coverage of the interval.
        n_samples, n_duplicates, n_near_duplicates: samples given, exact duplicates
            removed, near-duplicates merged within ``duplicate_distance``.
        duplicate_tolerance: the merging distance as a fraction of the median
            nearest-neighbour distance; ``None`` for runs stored while it was a distance
            in feature units (their value is then ``duplicate_distance``).
        duplicate_distance: the merging distance in feature units; ``None`` for runs
            stored before it was recorded whose tolerance was 0.
        estimator, k, discard_fraction: the estimator and what it read.
        duplicate_groups: sample ids of each set of identical samples.
        by_k: ``[[k', d]]`` the ID-versus-k curve.
    """

    VALUES = (
        "dimension", "ci_low", "ci_high", "confidence", "n_samples", "n_duplicates",
        "n_near_duplicates", "duplicate_tolerance", "duplicate_distance", "estimator", "k",
        "discard_fraction", "duplicate_groups", "by_k",
    )
    OPTIONAL = ("duplicate_distance",)

    def __init__(self, samples, config, key, backend=None, **values):
        if values.get("duplicate_distance") is None and values.get("duplicate_tolerance"):
            # stored while the tolerance was an absolute distance: keep it as the distance,
            # never read it as a fraction of the nearest-neighbour distance
            values = dict(values, duplicate_distance=values["duplicate_tolerance"], duplicate_tolerance=None)
        super().__init__(samples, config, key, backend=backend, **values)


class SharpnessResults(IntrinsicResults):
    """A label-sharpness run (see :class:`~fiftyone_intrinsic.core.sharpness.SharpnessResult`).

    Attributes:
        k_f: K_F (1 / feature units), ``None`` when undefined.
        min_distance: 1 / K_F (feature units).
        pairs: the sharpest pairs, ascending: dicts with ``id_i, id_j, distance, label_i,
            label_j, filepath_i, filepath_j``.
        conflicting_duplicates: ``[id_i, id_j]`` of identical samples with different labels.
        classes: the class labels, as strings.
        class_min_distance: ``(C, C)`` smallest distance between classes (``None`` = inf).
        n_samples, n_duplicates: samples given and exact duplicates among them.
    """

    VALUES = (
        "k_f", "min_distance", "pairs", "conflicting_duplicates", "classes",
        "class_min_distance", "n_samples", "n_duplicates",
    )


class RepresentationResults(IntrinsicResults):
    """A representation-dimension run: d_repr of a layer beside d_data.

    Attributes:
        dimension, ci_low, ci_high, estimator, k, n_samples, n_duplicates: d_repr as in
            :class:`DimensionResults`.
        data_dimension: d_data of the same samples; ``data_source``: its run key or
            ``"computed"``; ``holds``: d_repr <= d_data.
        layer: the layer; ``n_features``: activation values per sample.
    """

    VALUES = (
        "dimension", "ci_low", "ci_high", "estimator", "k", "n_samples", "n_duplicates",
        "data_dimension", "data_source", "holds", "layer", "n_features",
    )


class RobustnessResults(IntrinsicResults):
    """An adversarial-robustness run (see :class:`~fiftyone_intrinsic.core.adversarial.AttackResult`).

    Attributes:
        class_names: the label of each model output.
        clean_accuracy (fraction), clean_loss (nats), delta_loss: FGSM at 2/255,
            attacked − clean loss (nats; ``None`` without FGSM).
        curves: attack → ``{norm, epsilons, accuracy, loss}``.
        r_hat_mean, r_hat_median: empirical robustness R̂ (L2 of [0, 1] images).
        n_unbroken, n_samples: samples no L2 budget flipped, samples attacked.
        sharpness: ``None`` or the comparison with a K_F run: ``{run_key, k_f,
            inverse_k_f, r_hat_mean, r_hat_median, scale, radius_bound, r_hat_over_bound,
            certificate}`` (runs stored by earlier versions have no ``radius_bound`` and
            ``r_hat_over_bound``, and a ``certificate`` with ``holds`` and ``margin``
            instead of ``flip_radius``).
    """

    VALUES = (
        "class_names", "clean_accuracy", "clean_loss", "delta_loss", "curves", "r_hat_mean",
        "r_hat_median", "n_unbroken", "n_samples", "sharpness",
    )


class ScalingLawResults(IntrinsicResults):
    """A scaling-law run. Before labeling only ``mode``, ``prediction``, ``n_pool`` and
    ``sources`` are set; the others are ``None``.

    Attributes:
        mode: ``"curve"``, ``"pilot"`` or ``"before_labeling"``.
        sizes, seeds, losses (nats), accuracies, steps: the learning curve, ``[size][seed]``.
        fit, law, prediction, plans, primary_plan: the fit, the comparison with the law,
            the prediction from d_data and the labeling plans (dicts).
        fit_line, predicted_line: curves to draw (``{n, loss, ...}``).
        sources: where d_data, K_F and d_repr came from.
        test_ids, train_order_ids: the held-out sample ids and each seed's training order.
    """

    VALUES = (
        "mode", "class_names", "sizes", "seeds", "losses", "accuracies", "steps", "n_pool",
        "n_test", "subset_class_counts", "test_class_counts", "n_test_duplicates_in_pool",
        "model", "fit", "fit_line", "law", "predicted_line", "prediction", "plans",
        "primary_plan", "sources", "test_ids", "train_order_ids",
    )
    OPTIONAL = tuple(name for name in VALUES if name not in ("mode", "prediction", "n_pool", "sources"))


#: Method → results class.
RESULTS_CLASSES: dict[str, type[IntrinsicResults]] = {
    "intrinsic_dimension": DimensionResults,
    "label_sharpness": SharpnessResults,
    "representation_dimension": RepresentationResults,
    "adversarial_robustness": RobustnessResults,
    "scaling_law": ScalingLawResults,
}


def as_typed_results(results, method: str) -> IntrinsicResults:
    """The typed results of a loaded run: itself when already typed, else (a run stored by
    version 0.1.0 as a plain ``RunResults``) converted, attributes it lacks set to None."""
    cls = RESULTS_CLASSES[method]
    if isinstance(results, cls):
        return results
    values = {name: getattr(results, name, None) for name in cls.VALUES}
    return cls(results.samples, results.config, results.key, **values)
