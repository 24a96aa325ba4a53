"""Fitted scaling exponents beside −1/d_data, for a medical and a natural binary task.

BreastMNIST (malignant vs normal/benign) and MNIST 3 vs 5, both at the same preprocessing:
28 x 28 gray, intensities in [0, 1]. For each: a fixed class-balanced held-out split
(60 images per class), nested class-balanced training subsets of the same sizes, the
built-in small CNN trained on each (cosine-decayed Adam) for several seeds, the test
cross-entropy, and the least-squares fit of log L against log N with its bootstrap
interval over seeds. d_data is the paper's MLE (k = 20) on the pixels of the largest
training subset (seed 0), and on the whole training pool for reference; K_F is exact on
the largest training subset. Prints a markdown table.

    .venv/bin/python benchmarks/scaling_table.py [--seeds 5] [--sizes 50,75,100,150,200,300]
"""

import argparse
import pathlib
import time

import numpy as np
import torch

from fiftyone_intrinsic.core.dimension import intrinsic_dimension
from fiftyone_intrinsic.datasets.importers import read_idx
from fiftyone_intrinsic.core.learning_curve import run_learning_curve
from fiftyone_intrinsic.core.scaling import compare_with_law, fit_power_law, plan_budget
from fiftyone_intrinsic.core.sharpness import label_sharpness

DATA = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data"


def breastmnist():
    with np.load(DATA / "medical" / "breastmnist_28.npz") as archive:
        images = np.concatenate([archive[f"{s}_images"] for s in ("train", "val", "test")])
        labels = np.concatenate([archive[f"{s}_labels"].reshape(-1) for s in ("train", "val", "test")])
    return images, labels


def mnist_3_vs_5():
    images = read_idx(DATA / "natural" / "mnist_t10k" / "t10k-images-idx3-ubyte.gz")
    labels = read_idx(DATA / "natural" / "mnist_t10k" / "t10k-labels-idx1-ubyte.gz")
    keep = np.flatnonzero((labels == 3) | (labels == 5))
    return images[keep], (labels[keep] == 5).astype(np.int64)


def count(n) -> str:
    """A number of images: grouped digits, or powers of ten when absurdly large."""
    if not np.isfinite(n):
        return "never"
    return f"{n:,.0f}" if n < 1e6 else f"{n:.1e}"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--sizes", default="50,75,100,150,200,300")
    parser.add_argument("--n-test", type=int, default=120, help="held-out images, class-balanced")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--min-steps", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: fastest for this small CNN)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    sizes = [int(n) for n in args.sizes.split(",")]
    rows = []
    for name, domain, loader in (("BreastMNIST", "medical", breastmnist), ("MNIST 3 vs 5", "natural", mnist_3_vs_5)):
        start = time.perf_counter()
        images, labels = loader()
        pixels = images.reshape(len(images), -1) / 255.0
        curve = run_learning_curve(
            images[:, None] / 255.0, labels, sizes=sizes, n_test=args.n_test, n_seeds=args.seeds,
            epochs=args.epochs, min_steps=args.min_steps, device=args.device,
        )
        largest = curve.subset(sizes[-1], 0)
        d_train = intrinsic_dimension(pixels[largest], estimator="mle", k=20, device=args.device)
        d_pool = intrinsic_dimension(pixels[curve.train_index], estimator="mle", k=20, interval_splits=0, device=args.device)
        k_f = label_sharpness(pixels[largest], labels[largest], top=1, device=args.device).k_f
        fit = fit_power_law(curve.sizes, curve.losses)
        law = compare_with_law(fit, d_data=d_train.dimension, d_data_interval=(d_train.ci_low, d_train.ci_high), k_f=k_f)
        target = 0.5 * float(fit.predict(sizes[-1]))
        plan = plan_budget(fit, target)
        rows.append((name, domain, curve, fit, law, d_train, d_pool, plan, time.perf_counter() - start))

    print(f"Preprocessing: 28x28 gray, [0, 1]. Held-out: {args.n_test} images, class-balanced, fixed. "
          f"Sizes N = {sizes}, {args.seeds} seeds, built-in SmallCNN, Adam 2e-3 cosine, "
          f"{args.epochs} epochs (at least {args.min_steps} steps), device {args.device}.")
    print("Exponent: least squares of log L (test cross-entropy) on log N, 95% interval by bootstrap over seeds. "
          "d_data: MLE k=20 (paper) on the largest training subset; d_pool: on the whole training pool.")
    print()
    header = ["dataset", "domain", "mean L at N=" + str(sizes[0]), "mean L at N=" + str(sizes[-1]),
              "fitted exponent [95% CI]", "R²", "d_data [95% CI]", "−1/d_data", "agreement", "−1/d_pool",
              "effective d = −1/exponent", "K_F", "a = offset − log K_F", "N for ½ L(N_max) [95% CI]", "seconds"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for name, domain, curve, fit, law, d_train, d_pool, plan, seconds in rows:
        mean = curve.losses.mean(axis=1)
        cells = [
            name, domain, f"{mean[0]:.3f}", f"{mean[-1]:.3f}",
            f"{fit.exponent:.3f} [{fit.exponent_low:.3f}, {fit.exponent_high:.3f}]", f"{fit.r_squared:.2f}",
            f"{d_train.dimension:.2f} [{d_train.ci_low:.2f}, {d_train.ci_high:.2f}]",
            f"{law.predicted_exponent:.3f}", law.agreement, f"{-1 / d_pool.dimension:.3f}",
            f"{law.effective_dimension:.2f}" if np.isfinite(law.effective_dimension) else "n/a",
            f"{law.k_f:.3f}", f"{law.constant:.2f}",
            f"{count(plan.n_needed[0])} [{count(plan.n_low[0])}, {count(plan.n_high[0])}]",
            f"{seconds:.0f}",
        ]
        print("| " + " | ".join(cells) + " |")
    print()
    print("Per-size mean test loss (seeds as columns):")
    for name, _, curve, *_ in rows:
        print(f"- {name}: " + "; ".join(
            f"N={n}: " + ", ".join(f"{v:.3f}" for v in row) for n, row in zip(curve.sizes, curve.losses)
        ))


if __name__ == "__main__":
    main()
