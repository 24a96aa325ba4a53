"""Checks of class labels as a user gives them: one type, and classes rather than values.

Needs nothing but the standard library.
"""

from __future__ import annotations

import numbers
import warnings
from typing import Sequence

__all__ = ["check_label_types", "warn_if_not_classes"]


def check_label_types(labels: Sequence) -> None:
    """Refuse labels that mix strings with other types.

    numpy compares such labels as strings, so ``1`` and ``"1"`` would become one class.

    Raises:
        ValueError: naming the types and an example of each.

    >>> check_label_types(["a", "b"]); check_label_types([0, 1.0])
    >>> check_label_types([1, "1"])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: Labels mix strings with other types (str: '1'; int: 1); ...
    """
    examples = {}
    for label in labels:
        if label is None or (isinstance(label, numbers.Real) and label != label):
            continue  # missing (None or NaN): the caller reports it
        kind = "str" if isinstance(label, str) else "other"
        examples.setdefault(kind, label)
    if len(examples) > 1:
        other = examples["other"]
        raise ValueError(
            f"Labels mix strings with other types (str: {examples['str']!r}; "
            f"{type(other).__name__}: {other!r}); compared as strings, 1 and '1' would be "
            "one class. Give labels of one type, e.g. all strings: [str(y) for y in labels]."
        )


def warn_if_not_classes(n_classes: int, n_samples: int) -> None:
    """Warn when there are more classes than half the samples (and more than two):
    K_F expects class labels, and continuous values given as labels make almost every
    pair differently labelled, which is slow and measures something else.

    >>> warn_if_not_classes(2, 3)  # two classes never warn
    """
    if n_classes > max(2, n_samples / 2):
        warnings.warn(
            f"{n_classes} distinct labels for {n_samples} samples: label sharpness K_F "
            "expects class labels (several samples per class). Continuous values used as "
            "labels make nearly every pair a differently-labelled pair, so the search is slow "
            "and K_F is not the paper's. Bin them into classes or check the label field.",
            UserWarning,
            stacklevel=3,
        )
