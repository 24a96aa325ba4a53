"""The review queue of a label-sharpness run: marking its sharp pairs reviewed, counting
them, and the next samples to look at.

A sample is marked reviewed by the run's tag ``<run_key>:reviewed``, an ordinary FiftyOne
sample tag: :func:`mark_reviewed` applies it, and so may a person in the App's tagging
menu. A pair counts as reviewed when both of its samples carry it. The tag belongs to the
run (its name is the run's): deleting or overwriting the run removes it from every sample,
so review under a new run key to keep an earlier run's marks.
"""

from __future__ import annotations

from typing import Sequence

from .runs import check_names_free, is_complete, incomplete_message, names_of, require_method
from .schema import SHARPNESS, RunNames

__all__ = ["reviewed_tag", "mark_reviewed", "unmark_reviewed", "reviewed_pairs", "review_next_view"]


def reviewed_tag(run_key: str) -> str:
    """The tag that marks a sample of run ``run_key`` reviewed.

    >>> reviewed_tag("label_sharpness")
    'label_sharpness:reviewed'
    """
    return SHARPNESS.names(run_key).tag("reviewed")


def mark_reviewed(samples, run_key: str, sample_ids: Sequence[str]) -> str:
    """Tag ``sample_ids`` (e.g. the two samples of a sharp pair) reviewed for run
    ``run_key``; returns the tag.

    A run stored before review marks existed claims its tag here first: the tag must not
    be on any sample yet (it would be yours, not the run's).

    Raises:
        ValueError: no such label-sharpness run, an incomplete run, or a tag that exists
            and the run does not own.
    """
    dataset = samples._root_dataset
    info = require_method(dataset, run_key, SHARPNESS.method, "a label-sharpness run")
    config = info.config
    if not is_complete(config):
        raise ValueError(incomplete_message(dataset, run_key, config))
    tag = reviewed_tag(run_key)
    if tag not in (getattr(config, "tags", None) or []):
        check_names_free(dataset, RunNames(fields={}, tags={"reviewed": tag}, saved_views={}))
        recorded = names_of(config, run_key)
        config.tags = list(getattr(config, "tags", None) or []) + [tag]
        if getattr(config, "names", None):
            config.names = dict(fields=dict(recorded.fields), tags={**recorded.tags, "reviewed": tag},
                                saved_views=dict(recorded.saved_views))
        dataset.update_run_config(run_key, config)  # recorded first: deleting the run removes it
    dataset.select(list(sample_ids)).tag_samples(tag)
    return tag


def unmark_reviewed(samples, run_key: str, sample_ids: Sequence[str]) -> None:
    """Remove the reviewed tag of run ``run_key`` from ``sample_ids``. Every pair that
    shares one of them counts as not reviewed again."""
    dataset = samples._root_dataset
    require_method(dataset, run_key, SHARPNESS.method, "a label-sharpness run")
    dataset.select(list(sample_ids)).untag_samples(reviewed_tag(run_key))


def reviewed_pairs(samples, run_key: str, pairs: Sequence[Sequence[str]]) -> list[bool]:
    """For each pair of sample ids, whether both samples carry the reviewed tag of
    ``run_key``. One query over the pairs' samples."""
    ids = list(dict.fromkeys(i for pair in pairs for i in pair))
    if not ids:
        return []
    tagged = set(samples._root_dataset.select(ids).match_tags(reviewed_tag(run_key)).values("id"))
    return [all(i in tagged for i in pair) for pair in pairs]


def review_next_view(samples, run_key: str, n: int = 25):
    """The ``n`` samples of run ``run_key`` closest to an image of another label, not yet
    reviewed, closest first (conflicting duplicates, at distance 0, lead). Mutual nearest
    neighbours have equal distances, so the two images of a sharp pair stand together."""
    dataset = samples._root_dataset
    require_method(dataset, run_key, SHARPNESS.method, "a label-sharpness run")
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"The number of samples to review must be an integer of at least 1; got {n!r}.")
    distance = SHARPNESS.names(run_key).field("distance")
    # no index: creating one would leave an index the run does not own on the dataset
    return (dataset.exists(distance).match_tags(reviewed_tag(run_key), bool=False)
            .sort_by(distance, create_index=False).limit(n))
