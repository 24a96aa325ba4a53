"""Writing a run: claim its names, build its config, write, save; undo on failure.

Everything is validated and computed before the dataset is touched, so bad input or a
failed computation leaves the dataset's fields, tags, saved views and runs as they were.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from .runs import CONFIG_CLASSES
from .schema import RunNames

__all__ = ["check_free_fields", "make_config", "store_run", "json_floats", "json_float"]


def check_free_fields(samples, run_key: str, names: RunNames) -> None:
    """Refuse to overwrite sample fields that another run or the user owns."""
    dataset = samples._dataset
    owned = set()
    if run_key in dataset.list_runs():
        owned = set(getattr(dataset.get_run_info(run_key).config, "fields", []))
    taken = [f for f in names.fields.values() if dataset.has_sample_field(f) and f not in owned]
    if taken:
        raise ValueError(
            f"Sample field(s) {taken} already exist and were not written by run {run_key!r}; "
            "choose another run key or delete those fields."
        )


def make_config(method: str, settings, features: dict, names: RunNames | None, *, label_field=None, **extra):
    """The config of a run of ``method``: its settings, feature fingerprint, device,
    package versions and every name it writes.

    Args:
        method: a run method (:data:`~fiftyone_intrinsic.datasets.schema.METHODS`).
        settings: the pydantic settings of the computation (its ``device`` is resolved).
        features: the fingerprint of the features it read.
        names: the names it writes (from its schema); ``None`` when it writes none.
        label_field (None): the Classification field it read.
        **extra: further JSON values recorded in the config.
    """
    import fiftyone as fo
    import torch

    from ..core.devices import resolve_device
    from ..version import __version__

    return CONFIG_CLASSES[method](
        settings=settings.model_dump(),
        features=features,
        device=str(resolve_device(settings.device)),
        versions={
            "fiftyone_intrinsic": __version__, "fiftyone": fo.__version__,
            "torch": torch.__version__, "numpy": np.__version__,
        },
        label_field=label_field,
        fields=list(names.fields.values()) if names else [],
        tags=list(names.tags.values()) if names else [],
        saved_views=list(names.saved_views.values()) if names else [],
        **extra,
    )


def store_run(samples, run_key: str, config, results_cls, values: dict, write: Callable[[], None]) -> None:
    """Register the run, write its fields, tags and views, save its typed results; on any
    failure, remove what was written so the dataset is left as it was.

    Args:
        samples: the collection.
        run_key: the run key, already validated.
        config: from :func:`make_config`.
        results_cls: the method's :class:`~fiftyone_intrinsic.datasets.results.IntrinsicResults`.
        values: the results' attributes (JSON).
        write: writes the fields, tags and saved views.

    Under torch.distributed only rank 0 stores anything.
    """
    from ..core.collectives import rank_and_world  # torch: loaded by the computation already

    if rank_and_world()[0] != 0:
        return  # under torch.distributed every rank holds the result; rank 0 alone writes it
    dataset = samples._dataset
    if run_key in dataset.list_runs() and type(dataset.get_run_info(run_key).config) is not type(config):
        # a run stored by 0.1.0 (one config class for every method): FiftyOne overwrites
        # only runs of the same class, so remove it (and what it wrote) as overwrite asks
        dataset.delete_run(run_key)
    dataset.register_run(run_key, config, overwrite=True, cleanup=True)
    try:
        write()
        results = results_cls(dataset, config, run_key, **values)
        dataset.save_run_results(run_key, results, overwrite=True)
    except BaseException:
        dataset.delete_run(run_key)
        raise


def json_floats(values: np.ndarray) -> list:
    """``(N,)`` numbers → list of float, ``None`` for NaN and inf (JSON has neither)."""
    return [float(v) if math.isfinite(v) else None for v in np.asarray(values).tolist()]


def json_float(value):
    """A number → float, or ``None`` for ``None``, NaN and inf."""
    return float(value) if value is not None and math.isfinite(value) else None
