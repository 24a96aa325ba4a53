"""A registry of named units (estimators, attacks): the one place a choice is declared."""

from __future__ import annotations

from typing import Generic, TypeVar

__all__ = ["Registry"]

Unit = TypeVar("Unit")


class Registry(dict, Generic[Unit]):
    """Name → unit, in registration order (the order forms offer them).

    Args:
        kind: what the units are, for messages (``"estimator"``).

    >>> units = Registry("unit")
    >>> class One:
    ...     name = "one"
    >>> _ = units.register(One())
    >>> units.lookup("two")
    Traceback (most recent call last):
    ...
    ValueError: Unknown unit 'two'; use one of ['one'].
    """

    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind

    def register(self, unit: Unit) -> Unit:
        """Add ``unit`` under its ``name``, which must be new."""
        if unit.name in self:
            raise ValueError(f"An {self.kind} named {unit.name!r} is already registered.")
        self[unit.name] = unit
        return unit

    def unregister(self, name: str) -> None:
        """Remove the unit ``name``."""
        self.pop(name)

    def lookup(self, name: str) -> Unit:
        """The unit ``name``; an unknown name raises a ``ValueError`` listing the known ones."""
        try:
            return self[name]
        except KeyError:
            raise ValueError(f"Unknown {self.kind} {name!r}; use one of {list(self)}.") from None
