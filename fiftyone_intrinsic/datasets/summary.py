"""Read-only summaries of stored runs, for panels and reports: the latest run of each kind
on a dataset, and the other datasets of the database whose runs are comparable."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from .results import IntrinsicResults
from .runs import list_intrinsic_runs, load_intrinsic_results
from .schema import DIMENSION, REPRESENTATION, ROBUSTNESS, SCALING, SHARPNESS

__all__ = ["RunSummary", "DatasetSummary", "summarize_dataset", "comparable_summaries", "loglog_slope"]


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
        info = dataset.get_run_info(key)
        summary = RunSummary(
            key=key, method=info.config.method, timestamp=str(info.timestamp),
            features=dict(getattr(info.config, "features", {}) or {}),
            config={name: value for name, value in info.config.serialize().items() if name not in ("cls", "type")},
            results=load_intrinsic_results(dataset, key),
        )
        every.append(summary)
        slot = _SLOTS.get(summary.method)
        if slot and (slot not in latest or _rank(summary) > _rank(latest[slot])):
            latest[slot] = summary
    incomplete = list_intrinsic_runs(dataset, status="incomplete")
    return DatasetSummary(name=dataset.name, n_samples=len(dataset), runs=every, incomplete=incomplete, **latest)


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
