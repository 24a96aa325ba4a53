"""Stable import path of version 0.1.0's run classes.

Runs stored by 0.1.0 record ``fiftyone_intrinsic.runs.IntrinsicRunConfig`` in the
database, and FiftyOne imports that name to load them. The classes and run functions now
live in :mod:`fiftyone_intrinsic.datasets.runs`; this module re-exports them.
"""

from .datasets.runs import (
    IntrinsicRun,
    IntrinsicRunConfig,
    delete_intrinsic_run,
    get_intrinsic_run_info,
    list_intrinsic_runs,
    load_intrinsic_results,
)

__all__ = [
    "IntrinsicRunConfig",
    "IntrinsicRun",
    "list_intrinsic_runs",
    "load_intrinsic_results",
    "get_intrinsic_run_info",
    "delete_intrinsic_run",
]
