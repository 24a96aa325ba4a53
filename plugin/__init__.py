"""Plugin entry of @fiftyone-intrinsic/intrinsic: registers the operators and panels.

FiftyOne imports this module with the repository root as its package, so the operators
come from the sibling folder ``operators/``.
"""

from ..operators import OPERATORS


def register(plugin):
    for operator in OPERATORS:
        plugin.register(operator)
