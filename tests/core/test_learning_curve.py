"""The learning-curve runner on arrays: nested class-balanced subsets, held-out splits,
sizes, user models and refusals (fiftyone_intrinsic.core.learning_curve)."""

import numpy as np
import pytest
import torch

from fiftyone_intrinsic.core.learning_curve import (
    SmallCNN,
    balanced_capacity,
    default_sizes,
    held_out_split,
    run_learning_curve,
    nested_order,
    pilot_sizes,
)


PAPER_SIZES = np.array([500, 750, 1000, 1250, 1500, 1750])
#: Settings for tests about plumbing, not about the numbers.
TINY = dict(sizes=[20, 40, 80], n_seeds=2, epochs=2, min_steps=5, device="cpu")

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# --- the runner on arrays ---------------------------------------------------------------


def test_nested_orders_are_class_balanced_and_held_out_splits_disjoint():
    labels = np.array(["a"] * 30 + ["b"] * 12 + ["c"] * 18)
    equal = nested_order(labels, seed=4)
    assert sorted(equal.tolist()) == list(range(60))
    capacity = balanced_capacity(labels)
    assert capacity == 36
    for n in range(3, capacity + 1):
        counts = np.unique(labels[equal[:n]], return_counts=True)[1]
        assert counts.max() - counts.min() <= 1
    stratified = nested_order(labels, seed=4, balance="stratified")
    for n in (10, 20, 30, 60):
        counts = dict(zip(*np.unique(labels[stratified[:n]], return_counts=True)))
        for name, share in (("a", 0.5), ("b", 0.2), ("c", 0.3)):
            assert abs(counts.get(name, 0) - share * n) <= 1
    assert not np.array_equal(nested_order(labels, seed=5), equal)
    train, test = held_out_split(labels, 9, seed=1)
    assert np.intersect1d(train, test).size == 0 and np.union1d(train, test).size == 60
    assert np.unique(labels[test], return_counts=True)[1].tolist() == [3, 3, 3]
    with pytest.raises(ValueError, match="Cannot hold out 40"):
        held_out_split(labels, 40)


def test_default_and_pilot_sizes_follow_the_data():
    assert default_sizes(10_000) == tuple(PAPER_SIZES.tolist())
    assert default_sizes(1300) == (500, 750, 1000, 1250)
    small = default_sizes(336)
    assert len(small) == 6 and small[-1] == 336 and small[0] == 96
    pilot = pilot_sizes(400)
    assert pilot[0] == 50 and pilot[-1] == 400 and len(pilot) == 6


def separable_images(rng, n_per_class=60, side=8):
    """Two classes of 8 x 8 images, bright left half or bright right half, plus noise."""
    images = rng.uniform(0.0, 0.4, size=(2 * n_per_class, 1, side, side))
    images[:n_per_class, :, :, : side // 2] += 0.5
    images[n_per_class:, :, :, side // 2 :] += 0.5
    return images, np.repeat(["left", "right"], n_per_class)


def mlp_factory(n_classes, channels, size):
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(channels * size * size, 16), torch.nn.ReLU(),
                               torch.nn.Linear(16, n_classes))


def test_learning_curve_on_arrays_with_a_user_model():
    rng = np.random.default_rng(0)
    images, labels = separable_images(rng)
    progress = []
    torch.manual_seed(123)
    global_state = torch.get_rng_state()
    curve = run_learning_curve(images, labels, model_factory=mlp_factory, n_test=30,
                           progress=lambda f, s: progress.append(f), **TINY)
    assert torch.equal(torch.get_rng_state(), global_state)  # the caller's random state is untouched
    assert curve.losses.shape == (3, 2) and np.all(np.isfinite(curve.losses))
    assert curve.model.endswith("mlp_factory") and curve.class_names == ["left", "right"]
    assert np.intersect1d(curve.orders.ravel(), curve.test_index).size == 0
    assert np.isin(curve.orders, curve.train_index).all()
    for r in range(2):
        assert set(curve.subset(20, r)) <= set(curve.subset(40, r)) <= set(curve.subset(80, r))
    assert curve.subset_class_counts.tolist() == [[10, 10], [20, 20], [40, 40]]
    assert curve.test_class_counts.tolist() == [15, 15]
    assert curve.steps.tolist() == [5, 5, 6]
    assert progress[-1] == 1.0 and progress == sorted(progress)
    again = run_learning_curve(images, labels, model_factory=mlp_factory, n_test=30, **TINY)
    np.testing.assert_array_equal(again.losses, curve.losses)  # seeded: reproducible


def test_built_in_cnn_adapts_to_size_and_channels():
    for channels, size in ((1, 28), (3, 32), (1, 8), (3, 224)):
        model = SmallCNN(n_classes=4, channels=channels, size=size)
        assert model(torch.zeros(2, channels, size, size)).shape == (2, 4)


def test_runner_refuses_bad_input():
    rng = np.random.default_rng(1)
    images, labels = separable_images(rng)
    cases = [
        (dict(sizes=[20, 40]), "at least 3 distinct"),
        (dict(sizes=[20, 20, 40]), "at least 3 distinct"),
        (dict(sizes=[20, 40, 100]), r"\[100\] are larger than the labeled view allows.*90 images"),
        (dict(sizes=[20, 40, 80], train_index=np.arange(0, 100), test_index=np.arange(90, 120)),
         "overlaps the training pool in 10 images"),
        (dict(sizes=[1, 20, 40]), "smaller than the 2 classes"),
    ]
    for kwargs, reason in cases:
        with pytest.raises(ValueError, match=reason):
            run_learning_curve(images, labels, **{**dict(TINY, sizes=None), **kwargs})
    with pytest.raises(ValueError, match="single class"):
        run_learning_curve(images[:60], labels[:60], **TINY)
    three = labels.copy()
    three[110:] = "up"
    with pytest.raises(ValueError, match="classes \\['up'\\] that the training pool lacks"):
        run_learning_curve(images, three, train_index=np.arange(0, 110), test_index=np.arange(110, 120), **TINY)
    with pytest.raises(ValueError, match="must output one logit per class"):
        run_learning_curve(images, labels, model_factory=lambda c, ch, s: mlp_factory(5, ch, s), **TINY)
    with pytest.raises(ValueError, match="rejected images"):
        run_learning_curve(images, labels, model_factory=lambda c, ch, s: mlp_factory(c, ch, 28), **TINY)
    with pytest.raises(TypeError, match="must return a torch.nn.Module"):
        run_learning_curve(images, labels, model_factory=lambda c, ch, s: "model", **TINY)
