"""Plugin entry of @fiftyone-intrinsic/intrinsic: registers the operators and panels.

FiftyOne imports this module with the repository root as its package, so the operators
come from the sibling folder ``operators/``. Nothing heavy (torch) is imported here.
"""

from ..operators import OPERATORS
from .panels import IntrinsicPropertiesPanel, OpenIntrinsicPanel


def register(plugin):
    for operator in OPERATORS:
        plugin.register(operator)
    plugin.register(OpenIntrinsicPanel)
    plugin.register(IntrinsicPropertiesPanel)
