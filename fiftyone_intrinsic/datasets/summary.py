"""Read-only summaries of stored runs, for panels and reports: the latest run of each kind
on a dataset, and the other datasets of the database whose runs are comparable.

A panel asks for them on every view change, so complete runs are summarized once per
process: a complete run never changes its results, and a replaced or renamed run gets
another key or timestamp (:func:`summarize_run`). The rest of the database is surveyed
from its run documents, without their results (:func:`comparable_summaries`).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Optional

from .describe import describe_features
from .results import IntrinsicResults
from .runs import IntrinsicRunConfig, is_complete, load_intrinsic_results
from .schema import DIMENSION, METHODS, REPRESENTATION, ROBUSTNESS, SCALING, SHARPNESS

__all__ = [
    "RunSummary", "DatasetSummary", "DuplicateGroups", "summarize_dataset", "comparable_summaries",
    "duplicate_groups", "summarize_run", "runs_of", "combinable",
]


@dataclass(frozen=True)
class RunSummary:
    """A stored run: its key, method, timestamp, config features and typed results."""

    key: str
    method: str
    timestamp: str
    features: dict
    config: dict
    results: IntrinsicResults
    #: Samples the run covered (``None`` where the results do not say).
    n_samples: Optional[int] = None
    #: How the run's view was defined, in words ("the whole dataset" for none).
    view: str = "the whole dataset"
    #: The run's view stages, as stored: equal stages mean the same samples.
    view_stages: tuple = ()

    @property
    def date(self) -> str:
        """When the run started, to the minute (UTC)."""
        return self.timestamp[:16]

    def label(self) -> str:
        """One line naming the run: key, samples, view and date, for a run selector."""
        samples = f"{self.n_samples:,} samples" if self.n_samples is not None else "samples ?"
        return f"{self.key}: {samples}, {self.view}, {self.date}"


@dataclass(frozen=True)
class DatasetSummary:
    """The run of each method to show for one dataset (``None`` where there is none): the
    newest, preferring the paper's MLE estimator for d_data."""

    name: str
    n_samples: int
    dimension: Optional[RunSummary] = None
    sharpness: Optional[RunSummary] = None
    robustness: Optional[RunSummary] = None
    representation: Optional[RunSummary] = None
    scaling: Optional[RunSummary] = None
    runs: list = field(default_factory=list)
    #: Keys of incomplete runs: being computed, or left by a process that was stopped.
    incomplete: list = field(default_factory=list)


#: Method → the :class:`DatasetSummary` attribute that shows its latest run.
_SLOTS = {
    DIMENSION.method: "dimension",
    SHARPNESS.method: "sharpness",
    ROBUSTNESS.method: "robustness",
    REPRESENTATION.method: "representation",
    SCALING.method: "scaling",
}


def summarize_dataset(dataset, chosen: Optional[dict] = None) -> DatasetSummary:
    """Summaries of this library's complete runs on ``dataset``: for each method the run
    ``chosen`` names (slot → run key, e.g. ``{"sharpness": "kf_test"}``), else the newest
    (preferring the paper's MLE estimator for d_data)."""
    every, incomplete = [], []
    for key in dataset.list_runs():
        info = dataset.get_run_info(key)
        if not isinstance(info.config, IntrinsicRunConfig):
            continue
        if is_complete(info.config):
            every.append(summarize_run(dataset, key, info))
        else:
            incomplete.append(key)
    latest = {}
    for slot in set(_SLOTS.values()):
        runs = [r for r in every if _SLOTS[r.method] == slot]
        wanted = [r for r in runs if r.key == (chosen or {}).get(slot)]
        if runs:
            latest[slot] = wanted[0] if wanted else max(runs, key=_rank)
    return DatasetSummary(name=dataset.name, n_samples=len(dataset), runs=every, incomplete=incomplete, **latest)


#: Summaries of complete runs by (dataset id, key, timestamp): the most recent few hundred.
_SUMMARIES: "OrderedDict[tuple, RunSummary]" = OrderedDict()
_SUMMARIES_LOCK = threading.Lock()
_SUMMARIES_KEPT = 256


def summarize_run(dataset, key: str, info=None) -> RunSummary:
    """The summary of one stored run of this library (``info``: its run info, when the
    caller has it). A complete run is read from the database once per process."""
    info = info or dataset.get_run_info(key)
    cache_key = (str(dataset._doc.id), key, str(info.timestamp))
    with _SUMMARIES_LOCK:
        if cache_key in _SUMMARIES:
            _SUMMARIES.move_to_end(cache_key)
            return _SUMMARIES[cache_key]
    summary = _summarize_run(dataset, key, info)
    if is_complete(info.config):
        with _SUMMARIES_LOCK:
            _SUMMARIES[cache_key] = summary
            while len(_SUMMARIES) > _SUMMARIES_KEPT:
                _SUMMARIES.popitem(last=False)
    return summary


def _summarize_run(dataset, key, info) -> RunSummary:
    results = load_intrinsic_results(dataset, key)
    stages = tuple(getattr(dataset.load_run_view(key), "_stages", ()))
    n_samples = getattr(results, "n_samples", None)
    return RunSummary(
        key=key, method=info.config.method, timestamp=str(info.timestamp),
        features=dict(getattr(info.config, "features", {}) or {}),
        config={name: value for name, value in info.config.serialize().items() if name not in ("cls", "type")},
        results=results, n_samples=n_samples,
        view=" then ".join(repr(stage) for stage in stages) if stages else "the whole dataset",
        view_stages=tuple(repr(stage) for stage in stages),
    )


def runs_of(summary: DatasetSummary, slot: str) -> list[RunSummary]:
    """The complete runs a section can show (``slot``: ``"dimension"``, ``"sharpness"``,
    …), newest first."""
    return sorted((r for r in summary.runs if _SLOTS.get(r.method) == slot), key=lambda r: r.timestamp, reverse=True)


def combinable(dimension: RunSummary, sharpness: RunSummary) -> tuple[bool, str]:
    """Whether a d_data run and a K_F run describe the same samples under the same
    preprocessing (a comparison may combine them), and a sentence saying so or why not.

    >>> a = RunSummary("id", "intrinsic_dimension", "t", {"source": "pixels"}, {}, None, 100)
    >>> combinable(a, RunSummary("kf", "label_sharpness", "t", {"source": "pixels"}, {}, None, 100))[0]
    True
    >>> combinable(a, RunSummary("kf", "label_sharpness", "t", {"source": "pixels"}, {}, None, 60,
    ...                          "MatchTags(tags=['test'])", ("MatchTags(tags=['test'])",)))[1]
    "Not combined: d_data run 'id' covers 100 samples (the whole dataset) and K_F run 'kf' covers 60 samples (MatchTags(tags=['test'])); choose runs on the same samples."
    """
    if dimension.view_stages != sharpness.view_stages or dimension.n_samples != sharpness.n_samples:
        return False, (
            f"Not combined: d_data run '{dimension.key}' covers {_samples(dimension)} ({dimension.view}) and "
            f"K_F run '{sharpness.key}' covers {_samples(sharpness)} ({sharpness.view}); choose runs on the same samples."
        )
    if dimension.features != sharpness.features:
        return False, (
            f"Not combined: d_data run '{dimension.key}' used {describe_features(dimension.features)} and K_F run "
            f"'{sharpness.key}' used {describe_features(sharpness.features)}; choose runs of the same preprocessing."
        )
    return True, (
        f"Combines d_data run '{dimension.key}' and K_F run '{sharpness.key}': the same "
        f"{_samples(dimension)} ({dimension.view}), {describe_features(dimension.features)}."
    )


def _samples(run: RunSummary) -> str:
    return f"{run.n_samples:,} samples" if run.n_samples is not None else "an unknown number of samples"


def comparable_summaries(reference: DatasetSummary) -> list[DatasetSummary]:
    """Other datasets of the database with a sharpness or dimension run of the same
    feature fingerprint as ``reference``'s latest sharpness (else dimension) run."""
    import fiftyone as fo

    anchor = reference.sharpness or reference.dimension
    if anchor is None:
        return []
    found = []
    for name, signature in _candidates(reference.name, anchor.features).items():
        with _SUMMARIES_LOCK:
            other = _DATASETS.get((name, signature))
        if other is None:
            try:
                other = summarize_dataset(fo.load_dataset(name))
            except Exception:  # a dataset another tool broke must not break the panel
                continue
            with _SUMMARIES_LOCK:
                _DATASETS[(name, signature)] = other
                while len(_DATASETS) > _SUMMARIES_KEPT:
                    _DATASETS.popitem(last=False)
        if any(r.features == anchor.features for r in (other.sharpness, other.dimension) if r):
            found.append(other)
    return found


#: Dataset summaries by (name, the keys and timestamps of its complete runs).
_DATASETS: "OrderedDict[tuple, DatasetSummary]" = OrderedDict()


def _candidates(exclude: str, features: dict) -> dict:
    """Datasets other than ``exclude`` with a complete sharpness or dimension run of
    ``features``: name → the (key, timestamp) of each of their complete runs of this
    library. Two queries on run documents, without their results."""
    import fiftyone.core.odm as foo

    conn = foo.get_db_conn()
    names, run_ids = {}, []
    for doc in conn.datasets.find({"name": {"$ne": exclude}}, {"name": 1, "runs": 1}):
        names[doc["_id"]] = doc["name"]
        run_ids.extend((doc.get("runs") or {}).values())
    runs, matching = {}, set()
    fields = {"_dataset_id": 1, "key": 1, "timestamp": 1, "config.method": 1, "config.status": 1, "config.features": 1}
    for doc in conn.runs.find({"_id": {"$in": run_ids}, "config.method": {"$in": list(METHODS)}}, fields):
        config = doc.get("config") or {}
        if config.get("status", "complete") != "complete" or doc.get("_dataset_id") not in names:
            continue
        runs.setdefault(doc["_dataset_id"], []).append((doc.get("key"), str(doc.get("timestamp"))))
        if config.get("method") in (SHARPNESS.method, DIMENSION.method) and config.get("features") == features:
            matching.add(doc["_dataset_id"])
    return {names[i]: tuple(sorted(runs[i])) for i in sorted(matching, key=lambda i: names[i])}


def _rank(summary: RunSummary):
    """Which run of a method to show: the paper's MLE estimator first, then the newest."""
    return (getattr(summary.results, "estimator", None) in (None, "mle"), summary.timestamp)


#: Sample tags that name a split; duplicates whose samples carry different ones leak across splits.
SPLIT_TAGS = ("train", "val", "validation", "test")


@dataclass(frozen=True)
class DuplicateGroups:
    """Exact-duplicate groups of a run and those that cross splits.

    Attributes:
        groups: sample ids of each set of identical samples (still in the dataset).
        crossing: the groups whose samples lie in more than one split: the same image
            in, say, train and test. Splits are the tags among :data:`SPLIT_TAGS`, or the
            values of a split field (:func:`duplicate_groups`).
        source: the run key the groups come from.
    """

    groups: list
    crossing: list
    source: Optional[str] = None

    @property
    def ids(self) -> list:
        return [i for group in self.groups for i in group]

    @property
    def crossing_ids(self) -> list:
        return [i for group in self.crossing for i in group]


def split_fields(dataset) -> list:
    """Fields that can hold a sample's split: top-level string fields, and Classification
    fields (their labels), sorted by name."""
    import fiftyone as fo

    strings = dataset.get_field_schema(ftype=fo.StringField)
    labels = dataset.get_field_schema(embedded_doc_type=fo.Classification)
    return sorted(name for name in {**strings, **labels} if name not in ("filepath", "id"))


def default_split_source(dataset) -> Optional[str]:
    """``"split"`` when the dataset has a string field of that name (a common layout),
    else ``None``: the split tags."""
    return "split" if "split" in split_fields(dataset) else None


def duplicate_groups(dataset, run: Optional[RunSummary], split_field: Optional[str] = None) -> DuplicateGroups:
    """The exact-duplicate groups a run stored, and those that cross splits.

    Reads the dimension run's ``duplicate_groups`` or, for a sharpness run, merges its
    ``conflicting_duplicates`` pairs into groups. Splits are the tags among
    :data:`SPLIT_TAGS`, or with ``split_field`` the values of that field (a string field,
    or a Classification's label; a sample without a value is in no split). Costs one
    ``values`` call over the stored ids, never a scan of the dataset.
    """
    if run is None:
        return DuplicateGroups([], [])
    groups = getattr(run.results, "duplicate_groups", None)
    if groups is None:
        groups = _merge_pairs(getattr(run.results, "conflicting_duplicates", None) or [])
    groups = [list(group) for group in groups or []]
    ids = [i for group in groups for i in group]
    if not ids:
        return DuplicateGroups([], [], run.key)
    if split_field is None:
        found, tags = dataset.select(ids).values(["id", "tags"])
        splits = {i: {t for t in sample_tags or [] if t in SPLIT_TAGS} for i, sample_tags in zip(found, tags)}
    else:
        if split_field not in split_fields(dataset):
            raise ValueError(f"{split_field!r} is not a string or Classification field of dataset "
                             f"{dataset.name!r}; split fields: {split_fields(dataset)}.")
        import fiftyone as fo

        path = split_field + ".label" if isinstance(dataset.get_field(split_field), fo.EmbeddedDocumentField) else split_field
        found, values = dataset.select(ids).values(["id", path])
        splits = {i: set() if value is None else {value} for i, value in zip(found, values)}
    # a deleted sample leaves its group; a group of one is no longer a duplicate
    groups = [kept for kept in ([i for i in group if i in splits] for group in groups) if len(kept) > 1]
    crossing = [group for group in groups if len(set().union(*(splits[i] for i in group))) > 1]
    return DuplicateGroups(groups, crossing, run.key)


def _merge_pairs(pairs) -> list:
    """Groups of ids connected by ``pairs`` (identity is transitive), in first-seen order.

    >>> _merge_pairs([["a", "b"], ["c", "d"], ["b", "e"]])
    [['a', 'b', 'e'], ['c', 'd']]
    """
    group_of = {}
    for i, j in pairs:
        merged = group_of.get(i, [i])
        other = group_of.get(j, [j])
        if other is not merged:
            merged.extend(x for x in other if x not in merged)
        for member in merged:
            group_of[member] = merged
    seen, groups = set(), []
    for group in group_of.values():
        if id(group) not in seen:
            seen.add(id(group))
            groups.append(group)
    return groups
