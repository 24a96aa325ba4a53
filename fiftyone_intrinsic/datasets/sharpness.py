"""Label sharpness K_F of a FiftyOne collection, stored as a run, and its pairs view."""

from __future__ import annotations

from typing import Optional

from ..core.neighbors import as_feature_matrix
from ..core.settings import SharpnessSettings
from ..core.sharpness import SharpnessResult, encode_labels, measure_sharpness
from .features import Features, extract_features
from .labels import classification_labels
from .progress import StageReporter, StepProgress
from .results import SharpnessResults
from .claims import claim_run
from .runs import require_method
from .schema import SHARPNESS
from .settings import FeatureSettings, as_feature_settings
from .storage import json_float, json_floats, make_config

__all__ = ["compute_label_sharpness", "load_sharpest_pairs_view", "sharpness_values"]


def compute_label_sharpness(
    samples,
    label_field: str,
    *,
    run_key: str = "label_sharpness",
    top: int = 10,
    features: FeatureSettings | dict | None = None,
    device: Optional[str] = None,
    overwrite: bool = False,
    progress: StepProgress | None = None,
) -> SharpnessResult:
    """Measure the exact label sharpness K_F of a collection and store it as a run.

    Writes ``<run_key>_nearest_other_distance`` (distance to the nearest sample with
    another label) and ``<run_key>_nearest_other_id`` (its id); on the samples of the
    ``top`` sharpest pairs, ``<run_key>_pair_ranks`` (the ranks of the pairs each is in,
    1 = sharpest: a hub sample is in several) and the tag ``<run_key>:sharp_pair``; tags the
    conflicting duplicates (identical inputs, different labels)
    ``<run_key>:conflicting_duplicate``; saves the view ``<run_key>_sharp_pairs`` with the
    conflicting duplicates, then the sharp pairs in rank order, each pair side by side
    unless one of its samples already showed with a sharper pair (the names come from
    :data:`~.schema.SHARPNESS`). The run also owns the tag ``<run_key>:reviewed``, which
    :func:`~.review.mark_reviewed` (or a person, in the App) applies; deleting the run
    removes it from every sample.

    Args:
        samples: a FiftyOne dataset or view.
        label_field: a :class:`fiftyone.core.labels.Classification` field.
        run_key ("label_sharpness"): key of the stored run.
        top (10): sharpest pairs to report and flag.
        features (None): :class:`FeatureSettings` (or a dict of it).
        device (None): ``"auto"``/``None`` (CUDA when present), ``"cpu"`` or ``"cuda"``.
        overwrite (False): replace an existing run with this key (and what it wrote).
        progress (None): ``progress(fraction, label)``; ``None`` shows a progress bar.

    Returns:
        the :class:`SharpnessResult`; indices refer to the collection's order.
    """
    settings = SharpnessSettings(top=top, device=device)
    feature_settings = as_feature_settings(features)
    labels = classification_labels(samples, label_field)
    with claim_run(samples, run_key, SHARPNESS, overwrite=overwrite) as claim:
        result = _measure_and_store(samples, claim, labels, label_field, settings, feature_settings, progress)
    return result


def _measure_and_store(samples, claim, labels, label_field, settings, feature_settings, progress):
    run_key, names = claim.run_key, claim.names
    report = StageReporter(progress)
    report(0.0, "Loading features")
    extracted = extract_features(samples, feature_settings, progress=report.fraction(0.0, 0.5))
    codes, classes = encode_labels(labels, len(labels))
    result = measure_sharpness(
        as_feature_matrix(extracted.matrix), codes, classes, settings,
        report.stage(0.5, 0.95, "Exact pair search"),
    )
    ids = extracted.sample_ids
    pair_ids = [(ids[p.i], ids[p.j]) for p in result.pairs]
    duplicate_ids = [(ids[i], ids[j]) for i, j in result.conflicting_duplicates]
    config = make_config(SHARPNESS.method, settings, extracted.fingerprint(), names, label_field=label_field)

    def write():
        names = claim.names
        samples.set_values(
            names.field("distance"), dict(zip(ids, json_floats(result.nearest_distance))), key_field="id"
        )
        neighbor_ids = [ids[j] if j >= 0 else None for j in result.nearest_index.tolist()]
        samples.set_values(names.field("neighbor"), dict(zip(ids, neighbor_ids)), key_field="id")
        ranks = {}
        for rank, pair in enumerate(pair_ids, start=1):
            for sample_id in dict.fromkeys(pair):
                ranks.setdefault(sample_id, []).append(rank)
        if ranks:
            samples.set_values(names.field("pair_ranks"), ranks, key_field="id")
        dataset = samples._root_dataset
        claim.tag_samples("pair", sorted({i for pair in pair_ids for i in pair}))
        claim.tag_samples("duplicate", sorted({i for pair in duplicate_ids for i in pair}))
        ordered = list(dict.fromkeys(i for pair in duplicate_ids + pair_ids for i in pair))
        claim.save_view(
            "pairs", dataset.select(ordered, ordered=True),
            description=f"Run {run_key!r}: conflicting duplicates, then the {len(pair_ids)} "
            f"sharpest pairs of {label_field!r}, each pair side by side (K_F = {result.k_f:.4g}).",
        )

    claim.store(config, SharpnessResults, sharpness_values(result, extracted), write)
    report(1.0, f"K_F = {result.k_f:.4g}")
    return result


def sharpness_values(result: SharpnessResult, extracted: Features) -> dict:
    """The stored attributes of a :class:`SharpnessResult` (row indices → sample ids)."""
    ids, paths = extracted.sample_ids, extracted.filepaths
    return dict(
        k_f=json_float(result.k_f), min_distance=json_float(result.min_distance),
        pairs=[
            dict(id_i=ids[p.i], id_j=ids[p.j], distance=p.distance, label_i=p.label_i, label_j=p.label_j,
                 filepath_i=paths[p.i], filepath_j=paths[p.j])
            for p in result.pairs
        ],
        conflicting_duplicates=[[ids[i], ids[j]] for i, j in result.conflicting_duplicates],
        classes=[str(c) for c in result.classes],
        class_min_distance=[[json_float(v) for v in row] for row in result.class_min_distance],
        n_samples=result.n_samples, n_duplicates=result.n_duplicates,
    )


def load_sharpest_pairs_view(samples, run_key: str = "label_sharpness"):
    """The saved view of a label-sharpness run: conflicting duplicates, then the sharpest
    pairs, each pair side by side."""
    require_method(samples, run_key, SHARPNESS.method)
    return samples._dataset.load_saved_view(SHARPNESS.names(run_key).view("pairs"))
