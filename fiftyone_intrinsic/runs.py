"""FiftyOne runs of fiftyone_intrinsic: what each run stored, and how to undo it.

Every run records, in its config, the sample fields, tags and saved views it wrote, so that
deleting the run (or overwriting its key) removes exactly those. The classes live here, at
a stable import path, because stored runs name them and a fresh process imports them back.
"""

from __future__ import annotations

import fiftyone.core.runs as fors

__all__ = [
    "IntrinsicRunConfig",
    "IntrinsicRun",
    "METHODS",
    "list_intrinsic_runs",
    "load_intrinsic_results",
    "get_intrinsic_run_info",
    "delete_intrinsic_run",
    "validate_run_key",
]

#: Run methods written by this library.
METHODS = (
    "intrinsic_dimension",
    "label_sharpness",
    "representation_dimension",
    "adversarial_robustness",
    "scaling_law",
)


class IntrinsicRunConfig(fors.RunConfig):
    """Config of a stored run.

    Keyword args (all JSON):
        method: one of :data:`METHODS`.
        settings: the validated settings of the computation.
        features: the fingerprint of the features (source and preprocessing).
        label_field: the Classification field (label sharpness only).
        fields: sample fields this run wrote.
        tags: sample tags this run applied.
        saved_views: saved views this run created.
        versions: versions of the packages that computed it.
        device: the torch device it ran on.
    """


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


def validate_run_key(samples, run_key: str, overwrite: bool) -> None:
    """Refuse a run key that is not an identifier, or exists without ``overwrite``."""
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


def load_intrinsic_results(samples, run_key: str):
    """The stored results (attributes as written by the ``compute_*`` function)."""
    _require_run(samples, run_key)
    return samples._dataset.load_run_results(run_key, cache=False)


def delete_intrinsic_run(samples, run_key: str) -> None:
    """Delete a run and the fields, tags and saved views it wrote."""
    _require_run(samples, run_key)
    samples._dataset.delete_run(run_key)


def _require_run(samples, run_key):
    keys = list_intrinsic_runs(samples)
    if run_key not in keys:
        raise ValueError(
            f"No fiftyone_intrinsic run with key {run_key!r} on dataset "
            f"{samples._dataset.name!r}; its runs are {keys}."
        )
