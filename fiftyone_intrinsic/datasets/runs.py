"""FiftyOne runs of fiftyone_intrinsic: one config class and one run class per method, and
the functions that list, load, describe and delete runs.

Every run records, in its config, the sample fields, tags and saved views it wrote (named
by its :mod:`.schema`), so that deleting it, or overwriting its key, removes exactly those.
The classes live at this stable import path because stored runs name them; runs stored by
version 0.1.0 name ``fiftyone_intrinsic.runs.IntrinsicRunConfig``, which that module still
provides.
"""

from __future__ import annotations

import threading
from typing import ClassVar

import fiftyone.core.runs as fors

from .results import IntrinsicResults, as_typed_results
from .schema import METHODS, RunNames, RunSchema, schema_of

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
    "rename_intrinsic_run",
    "is_complete",
    "run_status",
    "incomplete_message",
    "names_of",
    "shared_tags_of",
    "check_names_free",
    "move_run_names",
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
    """A stored run; deleting it removes exactly the fields, saved views and sample tags it
    recorded writing, and renaming it moves them to the new key's names."""

    @classmethod
    def config_cls(cls):
        return IntrinsicRunConfig

    def get_fields(self, samples, key):
        return list(getattr(self.config, "fields", []))

    def cleanup(self, samples, key):
        dataset = samples._root_dataset
        for field in getattr(self.config, "fields", []):
            if dataset.has_sample_field(field):
                dataset.delete_sample_field(field)
        tagged = getattr(self.config, "tagged", None)
        shared = shared_tags_of(self.config, key)
        for tag in getattr(self.config, "tags", []):
            # older runs did not record the samples they tagged; people apply shared tags
            if tagged is None or tag in shared:
                dataset.untag_samples(tag)
            elif tagged.get(tag):
                dataset.select(tagged[tag]).untag_samples(tag)
        for name in getattr(self.config, "saved_views", []):
            if dataset.has_saved_view(name):
                dataset.delete_saved_view(name)

    def rename(self, samples, key, new_key):
        """Move the fields, tags and saved views to ``new_key``'s names (FiftyOne's
        ``rename_run`` calls this before it renames the key)."""
        config = self.config
        new = self.config.schema.names(new_key, attacks=_attacks_of(config))
        move_run_names(samples._root_dataset, key, config, new)


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
    if run_key in samples._root_dataset.list_runs():
        existing = samples._root_dataset.get_run_info(run_key).config
        if not isinstance(existing, IntrinsicRunConfig):
            raise ValueError(
                f"Run key {run_key!r} belongs to a run that fiftyone_intrinsic did not "
                "write; choose another key."
            )
        if not is_complete(existing):
            raise ValueError(incomplete_message(samples, run_key, existing))
        if not overwrite:
            raise ValueError(
                f"A run with key {run_key!r} already exists on dataset "
                f"{samples._root_dataset.name!r}. Choose another key, or replace it "
                "(overwrite=True; 'Overwrite' in the App)."
            )
        if method is not None and existing.method != method:
            raise ValueError(
                f"Run key {run_key!r} holds a {existing.method} run; a {method} run cannot "
                "replace it. Choose another key or delete that run first."
            )


def list_intrinsic_runs(samples, method: str | None = None, *, status: str | None = "complete") -> list[str]:
    """Keys of this library's runs on the dataset.

    Args:
        samples: a dataset or view (runs of its dataset are listed).
        method (None): only runs of this method.
        status ("complete"): only ``"complete"`` runs, only ``"incomplete"`` ones (being
            computed, or left by a process that was killed: delete them), or ``None`` for all.
    """
    dataset = samples._root_dataset
    keys = []
    for key in dataset.list_runs():
        config = dataset.get_run_info(key).config
        if not isinstance(config, IntrinsicRunConfig) or (method is not None and config.method != method):
            continue
        if status is None or run_status(config) == status:
            keys.append(key)
    return keys


def run_status(config) -> str:
    """``"complete"`` or ``"incomplete"`` (runs stored before statuses were recorded are complete)."""
    return "complete" if is_complete(config) else "incomplete"


def is_complete(config) -> bool:
    """Whether a run's config says every write finished."""
    return getattr(config, "status", "complete") == "complete"


def incomplete_message(samples, run_key: str, config) -> str:
    """Why run ``run_key`` cannot be used: who started it, and how to remove it."""
    owner = getattr(config, "owner", None) or {}
    who = f"process {owner.get('pid')} on {owner.get('host')}, started {owner.get('started')} UTC" if owner else "an earlier process"
    return (
        f"Run {run_key!r} on dataset {samples._root_dataset.name!r} is incomplete: {who} is "
        "still computing it, or was stopped before it finished. Wait for it, or if that "
        f"process is gone delete the run, which removes what it wrote: "
        f"delete_intrinsic_run(dataset, {run_key!r}), 'Delete intrinsic run' in the App, or "
        f"fiftyone-intrinsic runs {samples._root_dataset.name} --delete {run_key}."
    )


def get_intrinsic_run_info(samples, run_key: str):
    """The :class:`fiftyone.core.runs.RunInfo` (config, timestamp, FiftyOne version)."""
    _require_run(samples, run_key)
    return samples._dataset.get_run_info(run_key)


#: FiftyOne reads a run's results through one file handle per dataset object (seek, then
#: read); threads sharing the object, as the App server's panel events do, must take turns.
_RESULTS_READ = threading.Lock()


def load_intrinsic_results(samples, run_key: str) -> IntrinsicResults:
    """The stored results, typed by method (:mod:`.results`). Safe to call from several
    threads at once."""
    info = get_intrinsic_run_info(samples, run_key)
    if not is_complete(info.config):
        raise ValueError(incomplete_message(samples, run_key, info.config))
    with _RESULTS_READ:
        results = samples._root_dataset.load_run_results(run_key, cache=False)
    return as_typed_results(results, info.config.method)


def delete_intrinsic_run(samples, run_key: str) -> None:
    """Delete a run (complete or not) and the fields, tags and saved views it wrote."""
    _require_run(samples, run_key)
    samples._root_dataset.delete_run(run_key)


def rename_intrinsic_run(samples, run_key: str, new_run_key: str) -> None:
    """Rename a run; its fields, tags and saved views move to the new key's names.

    Raises:
        ValueError: no such run, an invalid or taken new key, or a new name that a field,
            tag or saved view already has (nothing is changed then).
    """
    info = get_intrinsic_run_info(samples, run_key)
    dataset = samples._root_dataset
    if not isinstance(new_run_key, str) or not new_run_key.isidentifier():
        raise ValueError(f"Run key {new_run_key!r} is not a valid identifier; use letters, digits and underscores.")
    if new_run_key in dataset.list_runs():
        raise ValueError(f"A run with key {new_run_key!r} already exists on dataset {dataset.name!r}.")
    if not is_complete(info.config):
        raise ValueError(incomplete_message(samples, run_key, info.config))
    check_names_free(dataset, info.config.schema.names(new_run_key, attacks=_attacks_of(info.config)))
    dataset.rename_run(run_key, new_run_key)


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
    keys = list_intrinsic_runs(samples, status=None)
    if run_key not in keys:
        raise ValueError(
            f"No fiftyone_intrinsic run with key {run_key!r} on dataset "
            f"{samples._dataset.name!r}; its runs are {keys}."
        )


# -- the names a run owns ---------------------------------------------------------------------


def names_of(config, key: str) -> RunNames:
    """The names run ``key`` owns, by role, as its config recorded them (runs before 0.3.0
    recorded lists without roles: their names come from the schema)."""
    recorded = getattr(config, "names", None)
    if recorded:
        return RunNames(fields=recorded["fields"], tags=recorded["tags"], saved_views=recorded["saved_views"])
    return config.schema.names(key, attacks=_attacks_of(config))


def shared_tags_of(config, key: str) -> set:
    """The tags of run ``key`` that people apply too (:attr:`~.schema.RunSchema.shared_tags`),
    among those its config records."""
    tags = names_of(config, key).tags
    recorded = set(getattr(config, "tags", None) or [])
    return {tags[role] for role in config.schema.shared_tags if role in tags and tags[role] in recorded}


def check_names_free(dataset, names: RunNames, owned: RunNames | None = None, existing_tags=None) -> None:
    """Refuse sample fields, tags and saved views that exist and are not in ``owned``
    (the names of the run being replaced); ``existing_tags``: the dataset's sample tags,
    when the caller has them already (else one ``distinct`` over the dataset)."""
    mine = set()
    if owned is not None:
        mine = {*owned.fields.values(), *owned.tags.values(), *owned.saved_views.values()}
    existing_tags = set(dataset.distinct("tags")) if existing_tags is None else existing_tags
    taken = [
        *(f"field {f!r}" for f in names.fields.values() if dataset.has_sample_field(f) and f not in mine),
        *(f"tag {t!r}" for t in names.tags.values() if t in existing_tags and t not in mine),
        *(f"saved view {v!r}" for v in names.saved_views.values() if dataset.has_saved_view(v) and v not in mine),
    ]
    if taken:
        raise ValueError(
            f"This run would write {', '.join(taken)}, which already exist on dataset "
            f"{dataset.name!r} and belong to you or to another run; choose another run key, "
            "or rename or delete those."
        )


def move_run_names(dataset, key: str, config, new: RunNames) -> None:
    """Rename what run ``key`` wrote (per its ``config``) to ``new``'s names, and record
    the new names in its config. Every new name must be free; nothing changes otherwise."""
    old = names_of(config, key)
    roles = lambda kind: [(getattr(old, kind)[r], getattr(new, kind)[r]) for r in getattr(old, kind) if r in getattr(new, kind)]
    check_names_free(dataset, RunNames(
        fields={n: n for o, n in roles("fields") if o != n}, tags={n: n for o, n in roles("tags") if o != n},
        saved_views={n: n for o, n in roles("saved_views") if o != n},
    ))
    for before, after in roles("fields"):
        if before != after and dataset.has_sample_field(before):
            dataset.rename_sample_field(before, after)
    tagged = getattr(config, "tagged", None)
    shared = shared_tags_of(config, key)
    for before, after in roles("tags"):
        if before == after:
            continue
        recorded = tagged is not None and before not in shared
        ids = tagged.pop(before, []) if recorded else dataset.match_tags(before).values("id")
        if ids:
            dataset.select(ids).tag_samples(after)
            dataset.select(ids).untag_samples(before)
            if recorded:
                tagged[after] = ids
    for before, after in roles("saved_views"):
        if before != after and dataset.has_saved_view(before):
            info = dataset.get_saved_view_info(before)
            dataset.save_view(after, dataset.load_saved_view(before), description=info.get("description"))
            dataset.delete_saved_view(before)
    config.fields = list(new.fields.values())
    config.tags = list(new.tags.values())
    config.saved_views = list(new.saved_views.values())
    config.names = dict(fields=dict(new.fields), tags=dict(new.tags), saved_views=dict(new.saved_views))
    if tagged is not None:
        config.tagged = tagged
    dataset.update_run_config(key, config)


def _attacks_of(config) -> list:
    """The attacks of a robustness run (they name its per-attack fields)."""
    return list((getattr(config, "settings", None) or {}).get("attacks", ()))
