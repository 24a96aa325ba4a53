"""Attacking a classifier with the registered attacks (:mod:`.attacks`), on images in
[0, 1] (docs/science.md §5).

The model given here must take ``(B, C, H, W)`` images in [0, 1] (normalization inside, see
:class:`~fiftyone_intrinsic.models.NormalizedModel`). Reported per budget: robust accuracy
(a sample counts as robust at ε when it is classified correctly and no attack of the sweep
at any budget ≤ ε fooled it — a perturbation that works at a smaller budget lies inside
every larger ball, so this is the tighter empirical bound and never increases with ε) and
the mean cross-entropy on the attacked images. Per sample: the smallest L∞ and L2 budgets
that flip the prediction, by bisection with deterministic PGD.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import torch

from .attacks import get_attack
from .devices import resolve_device
from .models import eval_mode
from .settings import RobustnessSettings

__all__ = ["AttackCurve", "AttackResult", "attack_model", "PairCertificate", "pair_certificate"]

#: The paper's protocol: FGSM at ε = 2/255, Δloss = attacked − clean test loss.
PAPER_EPSILON = 2.0


@dataclass(frozen=True)
class AttackCurve:
    """One attack over a sweep of budgets.

    Attributes:
        attack: a name of :data:`~fiftyone_intrinsic.core.attacks.ATTACKS`.
        norm: ``"linf"`` (budgets in 1/255 units) or ``"l2"`` (L2 norm of [0, 1] images).
        epsilons: the budgets, ascending.
        accuracy: robust accuracy at each budget (fraction in [0, 1]).
        loss: mean cross-entropy (nats) on the attacked images at each budget.
        fooled: ``(N, E)`` bool, wrong prediction on the attacked image at each budget.
    """

    attack: str
    norm: str
    epsilons: tuple
    accuracy: tuple
    loss: tuple
    fooled: np.ndarray


@dataclass(frozen=True)
class AttackResult:
    """Clean and attacked performance of a model on N images.

    Attributes:
        clean_accuracy: fraction correct on the clean images.
        clean_loss: mean cross-entropy (nats) on the clean images.
        predictions: ``(N,)`` int64 clean predictions.
        clean_correct: ``(N,)`` bool.
        curves: attack name → :class:`AttackCurve`.
        delta_loss: FGSM at ε = 2/255, mean attacked − mean clean cross-entropy (the
            paper's metric); ``None`` when FGSM is not in the sweep.
        min_epsilon: ``(N,)`` smallest L∞ budget (1/255 units) found to flip each sample;
            0 for a sample misclassified clean; ``nan`` when none up to ``max_epsilon``.
        min_epsilon_lower: ``(N,)`` the largest budget tried that did not flip it.
        min_l2: ``(N,)`` L2 norm of the smallest flipping PGD-L2 perturbation found
            (same conventions).
        r_hat_mean, r_hat_median: mean and median of ``min_l2`` over the samples that are
            correct clean and flipped within ``max_l2`` (empirical robustness R̂).
        n_unbroken: clean-correct samples that no L2 budget up to ``max_l2`` flipped.
    """

    clean_accuracy: float
    clean_loss: float
    predictions: np.ndarray
    clean_correct: np.ndarray
    curves: dict
    delta_loss: Optional[float]
    min_epsilon: Optional[np.ndarray]
    min_epsilon_lower: Optional[np.ndarray]
    min_l2: Optional[np.ndarray]
    r_hat_mean: float
    r_hat_median: float
    n_unbroken: int


def attack_model(
    model: torch.nn.Module,
    images: torch.Tensor,
    targets: torch.Tensor,
    settings: RobustnessSettings | None = None,
    progress: Callable[[float, str], None] | None = None,
) -> AttackResult:
    """Attack ``model`` on ``images`` (``(N, C, H, W)`` in [0, 1]) with true ``targets``
    (``(N,)`` class indices). The model's train/eval mode is restored afterwards."""
    settings = settings or RobustnessSettings()
    device = resolve_device(settings.device)
    report = progress or (lambda fraction, label: None)
    # contiguous: torchattacks reshapes with .view, which fails on e.g. a transposed
    # channels-last array
    images = torch.as_tensor(images, dtype=torch.float32).contiguous()
    targets = torch.as_tensor(targets, dtype=torch.int64)
    if images.min() < 0 or images.max() > 1:
        raise ValueError("Images must lie in [0, 1]; normalization belongs inside the model wrapper.")
    with eval_mode(model):
        model.to(device)
        torch.manual_seed(settings.seed)
        clean_logits = _logits(model, images, settings.batch_size, device)
        clean_losses = _cross_entropy(clean_logits, targets)
        predictions = clean_logits.argmax(dim=1)
        correct = predictions == targets
        curves, attacked_fgsm_loss = {}, None
        n_steps = len(settings.attacks) + 2 * settings.minimal
        for index, name in enumerate(settings.attacks):
            report(index / n_steps, f"{name.upper()} sweep")
            curves[name] = _sweep(model, images, targets, correct, name, settings, device)
            if name == "fgsm":
                adversarial = _attack(model, images, targets, name, PAPER_EPSILON / 255, settings, device)
                attacked_fgsm_loss = float(_cross_entropy(_logits(model, adversarial, settings.batch_size, device), targets).mean())
        min_eps = min_eps_lower = min_l2 = None
        if settings.minimal:
            report(len(settings.attacks) / n_steps, "Smallest flipping L-inf budget")
            min_eps, min_eps_lower, _ = _minimal_budget(model, images, targets, correct, "pgd", settings.max_epsilon / 255, settings, device)
            min_eps, min_eps_lower = min_eps * 255, min_eps_lower * 255
            report((len(settings.attacks) + 1) / n_steps, "Smallest flipping L2 perturbation")
            _, _, min_l2 = _minimal_budget(model, images, targets, correct, "pgd_l2", settings.max_l2, settings, device)
    report(1.0, "Attacks done")
    clean_loss = float(clean_losses.mean())
    broken = None if min_l2 is None else min_l2[correct.numpy() & np.isfinite(min_l2)]
    return AttackResult(
        clean_accuracy=float(correct.float().mean()),
        clean_loss=clean_loss,
        predictions=predictions.numpy(),
        clean_correct=correct.numpy(),
        curves=curves,
        delta_loss=None if attacked_fgsm_loss is None else attacked_fgsm_loss - clean_loss,
        min_epsilon=min_eps,
        min_epsilon_lower=min_eps_lower,
        min_l2=min_l2,
        r_hat_mean=float(np.mean(broken)) if broken is not None and broken.size else float("nan"),
        r_hat_median=float(np.median(broken)) if broken is not None and broken.size else float("nan"),
        n_unbroken=0 if min_l2 is None else int((correct.numpy() & np.isnan(min_l2)).sum()),
    )


def _logits(model, images, batch_size, device) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([
            model(images[start : start + batch_size].to(device)).float().cpu()
            for start in range(0, images.shape[0], batch_size)
        ])


def _cross_entropy(logits, targets) -> torch.Tensor:
    return torch.nn.functional.cross_entropy(logits, targets, reduction="none")


def _sweep(model, images, targets, correct, name, settings, device) -> AttackCurve:
    unit = get_attack(name)
    norm, budgets = unit.norm, unit.budgets(settings)
    fooled, losses = [], []
    for budget in budgets:
        eps = unit.to_image_units(budget)
        adversarial = _attack(model, images, targets, name, eps, settings, device)
        logits = _logits(model, adversarial, settings.batch_size, device)
        fooled.append((logits.argmax(dim=1) != targets).numpy())
        losses.append(float(_cross_entropy(logits, targets).mean()))
    fooled = np.stack(fooled, axis=1)
    robust = correct.numpy()[:, None] & ~np.logical_or.accumulate(fooled, axis=1)
    return AttackCurve(
        attack=name, norm=norm, epsilons=tuple(budgets),
        accuracy=tuple(float(v) for v in robust.mean(axis=0)), loss=tuple(losses), fooled=fooled,
    )


def _attack(model, images, targets, name, eps, settings, device, random_start=True):
    """Adversarial images for a scalar budget, or a per-sample ``(N,)`` tensor of budgets."""
    per_sample = isinstance(eps, torch.Tensor)
    if not per_sample and eps == 0:
        return images.clone()  # every attack leaves the image unchanged at budget 0
    out = []
    for start in range(0, images.shape[0], settings.batch_size):
        batch = slice(start, start + settings.batch_size)
        budget = eps[batch].to(device) if per_sample else eps
        attack = get_attack(name).build(model, budget, steps=settings.pgd_steps, random_start=random_start)
        attack.set_device(device)
        out.append(attack(images[batch].to(device), targets[batch].to(device)).cpu())
    return torch.cat(out)


def _minimal_budget(model, images, targets, correct, name, max_budget, settings, device):
    """Per-sample bisection of the smallest budget at which deterministic PGD flips the
    prediction. Returns ``(upper, lower, l2_norm)`` arrays: the flipping budget, the
    largest non-flipping budget tried, and the L2 norm of the flipping perturbation."""
    n_images = images.shape[0]
    upper = np.full(n_images, np.nan)
    lower = np.zeros(n_images)
    norms = np.full(n_images, np.nan)
    misclassified = ~correct.numpy()
    upper[misclassified], norms[misclassified] = 0.0, 0.0
    active = np.flatnonzero(correct.numpy())
    if active.size == 0:
        return upper, lower, norms
    hi = torch.full((active.size,), float(max_budget))
    lo = torch.zeros(active.size)
    found = torch.zeros(active.size, dtype=torch.bool)
    best = torch.full((active.size,), float("nan"))
    sub_images, sub_targets = images[active], targets[active]
    for step in range(settings.bisection_steps + 1):
        budget = hi if step == 0 else (lo + hi) / 2
        candidates = torch.arange(active.size) if step == 0 else torch.nonzero(found).flatten()
        if candidates.numel() == 0:
            break
        adversarial = _attack(
            model, sub_images[candidates], sub_targets[candidates], name, budget[candidates],
            settings, device, random_start=False,
        )
        flipped = _logits(model, adversarial, settings.batch_size, device).argmax(dim=1) != sub_targets[candidates]
        size = (adversarial - sub_images[candidates]).flatten(1).norm(dim=1)
        flipped_rows, kept_rows = candidates[flipped], candidates[~flipped]
        hi[flipped_rows] = budget[flipped_rows]
        best[flipped_rows] = size[flipped]
        found[flipped_rows] = True
        if step > 0:
            lo[kept_rows] = budget[kept_rows]
    upper[active] = np.where(found.numpy(), hi.numpy(), np.nan)
    lower[active] = lo.numpy()
    norms[active] = best.numpy()
    return upper, lower, norms


@dataclass(frozen=True)
class PairCertificate:
    """Where the model's decision flips near the sharpest pair (docs/science.md §5).

    If the model classifies both images of a differently-labelled pair correctly, its
    decision changes on the segment between them, so one of the two has an adversarial
    perturbation of L2 norm at most ``distance / 2``. That is a theorem, so it is not
    reported as a check; what is measured is where the decision actually flips.

    Attributes:
        distance: ``‖x_j − x_k‖₂`` in the model's [0, 1] input space.
        both_correct: whether the model classifies both images correctly.
        segment_flip: L2 distance from the nearer image to the first point on the segment
            where the prediction leaves that image's label (grid of ``resolution`` points).
        pgd_flip: the smaller of the two images' smallest PGD-L2 perturbations found.
        flip_radius: ``min(segment_flip, pgd_flip)``: a measured upper bound on the robust
            radius of the nearer of the two images (model input units; NaN when no flip
            was found).
    """

    distance: float
    both_correct: bool
    segment_flip: float
    pgd_flip: float
    flip_radius: float

    @property
    def flip_fraction(self) -> float:
        """``flip_radius / (distance / 2)``: at most 1 (up to the grid step) when both
        images are classified correctly; how far below the geometric bound the model is."""
        return self.flip_radius / (self.distance / 2) if self.distance > 0 else float("nan")


def pair_certificate(model, x_j, x_k, y_j, y_k, pgd_flips=(float("nan"), float("nan")), *, device=None, resolution=201) -> PairCertificate:
    """Where the decision flips on the segment between two ``(C, H, W)`` images in [0, 1]
    (and, given ``pgd_flips``, the smallest PGD-L2 flips of the two images)."""
    device = resolve_device(device)
    x_j, x_k = torch.as_tensor(x_j, dtype=torch.float32), torch.as_tensor(x_k, dtype=torch.float32)
    distance = float((x_k.double() - x_j.double()).norm())
    t = torch.linspace(0.0, 1.0, resolution)
    path = x_j.unsqueeze(0) + t.view(-1, 1, 1, 1) * (x_k - x_j).unsqueeze(0)
    with eval_mode(model):
        model.to(device)
        predicted = _logits(model, path, 256, device).argmax(dim=1)
    both_correct = bool(predicted[0] == y_j and predicted[-1] == y_k)
    leaves_j = torch.nonzero(predicted != y_j).flatten()
    leaves_k = torch.nonzero(predicted.flip(0) != y_k).flatten()
    candidates = [float(t[i[0]]) * distance for i in (leaves_j, leaves_k) if i.numel()]
    segment_flip = min(candidates) if candidates else float("nan")
    pgd_flip = float(np.nanmin(pgd_flips)) if np.isfinite(pgd_flips).any() else float("nan")
    found = [v for v in (segment_flip, pgd_flip) if np.isfinite(v)]
    return PairCertificate(
        distance=distance,
        both_correct=both_correct,
        segment_flip=segment_flip,
        pgd_flip=pgd_flip,
        flip_radius=min(found) if found else float("nan"),
    )
