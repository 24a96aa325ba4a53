"""The paper's two headline relations on every labelled set in ../shared/data, one protocol.

Konz & Mazurowski (ICLR 2024) relate (1) the exponent of the learning curve to −1/d_data and
(2) adversarial susceptibility (FGSM Δloss, the robust radius R̂) to label sharpness K_F,
across datasets (docs/science.md §1, §6). This script measures both on eight binary tasks:
BreastMNIST, PneumoniaMNIST, MNIST 0v1 and 3v5, Fashion-MNIST 0v1 and 3v5, CIFAR-10 0v1 and
3v5 (natural sets: two classes, as the paper's binary tasks).

Per set:
- d_data (MLE, k = 20, with its interval from disjoint subsamples) and exact K_F at the
  paper's preprocessing (each image divided by its maximum, resized to 224 × 224, [0, 255])
  on a class-balanced subset of the same size for every set (``--n-id``, the most that
  every set allows: CIFAR-10 holds 200 images per class here); optionally again on up to
  the paper's largest training size (``--n-paper 1750``: about 19 times the cost);
- a fixed class-balanced held-out split; the library's built-in small CNN, trained at the
  images' own resolution in [0, 1] (28 × 28 gray, CIFAR-10 32 × 32 RGB) on nested
  class-balanced subsets of the same sizes for every set, several seeds
  (:func:`run_learning_curve`), and the fitted exponent of log L on log N with its
  interval over seeds (:func:`fit_power_law`);
- each seed's model at the largest size attacked on the held-out split
  (:func:`evaluate_robustness`): clean accuracy, FGSM Δloss at 2/255, PGD robust accuracy
  at 1, 2, 4, 8/255, R̂ (mean smallest flipping PGD-L2 perturbation); means over seeds.

Then Pearson and Spearman r of Δloss and of R̂ against K_F, and of the fitted exponent
against −1/d_data, across the sets, with percentile intervals from resampling the sets with
replacement; medical against natural beside the paper's values; three PNG figures.

    .venv/bin/python benchmarks/paper_relations.py            # about an hour on 2 CPU cores
    .venv/bin/python benchmarks/paper_relations.py --quick    # a few minutes: smoke test
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import time
from dataclasses import asdict, dataclass, replace

import numpy as np
import torch

ROOT = pathlib.Path(__file__).resolve().parents[1]
# this checkout's library and the figures module beside this script, whatever is installed
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from relations import correlate, draw_dloss, draw_exponent, draw_rhat  # noqa: E402

from fiftyone_intrinsic.core.dimension import intrinsic_dimension  # noqa: E402
from fiftyone_intrinsic.core.learning_curve import SmallCNN, held_out_split, nested_order, run_learning_curve  # noqa: E402
from fiftyone_intrinsic.core.preprocessing import preprocess_image  # noqa: E402
from fiftyone_intrinsic.core.reference import PAPER_DATASETS  # noqa: E402
from fiftyone_intrinsic.core.scaling import compare_with_law, fit_power_law  # noqa: E402
from fiftyone_intrinsic.core.robustness import evaluate_robustness  # noqa: E402
from fiftyone_intrinsic.core.settings import Preprocessing, RobustnessSettings  # noqa: E402
from fiftyone_intrinsic.core.sharpness import label_sharpness  # noqa: E402
from fiftyone_intrinsic.datasets.importers import read_idx  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
PGD_EPSILONS = (1.0, 2.0, 4.0, 8.0)


@dataclass(frozen=True)
class Protocol:
    """The one protocol every set goes through."""

    n_id: int = 400  # images (balanced) for d_data and K_F, the same for every set
    # the paper's largest training size, for a second d_data / K_F; off by default: at 224 x 224
    # the exact search over 1750 images costs about 19 times that over 400, too much for 2 cores
    n_paper: int = 0
    n_test: int = 120  # held-out images (balanced): test loss and attacks
    sizes: tuple = (35, 50, 70, 100, 140, 200, 280)
    seeds: int = 5
    epochs: int = 30
    min_steps: int = 100
    pgd_steps: int = 10
    bisection_steps: int = 8  # halvings of the smallest flipping budget (R̂)
    resamples: int = 10_000


QUICK = Protocol(n_id=100, n_paper=0, n_test=40, sizes=(40, 80, 160), seeds=2, epochs=1, min_steps=10,
                 pgd_steps=3, bisection_steps=4, resamples=2000)


# --- the sets --------------------------------------------------------------------------------

def _medmnist(name):
    with np.load(DATA / "medical" / f"{name}_28.npz") as archive:
        images = np.concatenate([archive[f"{s}_images"] for s in ("train", "val", "test")])
        labels = np.concatenate([archive[f"{s}_labels"].reshape(-1) for s in ("train", "val", "test")])
    return images, labels.astype(np.int64)


def _idx_pair(folder, a, b):
    images = read_idx(DATA / "natural" / folder / "t10k-images-idx3-ubyte.gz")
    labels = read_idx(DATA / "natural" / folder / "t10k-labels-idx1-ubyte.gz")
    keep = np.flatnonzero((labels == a) | (labels == b))
    return images[keep], (labels[keep] == b).astype(np.int64)


def _cifar_pair(a, b):
    with np.load(DATA / "natural" / "cifar10_test_2000.npz") as archive:
        images, labels = archive["images"], archive["labels"].reshape(-1)
    keep = np.flatnonzero((labels == a) | (labels == b))
    return images[keep], (labels[keep] == b).astype(np.int64)


#: name, domain, loader of (uint8 images (N, H, W) or (N, H, W, 3), 0/1 labels).
SETS = (
    ("BreastMNIST", "medical", lambda: _medmnist("breastmnist")),
    ("PneumoniaMNIST", "medical", lambda: _medmnist("pneumoniamnist")),
    ("MNIST 0v1", "natural", lambda: _idx_pair("mnist_t10k", 0, 1)),
    ("MNIST 3v5", "natural", lambda: _idx_pair("mnist_t10k", 3, 5)),
    ("Fashion-MNIST 0v1", "natural", lambda: _idx_pair("fashion_mnist_t10k", 0, 1)),
    ("Fashion-MNIST 3v5", "natural", lambda: _idx_pair("fashion_mnist_t10k", 3, 5)),
    ("CIFAR-10 0v1", "natural", lambda: _cifar_pair(0, 1)),
    ("CIFAR-10 3v5", "natural", lambda: _cifar_pair(3, 5)),
)


def paper_pixels(images: np.ndarray) -> np.ndarray:
    """``(N, 224·224·C)`` float32: each image divided by its maximum, resized, in [0, 255]."""
    from PIL import Image

    preprocessing = Preprocessing.paper()
    return np.stack([preprocess_image(Image.fromarray(image), preprocessing).reshape(-1).astype(np.float32)
                     for image in images])


def model_images(images: np.ndarray) -> np.ndarray:
    """``(N, C, H, W)`` float32 in [0, 1]: what the model trains and is attacked on."""
    array = images[:, None] if images.ndim == 3 else images.transpose(0, 3, 1, 2)
    # contiguous: torchattacks' PGD-L2 views the perturbation, which fails on a transposed array
    return np.ascontiguousarray(array / 255.0, dtype=np.float32)


# --- one set ---------------------------------------------------------------------------------

def measure_set(name, domain, images, labels, protocol: Protocol, device: str, log) -> dict:
    """Every column of the table for one set."""
    row = {"name": name, "domain": domain, "n_images": int(len(labels))}
    timings = {}

    start = time.perf_counter()
    order = nested_order(labels, seed=0)  # class-balanced prefixes
    capacity = 2 * int(np.bincount(labels).min())
    subset = np.sort(order[: min(protocol.n_id, capacity)])
    pixels = paper_pixels(images[subset])
    d = intrinsic_dimension(pixels, estimator="mle", k=20, device=device)
    sharp = label_sharpness(pixels, labels[subset], top=1, device=device)
    native = label_sharpness(model_images(images[subset]).reshape(len(subset), -1), labels[subset], top=1, device=device)
    row.update(n_id=int(len(subset)), d_data=d.dimension, d_low=d.ci_low, d_high=d.ci_high,
               n_duplicates=d.n_duplicates, k_f=sharp.k_f, n_conflicting=len(sharp.conflicting_duplicates),
               k_f_native=native.k_f)
    if protocol.n_paper:
        larger = np.sort(order[: min(protocol.n_paper, capacity)])
        pixels = paper_pixels(images[larger])
        row.update(n_paper=int(len(larger)),
                   d_data_paper=intrinsic_dimension(pixels, estimator="mle", k=20, interval_splits=0, device=device).dimension,
                   k_f_paper=label_sharpness(pixels, labels[larger], top=1, device=device).k_f)
    del pixels
    timings["d_data, K_F"] = time.perf_counter() - start
    log(f"{name}: d_data and K_F in {timings['d_data, K_F']:.0f} s")

    start = time.perf_counter()
    x = model_images(images)
    _, test_index = held_out_split(labels, protocol.n_test, seed=0)
    trained = []

    def factory(n_classes, channels, size):
        model = SmallCNN(n_classes, channels, size)
        trained.append(model)
        return model

    curve = run_learning_curve(
        x, labels, sizes=protocol.sizes, test_index=test_index, n_seeds=protocol.seeds,
        epochs=protocol.epochs, min_steps=protocol.min_steps, model_factory=factory, device=device,
    )
    # the runner builds one probe model, then one per (seed, size), seeds outer
    models = trained[1:]
    assert len(models) == protocol.seeds * len(protocol.sizes), len(trained)
    largest = [models[r * len(protocol.sizes) + len(protocol.sizes) - 1] for r in range(protocol.seeds)]
    fit = fit_power_law(curve.sizes, curve.losses)
    law = compare_with_law(fit, d_data=d.dimension, d_data_interval=(d.ci_low, d.ci_high), k_f=sharp.k_f)
    row.update(exponent=fit.exponent, exponent_low=fit.exponent_low, exponent_high=fit.exponent_high,
               r_squared=fit.r_squared, agreement=law.agreement, loss_first=float(curve.losses[0].mean()),
               loss_last=float(curve.losses[-1].mean()))
    timings["learning curve"] = time.perf_counter() - start
    log(f"{name}: learning curve in {timings['learning curve']:.0f} s")

    start = time.perf_counter()
    test_x, test_y = x[test_index], labels[test_index]
    per_seed = []
    for r, model in enumerate(largest):
        settings = RobustnessSettings(epsilons=(0.0, *PGD_EPSILONS), pgd_steps=protocol.pgd_steps,
                                      bisection_steps=protocol.bisection_steps, device=device, seed=r)
        report = evaluate_robustness(test_x, model, [str(v) for v in test_y], class_names=curve.class_names,
                                     settings=settings).attacks
        # the model attacked is the one whose test loss the curve recorded
        assert abs(report.clean_loss - curve.losses[-1, r]) < 1e-3 * max(1.0, curve.losses[-1, r]), (
            report.clean_loss, curve.losses[-1, r])
        pgd = report.curves["pgd"]
        per_seed.append([report.clean_accuracy, report.delta_loss, report.r_hat_mean, report.n_unbroken,
                         *[pgd.accuracy[pgd.epsilons.index(e)] for e in PGD_EPSILONS]])
    per_seed = np.array(per_seed, dtype=np.float64)
    mean, sd = per_seed.mean(axis=0), per_seed.std(axis=0, ddof=1) if len(per_seed) > 1 else np.zeros(per_seed.shape[1])
    row.update(clean_accuracy=mean[0], delta_loss=mean[1], delta_loss_sd=sd[1], r_hat=mean[2], r_hat_sd=sd[2],
               n_unbroken=mean[3], pgd_accuracy=mean[4:].tolist())
    timings["attacks"] = time.perf_counter() - start
    row["seconds"] = {k: round(v, 1) for k, v in timings.items()}
    log(f"{name}: " + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()))
    return row


# --- output ----------------------------------------------------------------------------------

def _table(rows, protocol: Protocol) -> str:
    header = ["set", "domain", "N (d, K_F)", "d_data [95% CI]", "K_F ×1e-4", "clean acc", "Δloss FGSM 2/255"]
    header += [f"PGD acc {e:g}/255" for e in PGD_EPSILONS]
    header += ["R̂ (L2)", "fitted exponent [95% CI]", "−1/d_data [CI]", "agreement"]
    if protocol.n_paper:
        header += ["N paper", "d_data at N paper", "K_F ×1e-4 at N paper"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        cells = [r["name"], r["domain"], str(r["n_id"]), f"{r['d_data']:.2f} [{r['d_low']:.2f}, {r['d_high']:.2f}]",
                 f"{r['k_f'] * 1e4:.3f}", f"{r['clean_accuracy']:.3f}", f"{r['delta_loss']:.3f} ± {r['delta_loss_sd']:.3f}"]
        cells += [f"{a:.3f}" for a in r["pgd_accuracy"]]
        cells += [f"{r['r_hat']:.3f} ± {r['r_hat_sd']:.3f}",
                  f"{r['exponent']:.3f} [{r['exponent_low']:.3f}, {r['exponent_high']:.3f}]",
                  f"{-1 / r['d_data']:.3f} [{-1 / r['d_low']:.3f}, {-1 / r['d_high']:.3f}]", r["agreement"]]
        if protocol.n_paper:
            cells += [str(r["n_paper"]), f"{r['d_data_paper']:.2f}", f"{r['k_f_paper'] * 1e4:.3f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _relations(rows, protocol: Protocol) -> dict:
    column = lambda key: np.array([r[key] for r in rows], dtype=np.float64)  # noqa: E731
    k_f = column("k_f")
    relations = {
        "Δloss vs K_F": correlate(k_f, column("delta_loss"), n_resamples=protocol.resamples),
        "R̂ vs K_F": correlate(k_f, column("r_hat"), n_resamples=protocol.resamples),
        "exponent vs −1/d_data": correlate(-1 / column("d_data"), column("exponent"), n_resamples=protocol.resamples),
    }
    if protocol.n_paper:
        relations["Δloss vs K_F at N paper"] = correlate(column("k_f_paper"), column("delta_loss"), n_resamples=protocol.resamples)
        relations["R̂ vs K_F at N paper"] = correlate(column("k_f_paper"), column("r_hat"), n_resamples=protocol.resamples)
        relations["exponent vs −1/d_data at N paper"] = correlate(
            -1 / column("d_data_paper"), column("exponent"), n_resamples=protocol.resamples)
    relations["R̂ vs K_F in model space (28/32 px, [0, 1])"] = correlate(
        column("k_f_native"), column("r_hat"), n_resamples=protocol.resamples)
    return relations


def _paper_relation(resamples):
    with_loss = [r for r in PAPER_DATASETS if r.delta_loss is not None]
    return correlate([r.k_f for r in with_loss], [r.delta_loss for r in with_loss], n_resamples=resamples)


def _domains(rows) -> str:
    lines = ["| | ours: medical | ours: natural | paper: medical | paper: natural |", "|---|---|---|---|---|"]

    def ours(domain, key, scale=1.0):
        values = [r[key] * scale for r in rows if r["domain"] == domain]
        return f"{np.mean(values):.3f} (n={len(values)})"

    def paper(domain, attribute, scale=1.0):
        values = [getattr(r, attribute) * scale for r in PAPER_DATASETS if r.domain == domain]
        return f"{np.mean(values):.3f} (n={len(values)})"

    lines.append(f"| mean K_F ×1e-4 | {ours('medical', 'k_f', 1e4)} | {ours('natural', 'k_f', 1e4)} | "
                 f"{paper('medical', 'k_f', 1e4)} | {paper('natural', 'k_f', 1e4)} |")
    lines.append(f"| mean d_data | {ours('medical', 'd_data')} | {ours('natural', 'd_data')} | "
                 f"{paper('medical', 'd_data')} | {paper('natural', 'd_data')} |")
    lines.append(f"| mean Δloss FGSM 2/255 | {ours('medical', 'delta_loss')} | {ours('natural', 'delta_loss')} | "
                 f"{paper('medical', 'delta_loss')} | {paper('natural', 'delta_loss')} |")
    lines.append(f"| mean R̂ (L2) | {ours('medical', 'r_hat')} | {ours('natural', 'r_hat')} | n/a | n/a |")
    lines.append(f"| mean fitted exponent | {ours('medical', 'exponent')} | {ours('natural', 'exponent')} | n/a | n/a |")
    return "\n".join(lines)


def _how_it_ran(device: str) -> str:
    from threadpoolctl import threadpool_info

    pools = sorted({f"{p['internal_api']} {p.get('version')} {p.get('architecture')} x{p['num_threads']}"
                    for p in threadpool_info()})
    gpu = f" ({torch.cuda.get_device_name()})" if device.startswith("cuda") else ""
    return (f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {device}{gpu}; "
            f"BLAS: {pools}; {os.cpu_count()} CPUs")


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke test: fewer images, 1 epoch, 2 seeds, 3 sizes")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--output", type=pathlib.Path, default=ROOT / "benchmarks" / "output",
                        help="folder of the figures and results.json")
    parser.add_argument("--seeds", type=int, help="override the protocol's seeds")
    parser.add_argument("--epochs", type=int, help="override the protocol's epochs")
    parser.add_argument("--n-paper", type=int, help="also measure d_data and K_F on up to this many images "
                        "(the paper's 1750; about 19 times the cost of 400 at 224 x 224)")
    parser.add_argument("--threads", type=int, default=1,
                        help="CPU threads of torch and of the BLAS (1: on a loaded 2-core machine, two threads "
                        "made the 224 x 224 search 10 times slower and the small CNN 4 times slower)")
    args = parser.parse_args(argv)
    if not DATA.exists():
        raise SystemExit(f"The real image data is missing: {DATA} (see ../shared/data/README.md).")
    protocol = QUICK if args.quick else Protocol()
    if args.seeds:
        protocol = replace(protocol, seeds=args.seeds)
    if args.epochs:
        protocol = replace(protocol, epochs=args.epochs)
    if args.n_paper is not None:
        protocol = replace(protocol, n_paper=args.n_paper)
    torch.set_num_threads(args.threads)
    from threadpoolctl import threadpool_limits

    threadpool_limits(args.threads)
    if args.device.startswith("cuda"):
        torch.set_float32_matmul_precision("highest")
    args.output.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()

    def log(message):
        print(f"[{time.perf_counter() - started:6.0f} s] {message}", file=sys.stderr, flush=True)

    log(f"{'quick' if args.quick else 'full'} protocol: {asdict(protocol)}; {_how_it_ran(args.device)}")
    rows = []
    for name, domain, loader in SETS:
        images, labels = loader()
        rows.append(measure_set(name, domain, images, labels, protocol, args.device, log))

    relations = _relations(rows, protocol)
    paper_relation = _paper_relation(protocol.resamples)
    reference = [r for r in PAPER_DATASETS if r.delta_loss is not None]
    figures = [
        draw_dloss(rows, reference, relations["Δloss vs K_F"], paper_relation, args.output / "dloss_vs_kf.png"),
        draw_rhat(rows, PAPER_DATASETS, relations["R̂ vs K_F"], args.output / "rhat_vs_kf.png"),
        draw_exponent(rows, PAPER_DATASETS, relations["exponent vs −1/d_data"], args.output / "exponent_vs_d.png"),
    ]
    seconds = time.perf_counter() - started

    print(f"How it ran: {_how_it_ran(args.device)}")
    print(f"Protocol ({'quick' if args.quick else 'full'}): d_data (MLE k=20, interval from disjoint subsamples) and exact "
          f"K_F at the paper's preprocessing (per-image max, 224x224, [0, 255]) on {protocol.n_id} class-balanced images "
          f"per set{f' and on up to {protocol.n_paper}' if protocol.n_paper else ''}; built-in SmallCNN at the images' "
          f"own size in [0, 1], Adam 2e-3 cosine, {protocol.epochs} epochs (at least {protocol.min_steps} steps), "
          f"sizes {list(protocol.sizes)}, {protocol.seeds} seeds; {protocol.n_test} held-out images (balanced) for the "
          f"test loss and the attacks on each seed's model at N = {protocol.sizes[-1]} (PGD {protocol.pgd_steps} steps); "
          "attack columns: mean ± sd over seeds; R̂ = mean smallest flipping PGD-L2 perturbation of the correctly "
          "classified images flipped within L2 4 ([0, 1] pixels).")
    print()
    print(_table(rows, protocol))
    print()
    print(f"Correlations across the {len(rows)} sets: estimate [95% percentile interval over "
          f"{protocol.resamples} resamples of the sets with replacement; resamples where a variable is constant "
          "are left out and counted]")
    print()
    print("| relation | Pearson r [95% CI] | Spearman ρ [95% CI] | resamples left out | paper |")
    print("|---|---|---|---|---|")
    paper_text = {"Δloss vs K_F": f"Pearson 0.70 (its text, 11 sets); from the read values: Pearson "
                                  f"{paper_relation['pearson'].text()}, Spearman {paper_relation['spearman'].text()}"}
    for name, relation in relations.items():
        print(f"| {name} | {relation['pearson'].text()} | {relation['spearman'].text()} | "
              f"{relation['pearson'].n_degenerate}/{relation['spearman'].n_degenerate} | {paper_text.get(name, '')} |")
    print()
    print("Medical against natural (means over sets; the paper's from docs/science.md §6, its models and sizes):")
    print()
    print(_domains(rows))
    print()
    print("Figures:")
    for path in figures:
        print(f"- {path}")
    results = {"protocol": asdict(protocol), "device": args.device, "rows": rows, "seconds": round(seconds, 1),
               "relations": {k: {kind: asdict(c) for kind, c in v.items()} for k, v in relations.items()},
               "paper_relation": {kind: asdict(c) for kind, c in paper_relation.items()}}
    (args.output / "results.json").write_text(json.dumps(results, indent=1, default=float))
    print(f"- {args.output / 'results.json'}")
    print(f"\nTotal: {seconds:.0f} s")
    return results


if __name__ == "__main__":
    main()
