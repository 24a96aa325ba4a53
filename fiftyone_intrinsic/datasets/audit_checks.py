"""What ``fiftyone-intrinsic audit`` checks before it imports, computes or writes anything:
every flag, then the dataset it would audit (opened, reused or still to import) with its
label field, embeddings field and run keys. Importing this module stays light (no torch,
no FiftyOne): ``fiftyone-intrinsic --help`` loads it."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Optional

from ..core.settings import DimensionSettings, Preprocessing, SharpnessSettings
from .schema import DIMENSION, SHARPNESS
from .settings import FeatureSettings

__all__ = ["AUDIT_KEYS", "AuditSettings", "audit_settings", "open_audit_dataset", "check_audit_fields"]

#: The run keys an audit writes: d_data (the chosen estimator), d_data by TwoNN, and K_F.
DIMENSION_KEY, TWONN_KEY, SHARPNESS_KEY = "intrinsic_dimension", "intrinsic_dimension_twonn", "label_sharpness"
AUDIT_KEYS = ((DIMENSION_KEY, DIMENSION), (TWONN_KEY, DIMENSION), (SHARPNESS_KEY, SHARPNESS))


@dataclass(frozen=True)
class AuditSettings:
    """The validated settings of one audit.

    Attributes:
        features: where features come from and how pixels are preprocessed.
        dimension: the d_data estimate stored under ``intrinsic_dimension``.
        twonn: the TwoNN estimate beside it, or ``None`` when ``dimension`` is TwoNN.
        sharpness: the K_F measurement.
        device: ``None`` (auto), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
    """

    features: FeatureSettings
    dimension: DimensionSettings
    twonn: Optional[DimensionSettings]
    sharpness: SharpnessSettings
    device: Optional[str]


def audit_settings(args: argparse.Namespace, *, check_device: bool = True) -> AuditSettings:
    """Every flag of ``audit`` checked at once, before anything is read or written.

    Raises:
        ValueError: a flag out of range (the message names it and the accepted range),
            or a device that is not there (unless ``check_device`` is off, as under
            torchrun, where each rank picks its own).
    """
    if args.paper:
        preprocessing = Preprocessing.paper().model_copy(update={"channels": args.channels})
    else:
        preprocessing = Preprocessing(
            size=args.size, channels=args.channels, value_range=args.value_range,
            normalize_max=args.normalize_max,
        )
    features = FeatureSettings(
        embeddings_field=args.embeddings_field, preprocessing=preprocessing, num_workers=args.num_workers,
    )
    device = None if args.device == "auto" else args.device
    if check_device:
        from ..core.devices import resolve_device  # torch: imported only when auditing

        resolve_device(device)
    dimension = DimensionSettings(
        estimator=args.estimator, k=args.k, duplicate_tolerance=args.duplicate_tolerance,
        max_merged_fraction=args.max_merged_fraction, device=device,
    )
    twonn = None
    if args.estimator != "twonn":
        twonn = DimensionSettings(
            estimator="twonn", duplicate_tolerance=args.duplicate_tolerance,
            max_merged_fraction=args.max_merged_fraction, device=device,
        )
    sharpness = SharpnessSettings(top=args.top, device=device)
    if args.app and not 0 < args.port < 65536:
        raise ValueError(f"--port {args.port} is not a TCP port; give one in 1-65535 (default 5151).")
    return AuditSettings(features, dimension, twonn, sharpness, device)


def open_audit_dataset(args: argparse.Namespace):
    """The dataset ``args.source`` names, once its fields are checked.

    An existing dataset (named by the source, or imported earlier from the same source) has
    its label field, embeddings field and the audit's run keys checked first; a source still
    to import must use the importers' label field and no embeddings field. Only then is
    anything imported.
    """
    import fiftyone as fo

    from .importers import LABEL_FIELD, carry_out, plan_source

    plan = plan_source(args.source, name=args.name, overwrite=args.overwrite)
    if plan.imports:
        if args.label_field != LABEL_FIELD:
            raise ValueError(
                f"--label-field {args.label_field!r}: a source that is imported has its labels "
                f"in {LABEL_FIELD!r}. Leave --label-field out, or audit an existing dataset "
                "that has that field."
            )
        if args.embeddings_field:
            raise ValueError(
                f"--embeddings-field {args.embeddings_field!r}: a source that is imported has "
                "no embeddings yet. Audit its pixels (leave the flag out), or compute "
                "embeddings on the imported dataset and audit it by name."
            )
    else:
        check_audit_fields(fo.load_dataset(plan.name), args.label_field, args.embeddings_field)
    return carry_out(plan, images_dir=args.images_dir, overwrite=args.overwrite)


def check_audit_fields(dataset, label_field: str, embeddings_field: Optional[str] = None) -> None:
    """Refuse a missing or non-Classification ``label_field``, unlabelled samples, a
    missing ``embeddings_field``, and run keys or fields of the audit that belong to
    someone else, before any run is computed or replaced."""
    from .labels import classification_labels
    from .runs import check_names_free, names_of, validate_run_key

    classification_labels(dataset, label_field)
    if embeddings_field and embeddings_field not in dataset.get_field_schema(flat=True):
        raise ValueError(
            f"--embeddings-field {embeddings_field!r} does not exist on dataset "
            f"{dataset.name!r}; compute embeddings into it first or leave the flag out."
        )
    for key, schema in AUDIT_KEYS:
        validate_run_key(dataset, key, True, schema.method)
        owned = names_of(dataset.get_run_info(key).config, key) if key in dataset.list_runs() else None
        check_names_free(dataset, schema.names(key), owned=owned)
