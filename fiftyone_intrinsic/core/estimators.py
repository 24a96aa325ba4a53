"""Intrinsic-dimension estimators, one unit each, in one registry (docs/science.md §3).

Every estimator works from exact nearest-neighbour distances ``T_j(x_i)`` (the point
itself excluded, exact duplicates removed first). A unit holds its formula, the settings
it reads, its label and docs; the settings model, the command line, the operator forms and
the interval all read their choices from :data:`ESTIMATORS`. Adding an estimator is one
subclass of :class:`Estimator` and one :func:`register_estimator` call.

Numpy only: the plugin imports this module to build its forms, without torch.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from .registry import Registry

__all__ = [
    "collapsed",
    "Estimator",
    "LevinaBickelMLE",
    "PaperMLE",
    "MacKayGhahramaniMLE",
    "TwoNN",
    "ESTIMATORS",
    "register_estimator",
    "unregister_estimator",
    "get_estimator",
]


class Estimator:
    """One intrinsic-dimension estimator.

    The global estimate is a function of one statistic per point (so the interval can
    recompute it on subsamples): :meth:`point_statistics` computes it from the neighbour distances,
    :meth:`combine` turns (a resample of) it into the estimate.

    Attributes:
        name: registry key, as given in settings, forms and the command line.
        label: short label for forms.
        description: one line for forms and ``--help``.
        parameters: the :class:`~fiftyone_intrinsic.core.settings.DimensionSettings`
            fields the estimator reads beyond its name (``"k"``, ``"discard_fraction"``);
            forms show only these.
    """

    name: ClassVar[str]
    label: ClassVar[str]
    description: ClassVar[str]
    parameters: ClassVar[tuple[str, ...]] = ("k",)

    def neighbors_needed(self, k: int) -> int:
        """Nearest neighbours of each point that the estimator reads."""
        return k

    def point_statistics(self, distances: np.ndarray) -> np.ndarray:
        """``(M,)`` per-point statistic from ``(M, n)`` ascending, positive distances."""
        raise NotImplementedError

    def combine(self, statistics: np.ndarray, *, k: int, discard_fraction: float) -> float:
        """The global estimate from ``(M,)`` per-point statistics."""
        raise NotImplementedError

    def local(self, statistics: np.ndarray, *, k: int) -> np.ndarray:
        """``(M,)`` local estimates (``inf`` where a statistic is 0)."""
        raise NotImplementedError

    def curve(self, distances: np.ndarray) -> list:
        """``[(k', d)]`` the estimate with fewer neighbours, from the same distances
        (the ID-versus-k curve); empty when the estimator has no k."""
        return []


class LevinaBickelMLE(Estimator):
    """Levina & Bickel (2005) with MacKay & Ghahramani's inverse averaging:
    ``S_i = Σ_{j<k} log(T_k / T_j)``, ``d = (k − offset) / mean_i S_i``, local
    ``d_i = (k − offset) / S_i``."""

    #: 2 for the ``k − 2`` numerator of Pope et al. and Konz & Mazurowski, 1 for ``k − 1``.
    offset: ClassVar[int]

    def point_statistics(self, distances):
        return np.log(distances[:, -1:] / distances[:, :-1]).sum(axis=1)

    def combine(self, statistics, *, k, discard_fraction):
        return float((k - self.offset) / statistics.mean())

    def local(self, statistics, *, k):
        with np.errstate(divide="ignore"):
            return (k - self.offset) / statistics

    def curve(self, distances):
        # S_i(k') = (k' − 1)·log T_k' − Σ_{j<k'} log T_j, for k' = 3 … k
        log_t = np.log(distances)
        prefix = np.cumsum(log_t, axis=1)
        points = []
        for k in range(3, distances.shape[1] + 1):
            log_sums = (k - 1) * log_t[:, k - 1] - prefix[:, k - 2]
            points.append((k, float((k - self.offset) / log_sums.mean())))
        return points


class PaperMLE(LevinaBickelMLE):
    """MLE with the ``k − 2`` numerator, as Pope et al. (ICLR 2021) and Konz & Mazurowski
    (ICLR 2024); equal to scikit-dimension's ``MLE(unbiased=True)``."""

    name = "mle"
    label = "MLE (paper)"
    description = "Levina-Bickel, (k-2) / mean S, as Konz & Mazurowski"
    offset = 2


class MacKayGhahramaniMLE(LevinaBickelMLE):
    """MLE with the ``k − 1`` numerator, equal to scikit-dimension's ``MLE()``."""

    name = "mle_mg"
    label = "MLE (MacKay-Ghahramani)"
    description = "(k-1) / mean S, as scikit-dimension"
    offset = 1


class TwoNN(Estimator):
    """Facco et al. (2017): ``μ_i = T_2 / T_1`` sorted, the largest fraction ``f``
    discarded, ``−log(1 − i/N) = d · log μ_(i)`` fitted through the origin, as
    scikit-dimension's ``TwoNN()``; local ``d_i = 1 / log μ_i`` (the one-point maximum
    likelihood estimate of the Pareto law of μ)."""

    name = "twonn"
    label = "TwoNN"
    description = "Facco et al. 2017, least squares through the origin"
    parameters = ("discard_fraction",)

    def neighbors_needed(self, k):
        return 2

    def point_statistics(self, distances):
        return distances[:, 1] / distances[:, 0]

    def combine(self, statistics, *, k, discard_fraction):
        n_points = statistics.shape[0]
        n_kept = int(n_points * (1 - discard_fraction))
        if n_kept < 2:
            raise ValueError(
                f"TwoNN keeps {n_kept} of {n_points} points with discard_fraction="
                f"{discard_fraction}; it needs at least 2. Add samples or lower discard_fraction."
            )
        log_ratios = np.log(np.sort(statistics)[:n_kept])
        targets = -np.log(1.0 - np.arange(1, n_kept + 1) / n_points)
        return float(log_ratios @ targets / (log_ratios @ log_ratios))

    def local(self, statistics, *, k):
        with np.errstate(divide="ignore"):
            return 1.0 / np.log(statistics)


#: Registered estimators by name, in the order forms offer them.
ESTIMATORS: Registry[Estimator] = Registry("estimator")


#: Add an estimator (its ``name`` must be new), remove one, look one up by name
#: (an unknown name raises a ``ValueError`` listing the registered ones).
register_estimator, unregister_estimator, get_estimator = ESTIMATORS.register, ESTIMATORS.unregister, ESTIMATORS.lookup


register_estimator(PaperMLE())
register_estimator(MacKayGhahramaniMLE())
register_estimator(TwoNN())


#: TwoNN below this fraction of MLE on the same points has collapsed (docs/science.md §7).
COLLAPSE_RATIO = 0.5


def collapsed(twonn: float, mle: float) -> bool:
    """Whether a TwoNN estimate has collapsed: far below MLE on the same points, the mark of
    near-duplicates (tiny first-neighbour distances). Its interval then measures the
    spread of a wrong number and is not shown.

    >>> collapsed(1.11, 7.9), collapsed(6.5, 7.9)
    (True, False)
    """
    return twonn < COLLAPSE_RATIO * mle
