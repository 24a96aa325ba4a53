"""A small CNN trained inside the tests, on the CPU, in seconds."""

import numpy as np
import torch


class SmallCNN(torch.nn.Module):
    """Two conv blocks and a linear head for 28 x 28 images; ``channels`` inputs."""

    def __init__(self, n_classes=2, channels=1):
        super().__init__()
        self.features = torch.nn.Sequential(
            torch.nn.Conv2d(channels, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
            torch.nn.Conv2d(8, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        )
        self.head = torch.nn.Linear(16 * 7 * 7, n_classes)

    def forward(self, x):
        return self.head(self.features(x).flatten(1))


def train_small_cnn(images, targets, n_classes=2, epochs=8, seed=0):
    """Train on ``(N, 1, 28, 28)`` images in [0, 1] with integer ``targets``."""
    torch.manual_seed(seed)
    images = torch.as_tensor(images, dtype=torch.float32)
    targets = torch.as_tensor(targets, dtype=torch.int64)
    model = SmallCNN(n_classes, images.shape[1])
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        order = torch.randperm(len(images), generator=generator)
        for start in range(0, len(images), 64):
            batch = order[start : start + 64]
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(images[batch]), targets[batch]).backward()
            optimizer.step()
    return model.eval()


def breastmnist_arrays(path):
    """(train_images, train_targets, test_images, test_targets) as (N, 1, 28, 28) in [0, 1]."""
    with np.load(path) as archive:
        def split(name):
            images = torch.tensor(archive[f"{name}_images"] / 255.0, dtype=torch.float32).unsqueeze(1)
            return images, torch.tensor(archive[f"{name}_labels"].reshape(-1), dtype=torch.int64)

        return (*split("train"), *split("test"))
