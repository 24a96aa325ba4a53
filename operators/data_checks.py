"""Checks a form runs on the data itself (image files, binary vectors), so that what would
fail at execution is a form message before the user clicks Execute.

These read every sample of the view, so they run only on views of up to
:data:`CHECK_LIMIT` samples, and their answers are cached per view *state*: the view's
stages, its sample count and the newest ``last_modified_at`` of its samples. Typing in the
form then costs one small aggregation, not a new scan; an edit to any sample of the view
(or a file replaced on disk after the scan, which the cache cannot see) is caught again at
execution, with the same message.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict

import numpy as np

import fiftyone as fo

from fiftyone_intrinsic.datasets.image_headers import ImageHeaders, read_image_headers

#: Views up to this many samples are checked on the form (image headers: about 2 s per
#: 50,000 files, once per view state); larger ones are checked when the data are read.
CHECK_LIMIT = 50_000

#: Binary vector fields are read for the form only up to this many numbers (float32: 100 MB).
VECTOR_CHECK_LIMIT = 25_000_000

_CACHE: OrderedDict = OrderedDict()
_CACHE_SIZE = 16
_CACHE_LOCK = threading.Lock()


def view_state(view) -> tuple:
    """A key that changes when the view's definition, size or any of its samples changes."""
    count, newest = view.aggregate([fo.Count(), fo.Max("last_modified_at")])
    stages = json.dumps(view._serialize(), sort_keys=True, default=str)
    return view._root_dataset.name, stages, count, str(newest)


def cached(view, what: str, compute):
    """``compute()``, remembered for this view state and ``what`` (a string naming the
    check and every input it depends on besides the view)."""
    key = (*view_state(view), what)
    with _CACHE_LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
    value = compute()
    with _CACHE_LOCK:
        _CACHE[key] = value
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return value


def image_headers(view) -> ImageHeaders | None:
    """The view's image files, checked from their headers alone (``None`` for views over
    :data:`CHECK_LIMIT` samples)."""
    if len(view) > CHECK_LIMIT:
        return None
    return cached(view, "image_headers", lambda: read_image_headers(view.values("filepath")))


def non_finite_vectors(view, field_name: str) -> int | None:
    """Samples of ``view`` whose binary vector ``field_name`` holds NaN or ±inf; ``None``
    when the view is too large to read for a form (it is checked at execution then)."""
    n_samples = len(view)
    first = view.exists(field_name).limit(1).values(field_name)
    length = int(np.asarray(first[0]).size) if first else 0
    if n_samples > CHECK_LIMIT or n_samples * length > VECTOR_CHECK_LIMIT:
        return None
    return cached(view, f"non_finite:{field_name}", lambda: _count_non_finite(view, field_name))


def _count_non_finite(view, field_name: str) -> int:
    bad = 0
    for start in range(0, len(view), 5_000):  # batches: never the whole field at once
        for value in view.skip(start).limit(5_000).values(field_name):
            if value is not None and not np.isfinite(np.asarray(value, dtype=np.float64)).all():
                bad += 1
    return bad
