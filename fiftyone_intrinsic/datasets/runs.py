"""FiftyOne runs of fiftyone_intrinsic: one config class and one run class per method, and
the functions that list, load, describe and delete runs.

Every run records, in its config, the sample fields, tags and saved views it wrote (named
by its :mod:`.schema`), so that deleting it, or overwriting its key, removes exactly those.
The classes live at this stable import path because stored runs name them; runs stored by
version 0.1.0 name ``fiftyone_intrinsic.runs.IntrinsicRunConfig``, which that module still
provides.
"""

from __future__ import annotations

from typing import ClassVar

import fiftyone.core.runs as fors

from .results import IntrinsicResults, as_typed_results
from .schema import METHODS, RunSchema, schema_of

__all__ = [
    "IntrinsicRunConfig",
    "IntrinsicRun",
    "DimensionRunConfig",
    "DimensionRun",
    "SharpnessRunConfig",
    "SharpnessRun",
    "RepresentationRunConfig",
    "RepresentationRun",
    "RobustnessRunConfig",
    "RobustnessRun",
    "ScalingLawRunConfig",
    "ScalingLawRun",
    "CONFIG_CLASSES",
    "METHODS",
    "list_intrinsic_runs",
    "load_intrinsic_results",
    "get_intrinsic_run_info",
    "delete_intrinsic_run",
    "validate_run_key",
    "require_method",
]


class IntrinsicRunConfig(fors.RunConfig):
    """Config of a stored run (base of the per-method configs; runs of 0.1.0 use it as is).

    Keyword args (all JSON):
        method: one of :data:`~fiftyone_intrinsic.datasets.schema.METHODS`.
        settings: the validated settings of the computation.
        features: the fingerprint of the features (source and preprocessing).
        label_field: the Classification field, for methods that read labels.
        fields: sample fields this run wrote.
        tags: sample tags this run applied.
        saved_views: saved views this run created.
        versions: versions of the packages that computed it.
        device: the torch device it ran on.
    """

    #: The method of the subclass; ``None`` on the base class.
    METHOD: ClassVar[str | None] = None

    def __init__(self, **kwargs):
        if self.METHOD is not None:
            method = kwargs.setdefault("method", self.METHOD)
            if method != self.METHOD:
                raise ValueError(f"{type(self).__name__} is for method {self.METHOD!r}, not {method!r}.")
        super().__init__(**kwargs)

    @property
    def schema(self) -> RunSchema:
        """What runs of this method write."""
        return schema_of(self.method)


class IntrinsicRun(fors.Run):
    """A stored run; cleans up its fields, tags and saved views when deleted."""

    @classmethod
    def config_cls(cls):
        return IntrinsicRunConfig

    def get_fields(self, samples, key):
        return list(getattr(self.config, "fields", []))

    def cleanup(self, samples, key):
        dataset = samples._dataset
        for field in getattr(self.config, "fields", []):
            if dataset.has_sample_field(field):
                dataset.delete_sample_field(field)
        for tag in getattr(self.config, "tags", []):
            dataset.untag_samples(tag)
        for name in getattr(self.config, "saved_views", []):
            if dataset.has_saved_view(name):
                dataset.delete_saved_view(name)


class DimensionRunConfig(IntrinsicRunConfig):
    """Config of an intrinsic-dimension run."""

    METHOD = "intrinsic_dimension"


class DimensionRun(IntrinsicRun):
    @classmethod
    def config_cls(cls):
        return DimensionRunConfig


class SharpnessRunConfig(IntrinsicRunConfig):
    """Config of a label-sharpness run."""

    METHOD = "label_sharpness"


class SharpnessRun(IntrinsicRun):
    @classmethod
    def config_cls(cls):
        return SharpnessRunConfig


class RepresentationRunConfig(IntrinsicRunConfig):
    """Config of a representation-dimension run (also records ``layer``, ``model``,
    ``model_input``)."""

    METHOD = "representation_dimension"


class RepresentationRun(IntrinsicRun):
    @classmethod
    def config_cls(cls):
        return RepresentationRunConfig


class RobustnessRunConfig(IntrinsicRunConfig):
    """Config of an adversarial-robustness run (also records ``model``, ``model_input``,
    ``class_names``, ``sharpness_run_key``)."""

    METHOD = "adversarial_robustness"


class RobustnessRun(IntrinsicRun):
    @classmethod
    def config_cls(cls):
        return RobustnessRunConfig


class ScalingLawRunConfig(IntrinsicRunConfig):
    """Config of a scaling-law run (also records ``mode``, ``fit``, ``model`` and the
    source run keys)."""

    METHOD = "scaling_law"


class ScalingLawRun(IntrinsicRun):
    @classmethod
    def config_cls(cls):
        return ScalingLawRunConfig


#: Method → config class.
CONFIG_CLASSES: dict[str, type[IntrinsicRunConfig]] = {
    cls.METHOD: cls
    for cls in (DimensionRunConfig, SharpnessRunConfig, RepresentationRunConfig, RobustnessRunConfig, ScalingLawRunConfig)
}


def validate_run_key(samples, run_key: str, overwrite: bool, method: str | None = None) -> None:
    """Refuse a run key that is not an identifier, exists without ``overwrite``, belongs
    to another tool, or (with ``method``) holds a run of another method."""
    if not isinstance(run_key, str) or not run_key.isidentifier():
        raise ValueError(
            f"Run key {run_key!r} is not a valid identifier; use letters, digits and "
            "underscores, not starting with a digit (e.g. 'label_sharpness')."
        )
    if run_key in samples._dataset.list_runs():
        if not overwrite:
            raise ValueError(
                f"A run with key {run_key!r} already exists on dataset "
                f"{samples._dataset.name!r}. Choose another key or pass overwrite=True."
            )
        existing = samples._dataset.get_run_info(run_key).config
        if not isinstance(existing, IntrinsicRunConfig):
            raise ValueError(
                f"Run key {run_key!r} belongs to a run that fiftyone_intrinsic did not "
                "write; choose another key."
            )
        if method is not None and existing.method != method:
            raise ValueError(
                f"Run key {run_key!r} holds a {existing.method} run; a {method} run cannot "
                "replace it. Choose another key or delete that run first."
            )


def list_intrinsic_runs(samples, method: str | None = None) -> list[str]:
    """Keys of this library's runs on the dataset, optionally of one method."""
    dataset = samples._dataset
    keys = []
    for key in dataset.list_runs():
        config = dataset.get_run_info(key).config
        if isinstance(config, IntrinsicRunConfig) and (method is None or config.method == method):
            keys.append(key)
    return keys


def get_intrinsic_run_info(samples, run_key: str):
    """The :class:`fiftyone.core.runs.RunInfo` (config, timestamp, FiftyOne version)."""
    _require_run(samples, run_key)
    return samples._dataset.get_run_info(run_key)


def load_intrinsic_results(samples, run_key: str) -> IntrinsicResults:
    """The stored results, typed by method (:mod:`.results`)."""
    info = get_intrinsic_run_info(samples, run_key)
    results = samples._dataset.load_run_results(run_key, cache=False)
    return as_typed_results(results, info.config.method)


def delete_intrinsic_run(samples, run_key: str) -> None:
    """Delete a run and the fields, tags and saved views it wrote."""
    _require_run(samples, run_key)
    samples._dataset.delete_run(run_key)


def require_method(samples, run_key: str, method: str, what: str | None = None):
    """The info of run ``run_key``, refusing a missing run or one of another method."""
    info = get_intrinsic_run_info(samples, run_key)
    if info.config.method != method:
        raise ValueError(
            f"Run {run_key!r} is a {info.config.method} run, not {what or method}; choose a "
            f"{method} run: {list_intrinsic_runs(samples, method)}."
        )
    return info


def _require_run(samples, run_key):
    keys = list_intrinsic_runs(samples)
    if run_key not in keys:
        raise ValueError(
            f"No fiftyone_intrinsic run with key {run_key!r} on dataset "
            f"{samples._dataset.name!r}; its runs are {keys}."
        )
