"""Learning curves: test loss of a model trained on nested, class-balanced subsets.

The runner behind the scaling law (docs/science.md §1): for each seed, one random order of the
training pool whose prefixes are class-balanced, so the subset of size N is contained in
the subset of every larger size; a fresh model trained on each prefix; its cross-entropy
on one fixed held-out split that no subset ever touches. Works on image arrays and knows
nothing of FiftyOne (:mod:`fiftyone_intrinsic.scaling_runs` stores runs).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional, Tuple

import numpy as np
import torch

from .devices import resolve_device
from .settings import DEFAULT_SIZES, MIN_SIZES, LearningCurveSettings

__all__ = [
    "DEFAULT_SIZES",
    "LearningCurveSettings",
    "LearningCurve",
    "SmallCNN",
    "run_learning_curve",
    "nested_order",
    "balanced_capacity",
    "held_out_split",
    "default_sizes",
    "pilot_sizes",
    "resolve_split",
    "resolve_sizes",
    "measure_curve",
]

#: ``model_factory(n_classes, channels, size)`` → a fresh ``torch.nn.Module`` mapping
#: ``(B, channels, size, size)`` images in [0, 1] to ``(B, n_classes)`` logits.
ModelFactory = Callable[[int, int, int], torch.nn.Module]


@dataclass(frozen=True)
class LearningCurve:
    """Test losses of models trained on nested subsets.

    Attributes:
        sizes: ``(S,)`` training-set sizes, ascending.
        seeds: ``(R,)`` seeds.
        losses: ``(S, R)`` mean test cross-entropy (nats) of the model trained on the
            subset of each size with each seed.
        accuracies: ``(S, R)`` test accuracy of the same models.
        steps: ``(S,)`` optimizer steps each model of that size took.
        train_index: ``(P,)`` indices of the training pool in the input.
        test_index: ``(T,)`` indices of the held-out split in the input.
        orders: ``(R, max(sizes))`` indices into the input: the training subset of size N
            with seed r is ``orders[r, :N]``.
        class_names: the class of each model output.
        subset_class_counts: ``(S, C)`` images per class in the subsets of each size
            (the same for every seed).
        test_class_counts: ``(C,)`` images per class in the held-out split.
        model: a description of the model trained.
        device: the torch device it trained on.
    """

    sizes: np.ndarray
    seeds: np.ndarray
    losses: np.ndarray
    accuracies: np.ndarray
    steps: np.ndarray
    train_index: np.ndarray
    test_index: np.ndarray
    orders: np.ndarray
    class_names: list
    subset_class_counts: np.ndarray
    test_class_counts: np.ndarray
    model: str
    device: str

    def subset(self, size: int, seed_position: int = 0) -> np.ndarray:
        """Input indices of the training subset of ``size`` for the ``seed_position``-th seed."""
        if size not in set(self.sizes.tolist()):
            raise ValueError(f"No subset of size {size}; sizes: {self.sizes.tolist()}.")
        return self.orders[seed_position, :size]


class SmallCNN(torch.nn.Module):
    """The built-in model: two 3×3 conv blocks (8 and 16 channels, ReLU, 2×2 max pool)
    and a linear head, for ``size × size`` images with ``channels`` channels in [0, 1].

    >>> SmallCNN(n_classes=3, channels=1, size=28)(torch.zeros(2, 1, 28, 28)).shape
    torch.Size([2, 3])
    """

    def __init__(self, n_classes: int = 2, channels: int = 1, size: int = 28):
        super().__init__()
        self.features = torch.nn.Sequential(
            torch.nn.Conv2d(channels, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
            torch.nn.Conv2d(8, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        )
        # 28 x 28 inputs reach the head at 7 x 7 as they are; larger ones are pooled to it
        side = max(1, min(7, size // 4))
        self.pool = torch.nn.AdaptiveAvgPool2d(side)
        self.head = torch.nn.Linear(16 * side * side, n_classes)

    def forward(self, x):
        return self.head(self.pool(self.features(x)).flatten(1))


def balanced_capacity(labels, balance: str = "equal") -> int:
    """The largest subset of ``labels`` with the balance asked for: the number of classes
    times the smallest class count (``"equal"``), or all of them (``"stratified"``).

    >>> balanced_capacity(["a"] * 5 + ["b"] * 3), balanced_capacity(["a"] * 5 + ["b"] * 3, "stratified")
    (6, 8)
    """
    _, counts = np.unique(np.asarray(labels), return_counts=True)
    return int(counts.size * counts.min()) if balance == "equal" else int(counts.sum())


def nested_order(labels, seed: int, balance: str = "equal") -> np.ndarray:
    """A random order of the positions of ``labels`` whose every prefix is class-balanced.

    ``"equal"``: classes take turns (the counts of any prefix differ by at most one, up to
    :func:`balanced_capacity`); ``"stratified"``: the k-th image of a class with n images
    sits at ``(k + ½)/n`` of the order, so every prefix keeps the class proportions.

    >>> labels = np.array([0, 0, 0, 0, 1, 1])
    >>> order = nested_order(labels, seed=0)
    >>> labels[order[:4]].tolist()
    [0, 1, 0, 1]
    """
    labels = np.asarray(labels)
    classes, codes = np.unique(labels, return_inverse=True)
    rng = np.random.default_rng(seed)
    positions, keys, tiebreak = [], [], []
    for c in range(classes.size):
        members = rng.permutation(np.flatnonzero(codes == c))
        rank = np.arange(members.size, dtype=np.float64)
        positions.append(members)
        keys.append(rank if balance == "equal" else (rank + 0.5) / members.size)
        tiebreak.append(np.full(members.size, c))
    positions, keys, tiebreak = map(np.concatenate, (positions, keys, tiebreak))
    return positions[np.lexsort((tiebreak, keys))]


def held_out_split(labels, n_test: int, seed: int = 0, balance: str = "equal"):
    """Split positions into ``(train_index, test_index)``, ``n_test`` held out.

    The held-out images are the first ``n_test`` of :func:`nested_order`, so they are
    class-balanced like the training subsets; both indices come back sorted.

    >>> train, test = held_out_split(np.array([0] * 6 + [1] * 4), 4)
    >>> sorted(np.array([0] * 6 + [1] * 4)[test].tolist()), len(train)
    ([0, 0, 1, 1], 6)
    """
    labels = np.asarray(labels)
    capacity = balanced_capacity(labels, balance)
    if n_test >= len(labels) or n_test > capacity:
        classes, counts = np.unique(labels, return_counts=True)
        raise ValueError(
            f"Cannot hold out {n_test} images ({balance} balance) from {len(labels)} with class "
            f"counts {dict(zip(classes.tolist(), counts.tolist()))}; at most "
            f"{min(capacity, len(labels) - 1)}. Lower n_test or give a held-out split."
        )
    order = nested_order(labels, seed, balance)
    return np.sort(order[n_test:]), np.sort(order[:n_test])


def default_sizes(capacity: int) -> Tuple[int, ...]:
    """The paper's sizes that fit in ``capacity``; when fewer than three do, the same
    proportions (500/1750 … 1750/1750) of ``capacity``.

    >>> default_sizes(5000), default_sizes(1100), default_sizes(350)
    ((500, 750, 1000, 1250, 1500, 1750), (500, 750, 1000), (100, 150, 200, 250, 300, 350))
    """
    fitting = tuple(n for n in DEFAULT_SIZES if n <= capacity)
    if len(fitting) >= MIN_SIZES:
        return fitting
    largest = DEFAULT_SIZES[-1]
    return tuple(sorted({max(1, round(capacity * n / largest)) for n in DEFAULT_SIZES}))


def pilot_sizes(capacity: int, n_classes: int = 2) -> Tuple[int, ...]:
    """Sizes for a small labeled pilot: six, spread geometrically from an eighth of
    ``capacity`` (at least two images per class) to all of it, so the slope is measured
    over a wide range of log N.

    >>> pilot_sizes(200)
    (25, 38, 57, 87, 132, 200)
    """
    smallest = max(2 * n_classes, capacity / 8)
    if smallest >= capacity:
        return (capacity,)
    return tuple(sorted({int(round(n)) for n in np.geomspace(smallest, capacity, 6)}))


def run_learning_curve(
    images,
    labels,
    *,
    sizes=None,
    test_index=None,
    train_index=None,
    n_test: Optional[int] = None,
    n_seeds: int = 3,
    seed: int = 0,
    split_seed: int = 0,
    balance: str = "equal",
    model_factory: Optional[ModelFactory] = None,
    epochs: int = 30,
    min_steps: int = 100,
    batch_size: int = 32,
    learning_rate: float = 2e-3,
    weight_decay: float = 0.0,
    schedule: str = "cosine",
    device=None,
    progress: Callable[[float, str], None] | None = None,
) -> LearningCurve:
    """Train a model on nested class-balanced subsets of each size; measure test loss.

    For each seed: one :func:`nested_order` of the training pool; for each size N, a
    fresh model (initialized from the seed, the same for every N, so that sizes differ by
    their data only) trained with Adam on the first N images for
    ``max(epochs · ⌈N / batch_size⌉, min_steps)`` steps (learning rate cosine-decayed to
    0 by default), then evaluated in eval mode on
    the held-out split: mean cross-entropy (nats) and accuracy.

    Args:
        images: ``(M, C, H, W)`` (or ``(M, H, W)``) images in [0, 1], array or tensor.
        labels: ``M`` labels (any hashable values; at least two classes).
        sizes (None): training-set sizes, at least 3 distinct; None: :func:`default_sizes`
            of the pool's :func:`balanced_capacity`.
        test_index (None): positions of the held-out split; None carves ``n_test``
            with :func:`held_out_split`.
        train_index (None): positions of the training pool; None: all but the held-out.
        n_test (None): held-out size to carve (default min(750, M // 4)).
        n_seeds (3), seed (0), split_seed (0), balance ("equal"), epochs (30),
            min_steps (100), batch_size (32), learning_rate (2e-3), weight_decay (0.0),
            schedule ("cosine"): see :class:`LearningCurveSettings`.
        model_factory (None): ``factory(n_classes, channels, size)`` returning a fresh
            model (logits out); None: :class:`SmallCNN`.
        device (None): ``"auto"``/``None`` (CUDA when present), ``"cpu"`` or ``"cuda"``.
        progress (None): ``progress(fraction, label)``.

    Raises:
        ValueError: fewer than 3 distinct sizes, a size larger than the pool's balanced
            capacity, a single class, a held-out split that overlaps the training pool or
            holds a class the pool lacks, or a model whose output does not fit.

    >>> rng = np.random.default_rng(0)
    >>> y = np.repeat([0, 1], 60)
    >>> x = rng.uniform(size=(120, 1, 8, 8)) * 0.5 + y[:, None, None, None] * 0.5
    >>> curve = run_learning_curve(x, y, sizes=[10, 20, 40], n_test=40, n_seeds=2, epochs=1,
    ...                            min_steps=1, device="cpu", progress=lambda f, s: None)
    >>> curve.losses.shape, curve.subset(20, 1).shape, bool(np.isin(curve.orders, curve.test_index).any())
    ((3, 2), (20,), False)
    """
    settings = LearningCurveSettings(
        sizes=None if sizes is None else tuple(int(n) for n in np.asarray(sizes).reshape(-1)),
        n_seeds=n_seeds, seed=seed, n_test=n_test, split_seed=split_seed, balance=balance,
        epochs=epochs, min_steps=min_steps, batch_size=batch_size, learning_rate=learning_rate,
        weight_decay=weight_decay, schedule=schedule, device=None if device is None else str(device),
    )
    images = _as_images(images)
    labels = np.asarray([str(label) for label in np.asarray(labels).reshape(-1).tolist()])
    if labels.shape[0] != images.shape[0]:
        raise ValueError(f"Got {images.shape[0]} images and {labels.shape[0]} labels; give one label per image.")
    train_index, test_index = resolve_split(labels, settings, train_index, test_index)
    sizes = resolve_sizes(labels[train_index], settings)
    return measure_curve(images, labels, train_index, test_index, sizes, settings, model_factory, progress)


def resolve_split(labels: np.ndarray, settings: LearningCurveSettings, train_index=None, test_index=None):
    """``(train_index, test_index)``: given, or carved; refuses overlap and one class."""
    n_labels = labels.shape[0]
    pool = np.arange(n_labels) if train_index is None else _positions(train_index, n_labels, "train_index")
    _require_classes(labels[pool], "data")
    if test_index is None:
        n_test = settings.n_test or min(750, len(pool) // 4)
        if n_test < 1:
            raise ValueError(f"The data has {len(pool)} images, too few to hold any out; add images.")
        train_pos, test_pos = held_out_split(labels[pool], n_test, settings.split_seed, settings.balance)
        return pool[train_pos], pool[test_pos]
    test_index = _positions(test_index, n_labels, "test_index")
    overlap = np.intersect1d(pool, test_index) if train_index is not None else np.empty(0, np.int64)
    if overlap.size:
        raise ValueError(
            f"The held-out split overlaps the training pool in {overlap.size} images "
            f"(positions {overlap[:10].tolist()}); a test loss on training images is not a "
            "test loss. Remove them from one of the two."
        )
    train_index = np.setdiff1d(pool, test_index)
    _require_classes(labels[train_index], "training pool")
    unknown = sorted(set(labels[test_index].tolist()) - set(labels[train_index].tolist()))
    if unknown:
        raise ValueError(
            f"The held-out split has classes {unknown[:10]} that the training pool lacks; "
            "no model trained on the pool can predict them."
        )
    return train_index, test_index


def resolve_sizes(pool_labels: np.ndarray, settings: LearningCurveSettings, pilot: bool = False) -> np.ndarray:
    """The sizes asked for, or the defaults (:func:`default_sizes`, or :func:`pilot_sizes`
    when ``pilot``), checked against the pool's capacity."""
    capacity = balanced_capacity(pool_labels, settings.balance)
    n_classes = np.unique(pool_labels).size
    sizes = settings.sizes or (pilot_sizes(capacity, n_classes) if pilot else default_sizes(capacity))
    if len(sizes) < MIN_SIZES:
        raise ValueError(
            f"The training pool allows only {list(sizes)} as sizes (largest {settings.balance}-"
            f"balanced subset: {capacity} images); a power law needs {MIN_SIZES} distinct sizes. "
            "Label more images."
        )
    too_large = [n for n in sizes if n > capacity]
    if too_large:
        classes, counts = np.unique(pool_labels, return_counts=True)
        raise ValueError(
            f"Training-set sizes {too_large} are larger than the labeled view allows: its "
            f"training pool has class counts {dict(zip(classes.tolist(), counts.tolist()))}, so "
            f"the largest {settings.balance}-balanced subset has {capacity} images. Use sizes "
            f"up to {capacity}" + (" or balance='stratified'." if settings.balance == "equal" else ".")
        )
    too_small = [n for n in sizes if n < n_classes]
    if too_small:
        raise ValueError(
            f"Training-set sizes {too_small} are smaller than the {n_classes} classes; every "
            "subset needs each class at least once."
        )
    return np.asarray(sizes, dtype=np.int64)


def measure_curve(
    images: torch.Tensor, labels: np.ndarray, train_index: np.ndarray, test_index: np.ndarray,
    sizes: np.ndarray, settings: LearningCurveSettings, model_factory: Optional[ModelFactory],
    progress: Callable[[float, str], None] | None,
) -> LearningCurve:
    """The training loop of :func:`run_learning_curve`, on inputs already checked by
    :func:`resolve_split` and :func:`resolve_sizes`."""
    device = resolve_device(settings.device)
    class_names = sorted(set(labels[train_index].tolist()))
    index = {name: i for i, name in enumerate(class_names)}
    targets = torch.as_tensor([index[name] for name in labels.tolist()], dtype=torch.int64)
    factory = model_factory or SmallCNN
    channels, size = int(images.shape[1]), int(images.shape[2])
    _check_model(factory, len(class_names), channels, size, images[:2])
    train_images, train_targets = images[train_index].to(device), targets[train_index].to(device)
    test_images, test_targets = images[test_index].to(device), targets[test_index].to(device)
    pool_labels = labels[train_index]
    orders = np.stack([nested_order(pool_labels, s, settings.balance)[: sizes[-1]] for s in settings.seeds])
    steps = np.array([_steps(n, settings) for n in sizes])
    total, done = int(steps.sum()) * settings.n_seeds, 0
    report = progress or (lambda fraction, label: None)
    losses = np.empty((sizes.size, settings.n_seeds))
    accuracies = np.empty_like(losses)
    for r, seed in enumerate(settings.seeds):
        for s, n in enumerate(sizes.tolist()):
            subset = torch.as_tensor(orders[r, :n], device=device)
            label = f"N={n}, seed {seed}"
            model = _train(
                factory, len(class_names), channels, size, train_images[subset], train_targets[subset],
                int(steps[s]), seed, settings, device,
                lambda k, label=label: report((done + k) / total, f"Training {label}"),
            )
            losses[s, r], accuracies[s, r] = _evaluate(model, test_images, test_targets, settings.batch_size)
            done += int(steps[s])
            if not math.isfinite(losses[s, r]):
                raise ValueError(
                    f"The model trained with {label} has a non-finite test loss; lower the "
                    "learning rate or check the model."
                )
            report(done / total, f"{label}: test loss {losses[s, r]:.4f}")
    subset_counts = np.array([
        np.bincount(targets[train_index[orders[0, :n]]].numpy(), minlength=len(class_names)) for n in sizes
    ])
    return LearningCurve(
        sizes=sizes, seeds=np.array(settings.seeds), losses=losses, accuracies=accuracies, steps=steps,
        train_index=np.asarray(train_index), test_index=np.asarray(test_index),
        orders=np.asarray(train_index)[orders], class_names=class_names,
        subset_class_counts=subset_counts,
        test_class_counts=np.bincount(targets[test_index].numpy(), minlength=len(class_names)),
        model=_describe(factory), device=str(device),
    )


def _steps(n: int, settings: LearningCurveSettings) -> int:
    return max(settings.epochs * math.ceil(n / settings.batch_size), settings.min_steps)


def _train(factory, n_classes, channels, size, images, targets, steps, seed, settings, device, progress):
    devices = [device] if device.type == "cuda" else []
    # the model's initialization comes from the seed alone, without touching the caller's
    # global random state
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        model = factory(n_classes, channels, size).to(device)
        generator = torch.Generator(device="cpu").manual_seed(seed)
        optimizer = torch.optim.Adam(
            model.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay
        )
        scheduler = (
            torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
            if settings.schedule == "cosine" else None
        )
        model.train()
        n_images, step = images.shape[0], 0
        every = max(1, steps // 20)
        while step < steps:
            order = torch.randperm(n_images, generator=generator).to(device)
            for start in range(0, n_images, settings.batch_size):
                batch = order[start : start + settings.batch_size]
                optimizer.zero_grad(set_to_none=True)
                torch.nn.functional.cross_entropy(model(images[batch]), targets[batch]).backward()
                optimizer.step()
                if scheduler is not None:
                    scheduler.step()
                step += 1
                if step % every == 0:
                    progress(step)
                if step >= steps:
                    break
    return model.eval()


def _evaluate(model, images, targets, batch_size):
    total_loss, correct = 0.0, 0
    with torch.no_grad():
        for start in range(0, images.shape[0], max(batch_size, 256)):
            logits = model(images[start : start + max(batch_size, 256)])
            batch_targets = targets[start : start + logits.shape[0]]
            total_loss += torch.nn.functional.cross_entropy(
                logits.double(), batch_targets, reduction="sum"
            ).item()
            correct += int((logits.argmax(dim=1) == batch_targets).sum())
    return total_loss / images.shape[0], correct / images.shape[0]


def _check_model(factory, n_classes, channels, size, probe):
    with torch.random.fork_rng(devices=[]):
        model = factory(n_classes, channels, size)
    if not isinstance(model, torch.nn.Module):
        raise TypeError(
            f"model_factory must return a torch.nn.Module; it returned {type(model).__name__}."
        )
    model.eval()
    try:
        with torch.no_grad():
            output = model(probe)
    except Exception as error:  # any failure here means the input does not fit
        raise ValueError(
            f"The model rejected images of shape {tuple(probe.shape)} (N, C, H, W): "
            f"{str(error).splitlines()[0]}. Make model_factory(n_classes, channels, size) build "
            "a model for these images, or change the image size and channels."
        ) from error
    if output.ndim != 2 or output.shape[1] != n_classes:
        raise ValueError(
            f"The model outputs shape {tuple(output.shape)}; it must output one logit per class, "
            f"(N, {n_classes})."
        )


def _as_images(images) -> torch.Tensor:
    images = torch.as_tensor(
        images if isinstance(images, torch.Tensor) else np.asarray(images), dtype=torch.float32
    )
    if images.ndim == 3:
        images = images.unsqueeze(1)
    if images.ndim != 4 or images.shape[2] != images.shape[3]:
        raise ValueError(
            f"Images must be (N, C, H, W) or (N, H, W) square images in [0, 1]; got shape {tuple(images.shape)}."
        )
    if not torch.isfinite(images).all():
        raise ValueError("Images contain NaN or inf values.")
    return images


def _positions(index, n_rows: int, name: str) -> np.ndarray:
    index = np.unique(np.asarray(index, dtype=np.int64).reshape(-1))
    if index.size == 0 or index[0] < 0 or index[-1] >= n_rows:
        raise ValueError(f"{name} must hold positions in [0, {n_rows}); got {index[:5].tolist()}...")
    return index


def _require_classes(labels: np.ndarray, what: str) -> None:
    classes = np.unique(labels)
    if classes.size < 2:
        raise ValueError(
            f"The {what} has a single class ({classes.tolist()}); a learning curve of a "
            "classifier needs at least two. Choose a view with two or more labels."
        )


def _describe(factory) -> str:
    if factory is SmallCNN:
        return "fiftyone_intrinsic.learning_curve.SmallCNN (built-in)"
    return f"{getattr(factory, '__module__', '?')}.{getattr(factory, '__qualname__', type(factory).__name__)}"
