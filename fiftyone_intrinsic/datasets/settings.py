"""Settings of the computations on FiftyOne collections, shared by the Python functions,
the command line and the operators: where features come from, and the scaling-law run.

The array settings (:mod:`fiftyone_intrinsic.core.settings`) hold how each quantity is
computed; these add what only a collection has (fields, stored runs to reuse).
"""

from __future__ import annotations

from typing import Literal, Optional, Tuple

from pydantic import Field, field_validator

from ..core.settings import DEFAULT_K, FitSettings, LearningCurveSettings, Preprocessing, Settings

__all__ = ["FeatureSettings", "ScalingLawSettings", "as_feature_settings", "SCALING_MODES"]

#: ``"curve"``: the paper's sizes; ``"pilot"``: a small labeled set, sizes spread over a
#: wide range and the plan anchored on d_data; ``"before_labeling"``: d_data only.
SCALING_MODES = ("curve", "pilot", "before_labeling")


class FeatureSettings(Settings):
    """Where the feature vectors of FiftyOne samples come from."""

    embeddings_field: Optional[str] = Field(
        None,
        description="Use this field's vectors as features; None uses the pixels, "
        "preprocessed as `preprocessing` says.",
    )
    preprocessing: Preprocessing = Field(default_factory=Preprocessing)
    batch_size: int = Field(256, ge=1, le=100_000, description="Images loaded per batch.")
    num_workers: Optional[int] = Field(
        None, ge=1, le=512,
        description="Processes decoding images; None uses the cores available.",
    )
    use_store: bool = Field(
        True,
        description="Reuse the preprocessed pixels stored on disk by an earlier run of the same "
        "samples, files and preprocessing (and store them for later runs).",
    )

    @field_validator("embeddings_field")
    @classmethod
    def _not_blank(cls, value):
        if value is not None and not value.strip():
            raise ValueError("embeddings_field must be a field name or None, not blank")
        return value


def as_feature_settings(features) -> FeatureSettings:
    """A :class:`FeatureSettings` from itself, a dict of its fields, or ``None`` (pixels at
    their own size and channel count, in [0, 1])."""
    if features is None:
        return FeatureSettings()
    if isinstance(features, FeatureSettings):
        return features
    if isinstance(features, dict):
        return FeatureSettings(**features)
    raise TypeError(
        f"features must be a FeatureSettings, a dict of its fields or None; got {type(features).__name__}."
    )


class ScalingLawSettings(Settings):
    """How a scaling-law run measures, fits and plans (docs/science.md §1).

    ``curve`` says how the learning curve is measured, ``fit`` how the power law is fitted;
    the other fields say which images, which stored runs and which targets.
    :meth:`from_options` builds one from the flat keywords of
    :func:`~fiftyone_intrinsic.datasets.scaling.fit_scaling_law`.
    """

    mode: Literal["curve", "pilot", "before_labeling"] = Field(
        "curve",
        description="'curve': the paper's sizes 500 … 1750 (capped by the data); 'pilot': a "
        "small labeled set, six sizes from an eighth of it to all of it, the plan anchored on "
        "d_data; 'before_labeling': no labels, no training, the exponent −1/d_data predicts.",
    )
    curve: LearningCurveSettings = Field(default_factory=LearningCurveSettings)
    fit: FitSettings = Field(default_factory=FitSettings)
    size: Optional[int] = Field(
        None, ge=1, le=4096,
        description="Resize to size x size pixels; None keeps the images' own size.",
    )
    channels: Optional[Literal[1, 3]] = Field(
        None, description="1 (gray) or 3 (RGB); None keeps the images' own channel count.",
    )
    dimension_run_key: Optional[str] = Field(
        None, description="A stored intrinsic-dimension run of the same preprocessing to take d_data from.",
    )
    sharpness_run_key: Optional[str] = Field(
        None, description="A stored label-sharpness run of the same preprocessing to take K_F from.",
    )
    representation_run_key: Optional[str] = Field(
        None, description="A stored representation-dimension run to take d_repr from.",
    )
    measure: bool = Field(
        True,
        description="Without those runs, compute d_data (MLE) and K_F (exact) on the training "
        "pool; False leaves them out.",
    )
    dimension_k: int = Field(
        DEFAULT_K, ge=3, le=1000,
        description="k of the MLE measured on the pool; lowered to half the pool size minus "
        "one when the pool is too small for it (the k used is recorded with the run).",
    )
    target_loss: Optional[Tuple[float, ...]] = Field(
        None,
        description="Target test losses of the planner (nats); None: 0.9, 0.75 and 0.5 times "
        "the fitted loss at the largest size.",
    )

    @field_validator("target_loss")
    @classmethod
    def _positive_targets(cls, values):
        if values is not None and any(not v > 0 for v in values):
            raise ValueError(f"target losses must be positive; got {list(values)}")
        return values

    @property
    def device(self) -> Optional[str]:
        return self.curve.device

    @classmethod
    def from_options(cls, **options) -> "ScalingLawSettings":
        """Settings from flat keywords: this model's fields, and those of
        :class:`LearningCurveSettings` and :class:`FitSettings` (``seed`` seeds both)."""
        own = {k: options.pop(k) for k in list(options) if k in cls.model_fields and k not in ("curve", "fit")}
        curve = {k: options.pop(k) for k in list(options) if k in LearningCurveSettings.model_fields}
        fit = {k: options.pop(k) for k in list(options) if k in FitSettings.model_fields}
        if "seed" in curve:
            fit.setdefault("seed", curve["seed"])
        if options:
            known = sorted(set(cls.model_fields) | set(LearningCurveSettings.model_fields) | set(FitSettings.model_fields))
            raise TypeError(f"Unknown scaling-law options {sorted(options)}; known: {known}.")
        if curve.get("sizes") is not None:
            curve["sizes"] = tuple(int(n) for n in curve["sizes"])
        if own.get("target_loss") is not None:
            own["target_loss"] = tuple(float(v) for v in _as_list(own["target_loss"]))
        return cls(curve=LearningCurveSettings(**curve), fit=FitSettings(**fit), **own)


def _as_list(value):
    return list(value) if isinstance(value, (list, tuple)) else [value]
