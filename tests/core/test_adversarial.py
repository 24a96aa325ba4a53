"""Adversarial attacks on a small CNN trained here on real BreastMNIST images."""

import numpy as np
import pytest
import torch
import torchattacks

from fiftyone_intrinsic import evaluate_robustness
from fiftyone_intrinsic.core.adversarial import attack_model, pair_certificate
from fiftyone_intrinsic.core.attacks import ATTACKS
from fiftyone_intrinsic.core.settings import RobustnessSettings

from training import breastmnist_arrays, train_small_cnn

FAST = dict(pgd_steps=5, max_epsilon=16.0, max_l2=4.0, device="cpu")


@pytest.fixture(scope="module")
def trained():
    from conftest import shared_file

    train_x, train_y, test_x, test_y = breastmnist_arrays(shared_file("medical/breastmnist_28.npz"))
    model = train_small_cnn(train_x, train_y)
    return model, test_x[:64], test_y[:64]


@pytest.fixture(scope="module")
def report(trained):
    model, images, targets = trained
    return evaluate_robustness(images, model, labels=targets.numpy(), **FAST)


def test_clean_accuracy_and_robust_accuracy_curves(trained, report):
    model, images, targets = trained
    attacks = report.attacks
    expected = float((model(images).argmax(1) == targets).float().mean())
    assert attacks.clean_accuracy == pytest.approx(expected)
    assert attacks.clean_accuracy > 0.6  # the model learned something
    for curve in attacks.curves.values():
        assert curve.epsilons[0] == 0 and curve.accuracy[0] == pytest.approx(attacks.clean_accuracy)
        assert all(a >= b for a, b in zip(curve.accuracy, curve.accuracy[1:]))
        assert curve.loss[0] == pytest.approx(attacks.clean_loss)
    assert attacks.curves["pgd"].accuracy[-1] < attacks.clean_accuracy  # 8/255 breaks some


def test_budget_zero_of_every_attack_is_the_clean_model(trained, report):
    """At ε = 0 each curve must report the model's own clean accuracy, loss and errors,
    computed here without the attack code."""
    model, images, targets = trained
    with torch.no_grad():
        logits = model(images)
    wrong = (logits.argmax(1) != targets).numpy()
    loss = float(torch.nn.functional.cross_entropy(logits, targets))
    assert 0 < wrong.sum() < len(wrong)  # a check on an all-right or all-wrong model proves little
    for name, curve in report.attacks.curves.items():
        assert curve.epsilons[0] == 0
        assert curve.accuracy[0] == pytest.approx(1 - wrong.mean()), name
        assert curve.loss[0] == pytest.approx(loss, rel=1e-5), name
        np.testing.assert_array_equal(curve.fooled[:, 0], wrong)


def test_delta_loss_is_the_papers_fgsm_protocol(trained, report):
    model, images, targets = trained
    adversarial = torchattacks.FGSM(model, eps=2 / 255)(images, targets)
    with torch.no_grad():
        clean = torch.nn.functional.cross_entropy(model(images), targets)
        attacked = torch.nn.functional.cross_entropy(model(adversarial), targets)
    assert report.attacks.delta_loss == pytest.approx(float(attacked - clean), rel=1e-5)
    assert report.attacks.delta_loss > 0


def test_minimal_epsilon_flips_and_a_smaller_one_does_not(trained, report):
    model, images, targets = trained
    attacks = report.attacks
    flipped = np.flatnonzero(attacks.clean_correct & np.isfinite(attacks.min_epsilon))
    assert flipped.size > 0
    for i in flipped[:8]:
        x, y = images[i : i + 1], targets[i : i + 1]
        for eps, should_flip in ((attacks.min_epsilon[i], True), (attacks.min_epsilon_lower[i], False)):
            attack = torchattacks.PGD(model, eps=eps / 255, alpha=eps / 255 / 4, steps=FAST["pgd_steps"], random_start=False)
            adversarial = attack(x, y) if eps > 0 else x
            assert adversarial.min() >= 0 and adversarial.max() <= 1
            assert bool(model(adversarial).argmax(1) != y) == should_flip, (i, eps)
        assert attacks.min_epsilon[i] - attacks.min_epsilon_lower[i] <= FAST["max_epsilon"] / 2**8 + 1e-6
    wrong = ~attacks.clean_correct
    assert np.all(attacks.min_epsilon[wrong] == 0)
    assert np.isfinite(attacks.r_hat_mean) and attacks.r_hat_median > 0


def test_per_sample_budgets_match_scalar_budgets(trained):
    model, images, targets = trained
    x, y = images[:16], targets[:16]
    for name, attack in ATTACKS.items():
        eps = 0.5 if attack.norm == "l2" else 3 / 255
        scalar = attack.build(model, eps, steps=FAST["pgd_steps"], random_start=False)(x, y)
        tensor = attack.build(model, torch.full((16,), eps), steps=FAST["pgd_steps"], random_start=False)(x, y)
        torch.testing.assert_close(scalar, tensor)
        assert scalar.min() >= 0 and scalar.max() <= 1
        size = (scalar - x).flatten(1).abs().amax(1) if attack.norm == "linf" else (scalar - x).flatten(1).norm(dim=1)
        assert float(size.max()) <= eps + 1e-6, name
        assert float(size.max()) > 0, name  # the attack moved the images


class _Threshold(torch.nn.Module):
    """Two logits ±(x·w − b): class 1 where x·w > b; the boundary is known exactly."""

    def __init__(self, w, b):
        super().__init__()
        self.w, self.b = w, b

    def forward(self, x):
        score = x.flatten(1) @ self.w - self.b
        return torch.stack([-score, score], dim=1)


def test_pair_certificate_finds_the_decision_boundary_on_the_segment():
    # x_j = 0 (class 0), x_k = (1, 1) (class 1), boundary x1 + x2 = 0.5: t* = 0.25
    x_j, x_k = torch.zeros(1, 1, 2), torch.ones(1, 1, 2)
    model = _Threshold(torch.tensor([1.0, 1.0]), 0.5)
    certificate = pair_certificate(model, x_j, x_k, 0, 1, device="cpu", resolution=401)
    distance = 2**0.5
    assert certificate.distance == pytest.approx(distance)
    assert certificate.both_correct is True
    assert certificate.segment_flip == pytest.approx(0.25 * distance, abs=distance / 400)
    assert certificate.flip_radius == certificate.segment_flip  # no PGD flips given
    assert certificate.flip_fraction == pytest.approx(0.5, abs=1 / 200)
    # a smaller PGD flip of one image is the tighter measured bound
    closer = pair_certificate(model, x_j, x_k, 0, 1, (0.1, float("nan")), device="cpu", resolution=401)
    assert closer.flip_radius == pytest.approx(0.1) and closer.segment_flip == certificate.segment_flip
    # a model wrong on x_k: the theorem says nothing, and the certificate says so
    wrong = _Threshold(torch.tensor([1.0, 1.0]), 5.0)
    certificate = pair_certificate(wrong, x_j, x_k, 0, 1, device="cpu")
    assert certificate.both_correct is False


def test_training_mode_is_restored(trained):
    model, images, targets = trained
    model.train()
    attack_model(model, images[:8], targets[:8], RobustnessSettings(attacks=("fgsm",), minimal=False, device="cpu"))
    assert model.training
    model.eval()


def test_a_non_contiguous_batch_gives_the_contiguous_result(trained):
    """Images transposed from another layout (e.g. channels-last (N, H, W, C) arrays) are
    not contiguous; torchattacks' PGD-L2 reshapes with .view and used to raise on them."""
    model, images, targets = trained
    settings = RobustnessSettings(attacks=("pgd_l2",), epsilons_l2=(0.5,), pgd_steps=3, minimal=False, device="cpu")
    channels_last = images[:8].transpose(2, 3).contiguous().transpose(2, 3)  # same values, other strides
    assert not channels_last.is_contiguous()
    expected = attack_model(model, images[:8].contiguous(), targets[:8], settings)
    found = attack_model(model, channels_last, targets[:8], settings)
    np.testing.assert_array_equal(found.curves["pgd_l2"].fooled, expected.curves["pgd_l2"].fooled)
    assert found.curves["pgd_l2"].accuracy == expected.curves["pgd_l2"].accuracy


class Broken(torch.nn.Module):
    def __init__(self, outputs=2, nan=False):
        super().__init__()
        self.linear = torch.nn.Linear(28 * 28, outputs)
        self.nan = nan

    def forward(self, x):
        out = self.linear(x.flatten(1))
        return out * float("nan") if self.nan else out


@pytest.mark.parametrize(
    "model, labels, images, message",
    [
        (Broken(outputs=3), None, None, "class map has 2 classes"),
        (Broken(nan=True), None, None, "NaN or inf"),
        (Broken(), None, torch.rand(4, 3, 28, 28), "rejected input of shape"),
        (Broken(), [0, 1, 2, 1], None, r"not in the model's class map"),
    ],
)
def test_bad_input_is_refused(model, labels, images, message):
    images = torch.rand(4, 1, 28, 28) if images is None else images
    labels = [0, 1, 0, 1] if labels is None else labels
    with pytest.raises(ValueError, match=message):
        evaluate_robustness(images, model, labels=labels, class_names=["0", "1"], device="cpu")
