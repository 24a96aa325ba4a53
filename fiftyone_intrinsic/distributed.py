"""Exact d_data and K_F on many processes: the torchrun entry point.

One node, G GPUs (NCCL)::

    torchrun --nproc-per-node G -m fiftyone_intrinsic.distributed \\
        --features features.npy --labels labels.npy --dimension --sharpness --out result.json

CPUs only (gloo), or several nodes (any torchrun launcher, e.g. under SLURM ``srun``)::

    torchrun --nnodes 4 --nproc-per-node 8 --rdzv-backend c10d --rdzv-endpoint HOST:29500 \\
        -m fiftyone_intrinsic.distributed --features /shared/features.npy ...

``features.npy`` is an ``(N, D)`` array on storage every rank can read; each rank maps it
(``numpy.load(..., mmap_mode="r")``) and reads only the tiles it computes. The ranks share
the pairs of tiles (:mod:`fiftyone_intrinsic.core.engine`) and combine their findings with
c10d collectives, so every rank holds the same exact result; rank 0 alone writes ``--out``
(JSON). Without torchrun the same command runs on one process.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
from pathlib import Path

import numpy as np
import torch

from .core.collectives import rank_and_world
from .core.devices import resolve_device

__all__ = ["main", "run", "start_process_group", "process_group_session"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m fiftyone_intrinsic.distributed",
        description="Exact intrinsic dimension and label sharpness of a .npy feature matrix, "
        "shared between the ranks of a torchrun job.",
    )
    parser.add_argument("--features", required=True, type=Path, help="(N, D) .npy array, read as a memmap")
    parser.add_argument("--labels", type=Path, help="(N,) .npy labels (needed by --sharpness)")
    parser.add_argument("--dimension", action="store_true", help="estimate the intrinsic dimension")
    parser.add_argument("--sharpness", action="store_true", help="measure the label sharpness K_F")
    parser.add_argument("--estimator", default="mle", help="dimension estimator (default mle)")
    parser.add_argument("--k", type=int, default=20, help="neighbours of the MLE estimators (default 20)")
    parser.add_argument("--top", type=int, default=10, help="sharpest pairs to report (default 10)")
    parser.add_argument("--device", default=None, help="auto (default), cpu or cuda")
    parser.add_argument("--memory-budget-mib", type=float, default=None,
                        help="working memory of the search per rank, MiB (default 256 on CPU)")
    parser.add_argument("--out", type=Path, help="JSON written by rank 0")
    parser.add_argument("--per-rank", type=Path, help="folder: every rank writes rank<R>.npz (for checks)")
    return parser


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    if not (args.dimension or args.sharpness):
        print("Nothing to do: add --dimension and/or --sharpness.", file=sys.stderr)
        return 2
    if args.sharpness and args.labels is None:
        print("--sharpness needs --labels (an (N,) .npy array).", file=sys.stderr)
        return 2
    taken = [p for p in [args.out] if p is not None and p.exists()]
    if args.per_rank is not None and args.per_rank.is_dir():
        taken += sorted(args.per_rank.glob("rank*.npz"))
    if taken:  # never overwrite a file the user has
        print(f"{taken[0]} exists; choose another --out / --per-rank, or move it away.", file=sys.stderr)
        return 2
    with process_group_session(args.device) as device:
        summary, arrays = run(args, device)
        rank, _ = rank_and_world()
        if rank == 0 and args.out is not None:
            args.out.write_text(json.dumps(summary, indent=2))
        if args.per_rank is not None:
            args.per_rank.mkdir(parents=True, exist_ok=True)
            np.savez(args.per_rank / f"rank{rank}.npz", **arrays)
        if rank == 0:
            print(json.dumps(summary, indent=2))
    return 0


@contextlib.contextmanager
def process_group_session(device_name=None):
    """Join the torchrun process group (:func:`start_process_group`) for the body, then
    leave it; yields the device.

    On success every rank meets at a barrier before leaving. On a failure the rank leaves
    *without* the barrier, so that it never waits in a collective the other ranks will not
    join: they may be inside the search's own collectives. When its process exits, theirs
    fail ("Connection closed by peer") instead of waiting forever, and torchrun stops the
    job with the failing rank's error. A rank whose collective failed that way says so in
    one line, without a traceback. While a rank cleans up after any failure (e.g. rank 0
    removing what its run wrote), the SIGTERM torchrun sends it once another rank has
    exited is held back, so the clean-up finishes (torchrun sends SIGKILL after 30 s).
    """
    device = start_process_group(device_name)
    previous = _hold_sigterm_during_cleanup()
    try:
        yield device
    except BaseException as error:
        if torch.distributed.is_initialized():
            rank = torch.distributed.get_rank()
            torch.distributed.destroy_process_group()
            if _peer_failed(error):
                print(f"\nrank {rank}: stopped because another rank of the job failed (see that "
                      "rank's error).", file=sys.stderr)
                raise SystemExit(1) from None
            if isinstance(error, Exception):
                print(f"\nrank {rank} failed:", file=sys.stderr)  # its traceback follows
        raise
    else:
        if torch.distributed.is_initialized():
            torch.distributed.barrier()
            torch.distributed.destroy_process_group()
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _peer_failed(error: BaseException) -> bool:
    """Whether ``error`` is a collective failing because another rank's process exited."""
    return isinstance(error, RuntimeError) and any(
        text in str(error) for text in ("Connection closed by peer", "Connection reset by peer")
    )


def _hold_sigterm_during_cleanup():
    """Install a SIGTERM handler that ends the process (``SystemExit(143)``, so ``finally``
    blocks run) unless it is already unwinding from an exception, when the signal is
    ignored so that the clean-up is not cut short. Returns the previous handler (``None``
    outside the main thread, where handlers cannot be set)."""

    def on_sigterm(signum, frame):
        if sys.exc_info()[0] is None:
            print(f"\nrank {os.environ.get('RANK', '?')}: stopped by SIGTERM (torchrun stops every rank "
                  "once one has failed).", file=sys.stderr)
            raise SystemExit(128 + signal.SIGTERM)

    try:
        return signal.signal(signal.SIGTERM, on_sigterm)
    except ValueError:  # not the main thread
        return None


def start_process_group(device_name=None) -> torch.device:
    """Join the torchrun process group when launched by torchrun (gloo on CPUs, NCCL on
    GPUs: each rank on the GPU of its ``LOCAL_RANK``) and return the device to use."""
    device = resolve_device(device_name)
    if "WORLD_SIZE" in os.environ and not torch.distributed.is_initialized():
        if device.type == "cuda":
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
            torch.cuda.set_device(device)
        torch.distributed.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return device


def run(args, device):
    """The measures asked for: a JSON-able summary and the per-row arrays."""
    from .core.dimension import intrinsic_dimension
    from .core.sharpness import label_sharpness

    X = np.load(args.features, mmap_mode="r")
    budget = None if args.memory_budget_mib is None else int(args.memory_budget_mib * 2**20)
    rank, world = rank_and_world()
    summary = {"n_samples": int(X.shape[0]), "n_features": int(X.shape[1]), "world_size": world, "device": str(device)}
    arrays = {"rank": np.array(rank), "world_size": np.array(world)}
    if args.dimension:
        blocks = []
        result = intrinsic_dimension(
            X, estimator=args.estimator, k=args.k, device=device, memory_budget=budget,
            progress=lambda done, total: blocks.append(done),
        )
        summary["dimension"] = {
            "estimator": result.estimator, "dimension": result.dimension, "ci_low": result.ci_low,
            "ci_high": result.ci_high, "k": result.k, "n_duplicates": result.n_duplicates,
        }
        arrays.update(dimension=np.array(result.dimension), local=result.local, dimension_blocks=np.array(len(blocks)))
    if args.sharpness:
        labels = np.load(args.labels, allow_pickle=False)
        blocks = []
        result = label_sharpness(
            X, labels, top=args.top, device=device, memory_budget=budget,
            progress=lambda done, total: blocks.append(done),
        )
        summary["sharpness"] = {
            "k_f": result.k_f, "min_distance": result.min_distance,
            "pairs": [[p.i, p.j, p.distance] for p in result.pairs],
            "conflicting_duplicates": [list(pair) for pair in result.conflicting_duplicates],
            "n_duplicates": result.n_duplicates,
        }
        arrays.update(
            k_f=np.array(result.k_f), pairs=np.array([[p.i, p.j] for p in result.pairs]).reshape(-1, 2),
            pair_distances=np.array([p.distance for p in result.pairs]),
            nearest_distance=result.nearest_distance, nearest_index=result.nearest_index,
            class_min_distance=result.class_min_distance, sharpness_blocks=np.array(len(blocks)),
        )
    return summary, arrays


if __name__ == "__main__":
    sys.exit(main())
