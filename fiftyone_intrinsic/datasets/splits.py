"""Auditing one split (tag) of a dataset, and the images other splits share with it.

K_F is an extreme statistic: one pair decides it. Computed over train, val and test at once,
a copy across splits can decide it (BreastMNIST at 28 px: 5.18 over all 780 images, 1.82
on the 546 of train), although such a pair says more about leakage than about the labels. So the
audit measures one split, by default train, and reports separately the images of the other
splits that lie close to it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: ``--split`` value that audits every sample.
ALL = "all"
#: The split audited by default, when the dataset has samples with this tag.
DEFAULT_SPLIT = "train"


def audit_view(dataset, split: str | None):
    """``(samples, split)``: the samples to audit and the split's name (``"all"`` for the
    whole dataset). ``split=None`` takes ``train`` where samples carry that tag, else all.

    Raises:
        ValueError: a split tag that no sample carries (the message lists the tags).
    """
    tags = dataset.count_sample_tags()
    if split is None:
        split = DEFAULT_SPLIT if tags.get(DEFAULT_SPLIT) else ALL
    if split == ALL:
        return dataset, ALL
    if not tags.get(split):
        splits = sorted(tag for tag in tags if ":" not in tag)  # "<run>:<role>" tags are runs' own
        raise ValueError(
            f"--split {split!r}: no sample of dataset {dataset.name!r} has that tag; its tags are "
            f"{splits or 'none'}. Give one of them, or --split all to audit every sample."
        )
    return dataset.match_tags(split), split


@dataclass(frozen=True)
class CrossSplitPair:
    """An image of another split and its nearest image of the audited split.

    Attributes:
        outside_id, inside_id: sample ids (another split, the audited split).
        distance: their L2 distance in feature units (0: identical features).
    """

    outside_id: str
    inside_id: str
    distance: float


def nearest_across_splits(dataset, audited, features, device=None) -> list[CrossSplitPair]:
    """For every sample of ``dataset`` outside ``audited``: its nearest sample inside,
    exactly, in the features ``features`` describes; sorted by distance.

    One exact search over the whole dataset with the pairs inside each side masked out
    (:func:`~fiftyone_intrinsic.core.neighbors.nearest_neighbors` with two groups).
    """
    from ..core.neighbors import nearest_neighbors
    from .features import extract_features

    inside = set(audited.values("id"))
    ids = dataset.values("id")
    if len(inside) == len(ids):
        return []
    matrix = extract_features(dataset, features).matrix
    inner = np.array([i for i, sample_id in enumerate(ids) if sample_id in inside], dtype=np.int64)
    outer = np.array([i for i, sample_id in enumerate(ids) if sample_id not in inside], dtype=np.int64)
    order = np.concatenate([inner, outer])
    found = nearest_neighbors(matrix, 1, rows=order, groups=np.array([0, inner.size, order.size]), device=device)
    pairs = [
        CrossSplitPair(ids[order[position]], ids[order[int(found.indices[position, 0])]], float(found.distances[position, 0]))
        for position in range(inner.size, order.size)
    ]
    return sorted(pairs, key=lambda pair: pair.distance)
