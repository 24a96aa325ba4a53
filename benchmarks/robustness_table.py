"""Robustness vs label sharpness on a medical and a natural binary task, same preprocessing.

Trains the same small CNN on BreastMNIST (malignant vs benign/normal) and on MNIST 3 vs 5
(28 x 28 gray, [0, 1]); measures exact K_F on each training set, then clean and robust
accuracy, the paper's FGSM Δloss and R̂ on held-out images. Prints a markdown table.

    .venv/bin/python benchmarks/robustness_table.py [--test 156] [--epochs 10]
"""

import argparse
import pathlib
import sys
import time

import numpy as np
import torch

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the test suite's small CNN

from training import train_small_cnn  # noqa: E402

import fiftyone_intrinsic as fi  # noqa: E402
from fiftyone_intrinsic.datasets.importers import read_idx  # noqa: E402

DATA = ROOT.parent / "shared" / "data"


def breastmnist():
    with np.load(DATA / "medical" / "breastmnist_28.npz") as archive:
        train = np.concatenate([archive["train_images"], archive["val_images"]])
        train_y = np.concatenate([archive["train_labels"], archive["val_labels"]]).reshape(-1)
        return train, train_y, archive["test_images"], archive["test_labels"].reshape(-1)


def mnist_3_vs_5(n_train=624, n_test=156):
    images = read_idx(DATA / "natural" / "mnist_t10k" / "t10k-images-idx3-ubyte.gz")
    labels = read_idx(DATA / "natural" / "mnist_t10k" / "t10k-labels-idx1-ubyte.gz")
    keep = np.flatnonzero((labels == 3) | (labels == 5))
    images, labels = images[keep], (labels[keep] == 5).astype(np.int64)
    return images[:n_train], labels[:n_train], images[n_train : n_train + n_test], labels[n_train : n_train + n_test]


def tensor(images):
    return torch.tensor(images / 255.0, dtype=torch.float32).unsqueeze(1)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--test", type=int, default=156)
    args = parser.parse_args()
    rows = []
    for name, domain, loader in (("BreastMNIST", "medical", breastmnist), ("MNIST 3 vs 5", "natural", mnist_3_vs_5)):
        start = time.perf_counter()
        train_x, train_y, test_x, test_y = loader()
        test_x, test_y = test_x[: args.test], test_y[: args.test]
        sharpness = fi.label_sharpness(tensor(train_x).flatten(1), train_y, device="cpu")
        model = train_small_cnn(tensor(train_x), train_y, epochs=args.epochs)
        report = fi.evaluate_robustness(tensor(test_x), model, labels=test_y, device="cpu")
        attacks = report.attacks
        rows.append((name, domain, len(train_x), len(test_x), sharpness, attacks, time.perf_counter() - start))
    eps = rows[0][5].curves["pgd"].epsilons
    print("Preprocessing: 28x28 gray, [0, 1]; K_F exact over the training set; attacks on held-out images.")
    print()
    header = ["dataset", "domain", "N train", "N test", "K_F", "1/K_F", "clean acc"]
    header += [f"PGD acc ε={e:g}/255" for e in eps] + [f"FGSM acc ε={e:g}/255" for e in eps]
    header += ["Δloss FGSM 2/255", "R̂ mean (L2)", "R̂ median (L2)", "unbroken ≤ L2 4", "seconds"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for name, domain, n_train, n_test, sharpness, attacks, seconds in rows:
        cells = [name, domain, str(n_train), str(n_test), f"{sharpness.k_f:.3f}", f"{1 / sharpness.k_f:.3f}",
                 f"{attacks.clean_accuracy:.3f}"]
        cells += [f"{a:.3f}" for a in attacks.curves["pgd"].accuracy]
        cells += [f"{a:.3f}" for a in attacks.curves["fgsm"].accuracy]
        cells += [f"{attacks.delta_loss:.3f}", f"{attacks.r_hat_mean:.3f}", f"{attacks.r_hat_median:.3f}",
                  str(attacks.n_unbroken), f"{seconds:.0f}"]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
