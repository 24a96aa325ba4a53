"""What a run records: its config (settings, feature fingerprint, device, versions, the
names it writes) and its values as JSON. Claiming the key, writing and undoing live in
:mod:`.claims`."""

from __future__ import annotations

import math

import numpy as np

from .runs import CONFIG_CLASSES
from .schema import RunNames

__all__ = ["make_config", "json_floats", "json_float"]


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


def json_floats(values: np.ndarray) -> list:
    """``(N,)`` numbers → list of float, ``None`` for NaN and inf (JSON has neither)."""
    return [float(v) if math.isfinite(v) else None for v in np.asarray(values).tolist()]


def json_float(value):
    """A number → float, or ``None`` for ``None``, NaN and inf."""
    return float(value) if value is not None and math.isfinite(value) else None
