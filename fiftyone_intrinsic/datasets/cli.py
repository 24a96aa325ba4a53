"""``fiftyone-intrinsic audit``: import a labelled image set into FiftyOne, measure its
intrinsic dimension and label sharpness, store the runs, and print a readable report."""

from __future__ import annotations

import argparse
import os
import sys

from ..core.estimators import collapsed
from ..core.settings import DimensionSettings, Preprocessing, SharpnessSettings, setting_spec
from .audit_checks import DIMENSION_KEY, SHARPNESS_KEY, TWONN_KEY, audit_settings, open_audit_dataset
from .settings import FeatureSettings

__all__ = ["main", "build_parser", "run_audit", "format_report", "manage_runs"]


def _add_setting(parser, flag: str, model, name: str, help_text: str | None = None, **overrides):
    """An option whose type, default, choices and help come from a settings field."""
    spec = setting_spec(model, name)
    shown = "" if spec.default is None else f" (default: {spec.default})"
    options = dict(default=spec.default, help=(help_text or spec.description) + shown)
    if spec.choices is not None:
        options["choices"] = spec.choices
    if spec.type in (int, float, str):
        options["type"] = spec.type
    options.update(overrides)
    parser.add_argument(flag, **options)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fiftyone-intrinsic",
        description="Audit image datasets in FiftyOne by their intrinsic properties "
        "(Konz & Mazurowski, ICLR 2024).",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    audit = commands.add_parser(
        "audit",
        help="measure d_data and K_F of a dataset and store them as FiftyOne runs",
        description="Measure the intrinsic dimension d_data and the exact label sharpness "
        "K_F of a labelled image dataset, store both as FiftyOne runs, and print a report.",
    )
    audit.add_argument(
        "source", nargs="?", default=None,
        help="FiftyOne dataset name, MedMNIST .npz, IDX folder, or image folder tree (one "
        "subfolder per class). Default: scikit-learn's digits, which ship with scikit-learn.",
    )
    audit.add_argument(
        "--name",
        help="dataset name for imported files (default: from the file name); letters, digits, "
        "'_', '-' and '.'. A dataset of that name imported earlier from the same, unchanged "
        "source is reused; any other dataset of that name is left alone and the audit stops",
    )
    audit.add_argument(
        "--overwrite", action="store_true",
        help="replace a dataset of that name that the source did not create (or re-import the "
        "source): the old dataset, with its samples, fields and runs, is deleted once the new "
        "import is complete; its image files stay where they are",
    )
    audit.add_argument("--label-field", default="ground_truth", help="Classification field (default: ground_truth)")
    audit.add_argument(
        "--split", default=None, metavar="TAG",
        help="audit only the samples with this tag (train, val, test, ...); 'all' audits every "
        "sample. Default: train when samples are tagged train (MedMNIST and IDX imports are), "
        "else all. Images of other splits close to the audited ones are reported separately",
    )
    audit.add_argument("--embeddings-field", help="use this field's vectors instead of pixels")
    _add_setting(audit, "--size", Preprocessing, "size", metavar="SIZE")
    _add_setting(audit, "--channels", Preprocessing, "channels")
    _add_setting(audit, "--range", Preprocessing, "value_range", dest="value_range")
    audit.add_argument("--normalize-max", action="store_true",
                       help=setting_spec(Preprocessing, "normalize_max").description)
    audit.add_argument("--paper", action="store_true",
                       help="the paper's preprocessing: each image divided by its maximum, then 224 x 224, [0, 255]")
    _add_setting(audit, "--estimator", DimensionSettings, "estimator",
                 "intrinsic-dimension estimator (TwoNN is run beside any other)")
    _add_setting(audit, "--k", DimensionSettings, "k")
    _add_setting(audit, "--duplicate-tolerance", DimensionSettings, "duplicate_tolerance")
    _add_setting(audit, "--max-merged-fraction", DimensionSettings, "max_merged_fraction")
    _add_setting(audit, "--top", SharpnessSettings, "top")
    audit.add_argument("--device", default="auto", help="auto (default), cpu or cuda")
    audit.add_argument(
        "--distributed", action="store_true",
        help="under torchrun: share the exact searches between the ranks (gloo on CPUs, NCCL on "
        "GPUs); rank 0 imports the source, stores the runs and prints the report",
    )
    audit.add_argument(
        "--images-dir",
        help="where PNGs of array sources are written (default: a new folder under FiftyOne's "
        "dataset folder); files already there are never replaced: the import stops instead",
    )
    _add_setting(audit, "--num-workers", FeatureSettings, "num_workers")
    audit.add_argument("--app", action="store_true",
                       help="then launch the FiftyOne App with the Intrinsic properties panel beside the grid")
    audit.add_argument("--port", type=int, default=5151, help="App port with --app (default: 5151)")
    runs = commands.add_parser(
        "runs",
        help="list a dataset's runs, complete or incomplete, or delete one",
        description="List the fiftyone_intrinsic runs of a FiftyOne dataset with their status "
        "(incomplete: being computed, or stopped before it finished), or delete one with what "
        "it wrote.",
    )
    runs.add_argument("dataset", help="FiftyOne dataset name")
    runs.add_argument("--delete", metavar="KEY",
                      help="delete this run (complete or incomplete) and the fields, tags and saved views it wrote")
    return parser


def main(argv=None) -> int:
    os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")
    os.environ.setdefault("FIFTYONE_DATABASE_VALIDATION", "false")
    args = build_parser().parse_args(argv)
    if args.command == "runs":
        try:
            print(manage_runs(args.dataset, delete=args.delete))
        except ValueError as error:
            print(f"fiftyone-intrinsic: error: {error}", file=sys.stderr)
            return 2
        return 0
    if args.distributed:
        return _distributed_audit(args)
    try:
        print(run_audit(args))
    except (ValueError, TypeError) as error:
        print(f"fiftyone-intrinsic: error: {error}", file=sys.stderr)
        return 2
    if args.app:
        launch_app(args.dataset_name, args.port)
    return 0


def manage_runs(dataset_name: str, delete: str | None = None) -> str:
    """The ``runs`` command: a table of the dataset's runs (key, method, status, date, view),
    or the deletion of run ``delete``; returns the text to print."""
    import fiftyone as fo

    from .runs import delete_intrinsic_run, get_intrinsic_run_info, list_intrinsic_runs, run_status

    if not fo.dataset_exists(dataset_name):
        raise ValueError(f"No FiftyOne dataset named {dataset_name!r}; datasets: {fo.list_datasets()}.")
    dataset = fo.load_dataset(dataset_name)
    if delete is not None:
        config = get_intrinsic_run_info(dataset, delete).config
        delete_intrinsic_run(dataset, delete)
        written = [*config.fields, *config.tags, *config.saved_views]
        return f"Deleted run {delete!r} ({run_status(config)}) and what it wrote: {', '.join(written) or 'nothing'}."
    keys = list_intrinsic_runs(dataset, status=None)
    if not keys:
        return f"Dataset {dataset_name!r} has no fiftyone_intrinsic runs."
    lines = [f"{'run key':<32} {'method':<26} {'status':<11} {'started (UTC)':<20} samples"]
    total, statuses = len(dataset), []
    for key in keys:
        info = get_intrinsic_run_info(dataset, key)
        statuses.append(run_status(info.config))
        covered = len(dataset.load_run_view(key))
        lines.append(
            f"{key:<32} {info.config.method:<26} {statuses[-1]:<11} "
            f"{info.timestamp:%Y-%m-%d %H:%M:%S}  {covered:,}" + ("" if covered == total else f" of {total:,}")
        )
    if "incomplete" in statuses:
        lines.append(
            f"\nIncomplete runs are being computed, or were stopped before they finished; once "
            f"their process is gone, delete one with: fiftyone-intrinsic runs {dataset_name} --delete KEY"
        )
    return "\n".join(lines)


def launch_app(dataset_name: str, port: int) -> None:
    """Open the App on the audited dataset with the panel beside the grid; blocks until
    the App is closed (Ctrl-C)."""
    import fiftyone as fo

    spaces = fo.Space(
        children=[fo.Panel(type="Samples", pinned=True), fo.Panel(type="intrinsic_properties")],
        orientation="horizontal",
    )
    session = fo.launch_app(fo.load_dataset(dataset_name), spaces=spaces, port=port, address="127.0.0.1")
    print(f"The App is at http://127.0.0.1:{port}; press Ctrl-C to stop.")
    session.wait(-1)


def _distributed_audit(args: argparse.Namespace) -> int:
    """``audit`` on every rank of a torchrun job: rank 0 imports the source and the others
    wait for it; all measure together; rank 0 stores the runs and prints the report."""
    import torch

    from ..distributed import process_group_session

    if "WORLD_SIZE" not in os.environ:
        print("fiftyone-intrinsic: error: --distributed runs under torchrun, e.g. "
              "torchrun --nproc-per-node 2 -m fiftyone_intrinsic.datasets.cli audit ... --distributed",
              file=sys.stderr)
        return 2
    try:
        audit_settings(args, check_device=False)  # every rank, before anything is imported
    except (ValueError, TypeError) as error:
        print(f"fiftyone-intrinsic: error: {error}", file=sys.stderr)
        return 2
    with process_group_session(None if args.device == "auto" else args.device) as device:
        args.device = str(device)
        rank = torch.distributed.get_rank()
        name = [None]
        if rank == 0:
            try:
                name = [open_audit_dataset(args).name]
            except (ValueError, TypeError) as error:
                print(f"fiftyone-intrinsic: error: {error}", file=sys.stderr)
        torch.distributed.broadcast_object_list(name, src=0)
        if name[0] is None:
            return 2  # every rank: rank 0 said why
        args.source, args.imported = name[0], True
        try:
            report = run_audit(args)
        except (ValueError, TypeError) as error:
            # a checked bad input: the same on every rank; a rank that alone finds one
            # leaves at once, so the others' collectives fail instead of waiting for it
            print(f"fiftyone-intrinsic: error: {error}", file=sys.stderr)
            raise SystemExit(2) from None
        if rank == 0:
            print(report)
    return 0


def run_audit(args: argparse.Namespace) -> str:
    """Check every flag, then the dataset and its fields; import (when needed), measure,
    store (replacing the audit's own earlier runs); returns the report text."""
    from ..core.collectives import rank_and_world
    from .dimension import compute_intrinsic_dimension
    from .sharpness import compute_label_sharpness

    distributed = getattr(args, "imported", False)  # a distributed run: rank 0 imported it
    settings = audit_settings(args, check_device=not distributed)
    if distributed:
        import fiftyone as fo

        dataset = fo.load_dataset(args.source)
    else:
        dataset = open_audit_dataset(args)
    from .splits import ALL, audit_view, nearest_across_splits

    samples, split = audit_view(dataset, args.split)
    common = dict(features=settings.features, device=settings.device, overwrite=True)
    dimension = compute_intrinsic_dimension(
        samples, estimator=settings.dimension.estimator, k=settings.dimension.k,
        duplicate_tolerance=settings.dimension.duplicate_tolerance,
        max_merged_fraction=settings.dimension.max_merged_fraction, **common,
    )
    twonn = None
    if settings.twonn is not None:
        twonn = compute_intrinsic_dimension(
            samples, run_key=TWONN_KEY, estimator="twonn",
            duplicate_tolerance=settings.twonn.duplicate_tolerance,
            max_merged_fraction=settings.twonn.max_merged_fraction, **common,
        )
    sharpness = compute_label_sharpness(
        samples, args.label_field, run_key=SHARPNESS_KEY, top=settings.sharpness.top, **common,
    )
    args.dataset_name = dataset.name
    # every rank joins this search (under torchrun its blocks are shared between them)
    pairs = nearest_across_splits(dataset, samples, settings.features, settings.device) if split != ALL else []
    if rank_and_world()[0] != 0:
        return ""  # distributed: rank 0 stored the runs and reports them
    report = format_report(dataset, dimension, twonn, sharpness)
    return report + "\n" + format_splits(dataset, samples, split, pairs, sharpness.min_distance)


def format_splits(dataset, samples, split: str, pairs, min_distance: float) -> str:
    """Which split was audited, and the images of other splits closest to it (``pairs``,
    from :func:`~.splits.nearest_across_splits`): identical ones (leakage) and those
    closer than the audited split's sharpest pair."""
    from .splits import ALL

    if split == ALL:
        return f"Audited: all {len(dataset):,} samples (--split TAG audits one split)."
    lines = [f"Audited split: {split!r} ({len(samples):,} of {len(dataset):,} samples; --split all audits every sample)."]
    identical = [p for p in pairs if p.distance == 0.0]
    close = [p for p in pairs if 0.0 < p.distance < min_distance]
    lines.append(
        f"  images of other splits identical to one of {split!r}: {len(identical)}; closer to one than "
        f"{split!r}'s sharpest pair ({min_distance:.4g}): {len(close)}"
    )
    for pair in (identical + close)[:5]:
        outside, inside = dataset[pair.outside_id], dataset[pair.inside_id]
        lines.append(f"    d={pair.distance:.4g}  {outside.filepath} {sorted(outside.tags)}  <->  {inside.filepath}")
    return "\n".join(lines)


def format_report(dataset, dimension, twonn, sharpness) -> str:
    """A plain-text report of one audit."""
    from .describe import describe_features
    from .runs import get_intrinsic_run_info, load_intrinsic_results
    from .schema import SHARPNESS

    config = get_intrinsic_run_info(dataset, SHARPNESS_KEY).config
    features, label_field = config.features, config.label_field
    stored = load_intrinsic_results(dataset, SHARPNESS_KEY)
    dim_info = load_intrinsic_results(dataset, DIMENSION_KEY)
    lines = [
        f"Dataset {dataset.name!r}: {dimension.n_samples} samples, "
        f"{len(sharpness.classes)} classes {sharpness.classes[:10]}",
        f"Features: {describe_features(features)}",
        "",
        "Intrinsic dimension d_data",
        f"  {dimension.estimator} (k={dimension.k}): {dimension.dimension:.2f}"
        f"  [{100 * dimension.confidence:.0f}% CI {dimension.ci_low:.2f} - {dimension.ci_high:.2f}]",
    ]
    if twonn is not None:
        interval = ("[no interval: collapsed far below MLE, see the note]" if collapsed(twonn.dimension, dimension.dimension)
                    else f"[CI {twonn.ci_low:.2f} - {twonn.ci_high:.2f}]")
        lines.append(f"  twonn (discard {twonn.discard_fraction:.0%}): {twonn.dimension:.2f}  {interval}")
    lines.append(f"  exact duplicates removed first: {dimension.n_duplicates}")
    if dimension.duplicate_tolerance:
        n_distinct = dimension.n_samples - dimension.n_duplicates
        lines.append(
            f"  near-duplicates merged: {dimension.n_near_duplicates} of {n_distinct} distinct samples "
            f"({dimension.n_near_duplicates / n_distinct:.1%}), each into a kept sample closer than "
            f"{dimension.duplicate_distance:.4g} ({dimension.duplicate_tolerance:g} x the median "
            "nearest-neighbour distance)"
        )
    if twonn is not None and collapsed(twonn.dimension, dimension.dimension):
        lines.append(
            "  note: TwoNN is far below MLE, the mark of near-duplicate images (tiny first-"
            "neighbour distances); MLE bends far less. To see how much they weigh, rerun with "
            "--duplicate-tolerance (0.2 to 0.5) and --max-merged-fraction above the share it reports."
        )
    for group in dim_info.duplicate_groups[:5]:
        lines.append(f"    identical: {', '.join(dataset[i].filepath for i in group[:4])}")
    lines += [
        "",
        "Label sharpness K_F (1 / smallest distance between differently-labelled samples)",
        f"  K_F = {sharpness.k_f:.6g}   (min distance {sharpness.min_distance:.6g})",
        f"  conflicting duplicates (identical inputs, different labels): "
        f"{len(sharpness.conflicting_duplicates)}",
    ]
    for id_i, id_j in stored.conflicting_duplicates[:5]:
        a, b = dataset[id_i], dataset[id_j]
        lines.append(
            f"    {a.filepath} [{a[label_field].label}] == {b.filepath} [{b[label_field].label}]"
        )
    lines.append("  sharpest pairs:")
    for rank, pair in enumerate(stored.pairs, start=1):
        lines.append(
            f"   {rank:>2}. d={pair['distance']:.4g}  {pair['filepath_i']} [{pair['label_i']}]"
            f"  <->  {pair['filepath_j']} [{pair['label_j']}]"
        )
    keys = [DIMENSION_KEY, *([TWONN_KEY] if twonn else []), SHARPNESS_KEY]
    lines += [
        "",
        f"Stored runs: {', '.join(keys)}; saved view '{SHARPNESS.names(SHARPNESS_KEY).view('pairs')}'.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
