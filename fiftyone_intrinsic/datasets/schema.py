"""What each kind of run writes on a dataset: one table, read by every module that needs
a name.

A run key owns the sample fields, tags and saved views its method's :class:`RunSchema`
derives from it. The compute functions write them, the run records them in its config so
that deletion removes exactly them, the panel and the command line look them up here. A
name is never spelled anywhere else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

__all__ = [
    "RunSchema",
    "RunNames",
    "SCHEMAS",
    "DIMENSION",
    "SHARPNESS",
    "REPRESENTATION",
    "ROBUSTNESS",
    "SCALING",
    "METHODS",
    "schema_of",
]


@dataclass(frozen=True)
class RunNames:
    """The names one run key owns, by role.

    Attributes:
        fields: role → sample field name.
        tags: role → sample tag.
        saved_views: role → saved view name.
    """

    fields: Mapping[str, str]
    tags: Mapping[str, str]
    saved_views: Mapping[str, str]

    def field(self, role: str) -> str:
        return self.fields[role]

    def tag(self, role: str) -> str:
        return self.tags[role]

    def view(self, role: str) -> str:
        return self.saved_views[role]


@dataclass(frozen=True)
class RunSchema:
    """What a run of one method writes, as name templates with ``{key}`` (and, for
    ``per_attack_fields``, ``{attack}``).

    Attributes:
        method: the run method, recorded in the run's config.
        fields, tags, saved_views: role → template.
        per_attack_fields: role → template expanded once per attack of the run
            (the role becomes ``"<role>:<attack>"``).
        shared_tags: tag roles that people apply too (in the App, by hand): the run does
            not record which samples carry them, and deleting it untags every sample.
    """

    method: str
    fields: Mapping[str, str] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)
    saved_views: Mapping[str, str] = field(default_factory=dict)
    per_attack_fields: Mapping[str, str] = field(default_factory=dict)
    shared_tags: Sequence[str] = ()

    def names(self, run_key: str, attacks: Sequence[str] = ()) -> RunNames:
        """The names ``run_key`` owns.

        >>> SHARPNESS.names("kf").view("pairs")
        'kf_sharp_pairs'
        >>> ROBUSTNESS.names("rob", attacks=["fgsm"]).field("flip_epsilon:fgsm")
        'rob_flip_epsilon_fgsm'
        """
        fields = {role: t.format(key=run_key) for role, t in self.fields.items()}
        for role, template in self.per_attack_fields.items():
            for attack in attacks:
                fields[f"{role}:{attack}"] = template.format(key=run_key, attack=attack)
        return RunNames(
            fields=fields,
            tags={role: t.format(key=run_key) for role, t in self.tags.items()},
            saved_views={role: t.format(key=run_key) for role, t in self.saved_views.items()},
        )


DIMENSION = RunSchema(
    "intrinsic_dimension",
    fields={"local_dimension": "{key}_local_dimension"},
)
SHARPNESS = RunSchema(
    "label_sharpness",
    fields={
        "distance": "{key}_nearest_other_distance", "neighbor": "{key}_nearest_other_id",
        # ranks (1 = sharpest) of the sharp pairs a sample is in: a hub is in several
        "pair_ranks": "{key}_pair_ranks",
    },
    tags={"pair": "{key}:sharp_pair", "duplicate": "{key}:conflicting_duplicate", "reviewed": "{key}:reviewed"},
    saved_views={"pairs": "{key}_sharp_pairs"},
    shared_tags=("reviewed",),
)
REPRESENTATION = RunSchema(
    "representation_dimension",
    fields={"local_dimension": "{key}_local_dimension"},
)
ROBUSTNESS = RunSchema(
    "adversarial_robustness",
    fields={"correct": "{key}_clean_correct", "min_epsilon": "{key}_min_epsilon", "min_l2": "{key}_min_l2"},
    per_attack_fields={"flip_epsilon": "{key}_flip_epsilon_{attack}"},
    tags={"fragile": "{key}:flips_at_smallest_epsilon"},
    saved_views={"fragile": "{key}_fragile"},
)
SCALING = RunSchema(
    "scaling_law",
    fields={"split": "{key}_split"},
)

#: Method → schema, for every kind of run this library writes.
SCHEMAS: dict[str, RunSchema] = {s.method: s for s in (DIMENSION, SHARPNESS, REPRESENTATION, ROBUSTNESS, SCALING)}

#: Run methods written by this library.
METHODS = tuple(SCHEMAS)


def schema_of(method: str) -> RunSchema:
    """The schema of ``method``."""
    try:
        return SCHEMAS[method]
    except KeyError:
        raise ValueError(f"Unknown run method {method!r}; methods: {list(SCHEMAS)}.") from None
