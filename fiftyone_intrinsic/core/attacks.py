"""Adversarial attacks from torchattacks, one unit each, in one registry (docs/science.md §5).

A unit holds the attack's norm, the budgets it sweeps, its label and how to build the
torchattacks object. The settings model, the robustness operator's form and the sweep read
their choices from :data:`ATTACKS`. Adding an attack is one subclass of :class:`Attack` and
one :func:`register_attack` call.

torch and torchattacks are imported only when an attack is built, so the plugin can read
this registry to draw its forms without them.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from .registry import Registry

__all__ = ["Attack", "FGSM", "PGD", "PGDL2", "ATTACKS", "register_attack", "unregister_attack", "get_attack"]


class Attack:
    """One attack of the robustness sweep, on images in [0, 1].

    Attributes:
        name: registry key, as given in settings and forms.
        label: short label for forms.
        norm: ``"linf"`` (budgets in 1/255 units, from ``RobustnessSettings.epsilons``)
            or ``"l2"`` (L2 norm of [0, 1] images, from ``RobustnessSettings.epsilons_l2``).
    """

    name: ClassVar[str]
    label: ClassVar[str]
    norm: ClassVar[Literal["linf", "l2"]]

    def build(self, model, eps, *, steps: int, random_start: bool):
        """The torchattacks object for budget ``eps``: a float, or a ``(B,)`` tensor of
        per-sample budgets (in [0, 1] image units: L∞ budgets already divided by 255)."""
        raise NotImplementedError

    def budgets(self, settings) -> tuple:
        """The budgets of the sweep, in the units :attr:`norm` names."""
        return settings.epsilons if self.norm == "linf" else settings.epsilons_l2

    def to_image_units(self, budget: float) -> float:
        """A budget of the sweep in [0, 1] image units."""
        return budget / 255 if self.norm == "linf" else budget


def _image_shaped(eps):
    # a per-sample budget broadcasts through torchattacks' arithmetic against (B, C, H, W)
    import torch

    return eps.view(-1, 1, 1, 1) if isinstance(eps, torch.Tensor) else eps


class FGSM(Attack):
    """Fast gradient sign method (Goodfellow et al. 2015), the paper's attack."""

    name = "fgsm"
    label = "FGSM (L-inf)"
    norm = "linf"

    def build(self, model, eps, *, steps, random_start):
        import torchattacks

        return torchattacks.FGSM(model, eps=_image_shaped(eps))


class PGD(Attack):
    """Projected gradient descent in the L∞ ball (Madry et al. 2018), step ε/4."""

    name = "pgd"
    label = "PGD (L-inf)"
    norm = "linf"

    def build(self, model, eps, *, steps, random_start):
        import torchattacks

        shaped = _image_shaped(eps)
        return torchattacks.PGD(model, eps=shaped, alpha=shaped / 4, steps=steps, random_start=random_start)


class PGDL2(Attack):
    """Projected gradient descent in the L2 ball, step ε/4."""

    name = "pgd_l2"
    label = "PGD-L2"
    norm = "l2"

    def build(self, model, eps, *, steps, random_start):
        import torchattacks

        # PGD-L2's eps meets per-sample norms (B,), its step meets images
        return torchattacks.PGDL2(model, eps=eps, alpha=_image_shaped(eps) / 4, steps=steps, random_start=random_start)


#: Registered attacks by name, in the order forms offer them.
ATTACKS: Registry[Attack] = Registry("attack")


#: Add an attack (its ``name`` must be new), remove one, look one up by name
#: (an unknown name raises a ``ValueError`` listing the registered ones).
register_attack, unregister_attack, get_attack = ATTACKS.register, ATTACKS.unregister, ATTACKS.lookup


register_attack(FGSM())
register_attack(PGD())
register_attack(PGDL2())
