"""Read-only summaries of stored runs, for panels and reports: the latest run of each kind
on a dataset, and the other datasets of the database whose runs are comparable."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from .results import IntrinsicResults
from .runs import list_intrinsic_runs, load_intrinsic_results
from .schema import DIMENSION, REPRESENTATION, ROBUSTNESS, SCALING, SHARPNESS

__all__ = [
    "RunSummary", "DatasetSummary", "DuplicateGroups", "summarize_dataset", "comparable_summaries",
    "duplicate_groups", "loglog_slope", "summarize_run",
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


def summarize_dataset(dataset) -> DatasetSummary:
    """Summaries of this library's runs on ``dataset``, the latest of each method."""
    latest, every = {}, []
    for key in list_intrinsic_runs(dataset):
        summary = summarize_run(dataset, key)
        every.append(summary)
        slot = _SLOTS.get(summary.method)
        if slot and (slot not in latest or _rank(summary) > _rank(latest[slot])):
            latest[slot] = summary
    incomplete = list_intrinsic_runs(dataset, status="incomplete")
    return DatasetSummary(name=dataset.name, n_samples=len(dataset), runs=every, incomplete=incomplete, **latest)


def summarize_run(dataset, key: str) -> RunSummary:
    """The summary of one stored run of this library."""
    info = dataset.get_run_info(key)
    return RunSummary(
        key=key, method=info.config.method, timestamp=str(info.timestamp),
        features=dict(getattr(info.config, "features", {}) or {}),
        config={name: value for name, value in info.config.serialize().items() if name not in ("cls", "type")},
        results=load_intrinsic_results(dataset, key),
    )


def comparable_summaries(reference: DatasetSummary) -> list[DatasetSummary]:
    """Other datasets of the database with a sharpness or dimension run of the same
    feature fingerprint as ``reference``'s latest sharpness (else dimension) run."""
    import fiftyone as fo

    anchor = reference.sharpness or reference.dimension
    if anchor is None:
        return []
    found = []
    for name in fo.list_datasets():
        if name == reference.name:
            continue
        try:
            other = summarize_dataset(fo.load_dataset(name))
        except Exception:  # a dataset another tool broke must not break the panel
            continue
        if any(r.features == anchor.features for r in (other.sharpness, other.dimension) if r):
            found.append(other)
    return found


def loglog_slope(x, y) -> Optional[float]:
    """Least-squares slope of log y against log x over the positive pairs (None if < 2).

    >>> round(loglog_slope([1, 10, 100], [4, 0.4, 0.04]), 6)
    -1.0
    """
    pairs = [(a, b) for a, b in zip(x, y) if a and b and a > 0 and b > 0]
    if len(pairs) < 2:
        return None
    lx, ly = np.log([a for a, _ in pairs]), np.log([b for _, b in pairs])
    if np.ptp(lx) == 0:
        return None
    return float(np.polyfit(lx, ly, 1)[0])


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
        crossing: the groups whose samples carry more than one split tag among
            :data:`SPLIT_TAGS`: the same image in, say, train and test.
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


def duplicate_groups(dataset, run: Optional[RunSummary]) -> DuplicateGroups:
    """The exact-duplicate groups a run stored, and those that cross splits.

    Reads the dimension run's ``duplicate_groups`` or, for a sharpness run, merges its
    ``conflicting_duplicates`` pairs into groups. Costs one ``values`` call over the
    stored ids, never a scan of the dataset.
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
    found, tags = dataset.select(ids).values(["id", "tags"])
    splits = {i: {t for t in sample_tags or [] if t in SPLIT_TAGS} for i, sample_tags in zip(found, tags)}
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
