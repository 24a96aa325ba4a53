"""Form inputs shared by the operators, and their translation into library settings.

Every check here runs in ``resolve_input``, which FiftyOne calls for App forms and SDK
calls alike: an invalid value marks its property invalid with a message that says what to
change, and nothing runs.
"""

import os

import fiftyone as fo
from fiftyone.operators import types
from pydantic import ValidationError

from fiftyone_intrinsic.core.settings import Preprocessing, setting_spec
from fiftyone_intrinsic.datasets import runs
from fiftyone_intrinsic.datasets.settings import FeatureSettings

DEVICE_CHOICES = ("auto", "cpu", "cuda")
CHANNEL_CHOICES = ("auto",) + tuple(str(c) for c in setting_spec(Preprocessing, "channels").choices)
CHANNEL_LABELS = {"auto": "Keep", "1": "Gray", "3": "RGB"}
VALUE_RANGE_LABELS = {"unit": "[0, 1]", "byte": "[0, 255] (paper)"}


def setting_input(inputs, model, name, label, **overrides):
    """A number, text or choice input whose default, bounds, description and choices come
    from field ``name`` of the settings ``model``; returns the property."""
    spec = setting_spec(model, name)
    options = dict(label=label, default=spec.default, description=spec.description)
    if spec.minimum is not None:
        options["min"] = spec.minimum
    if spec.maximum is not None:
        options["max"] = spec.maximum
    options.update(overrides)
    if spec.type is int:
        return inputs.int(name, **options)
    if spec.type is float:
        return inputs.float(name, **options)
    if spec.type is bool:
        return inputs.bool(name, **options)
    return inputs.str(name, **options)


def param(params, model, name):
    """The form's (or SDK call's) value of a settings field, or the field's default."""
    value = params.get(name)
    return setting_spec(model, name).default if value is None else value


def registry_choice(ctx, inputs, model, name, registry, label, default=None):
    """A radio choice among the units of a registry (estimators, attacks), labelled and
    described by the units themselves, defaulting to the settings field's default.

    Returns ``(prop, unit)``: the chosen unit, or the default's when the choice is unknown
    (the property is then flagged with the registered names)."""
    view = types.RadioGroup()
    for unit in registry.values():
        view.add_choice(unit.name, label=unit.label, description=getattr(unit, "description", None))
    default = default or setting_spec(model, name).default
    prop = inputs.enum(name, view.values(), default=default, label=label, view=view)
    chosen = ctx.params.get(name) or default
    if chosen not in registry:
        invalidate(prop, f"Unknown {name} {chosen!r}; choose one of {list(registry)}.")
        chosen = default
    return prop, registry[chosen]


def long_running_config(name, label, description, icon=None, delegate_by_default=False):
    """Config of an operator that computes for a while: a dynamic form, live progress from
    a generator, and both immediate and delegated execution."""
    import fiftyone.operators as foo

    return foo.OperatorConfig(
        name=name,
        label=label,
        description=description,
        icon=icon,
        dynamic=True,
        execute_as_generator=True,
        allow_immediate_execution=True,
        allow_delegated_execution=True,
        default_choice_to_delegated=delegate_by_default,
    )


def invalidate(prop, message):
    prop.invalid = True
    prop.error_message = message


def cuda_available():
    import torch

    return torch.cuda.is_available()


def add_run_key(ctx, inputs, method):
    """Run key (default: the method's name) and overwrite flag; validates the identifier,
    ownership and that an existing run of that key is of the same method."""
    default = method
    key = ctx.params.get("run_key", default)
    prop = inputs.str(
        "run_key", label="Run key", default=default, required=True,
        description="Name of the stored run (letters, digits, underscores)",
    )
    overwrite = inputs.bool(
        "overwrite", label="Overwrite", default=False,
        description="Replace an existing run with this key, and what it wrote",
    )
    try:
        runs.validate_run_key(ctx.dataset, key, bool(ctx.params.get("overwrite", False)), method)
    except ValueError as error:
        invalidate(prop, str(error))
    return prop, overwrite


def add_device(ctx, inputs):
    """Device choice; 'cuda' is offered only when a GPU is visible."""
    offered = [d for d in DEVICE_CHOICES if d != "cuda" or cuda_available()]
    choices = types.RadioGroup()
    for device in offered:
        choices.add_choice(device, label=device.upper() if device != "auto" else "Auto (GPU if present)")
    prop = inputs.enum("device", choices.values(), default="auto", label="Device", view=choices)
    device = ctx.params.get("device", "auto")
    if device not in offered:
        invalidate(
            prop,
            f"Device {device!r} is not available: no CUDA GPU is visible. Use 'cpu' or 'auto'.",
        )
    return prop


def device_param(ctx):
    device = ctx.params.get("device", "auto")
    return None if device == "auto" else device


def vector_fields(view):
    schema = view.get_field_schema(flat=True)
    return sorted(
        name for name, field in schema.items()
        if isinstance(field, (fo.VectorField, fo.ArrayField))
        or (isinstance(field, fo.ListField) and isinstance(field.field, (fo.FloatField, fo.IntField)))
    )


#: Views up to this many samples have their image files checked on the form (about 0.1 s).
FILE_CHECK_LIMIT = 50_000


def missing_image_files(view) -> list:
    """Paths of the view's images that are not files (views over
    :data:`FILE_CHECK_LIMIT` samples are checked when the images are read instead)."""
    if len(view) > FILE_CHECK_LIMIT:
        return []
    return [path for path in view.values("filepath") if not os.path.isfile(path)]


def count_non_finite(view, field: str):
    """Samples of ``view`` whose list-of-numbers ``field`` holds NaN or ±inf, counted by
    the database; ``None`` for fields stored as binary vectors (checked when read)."""
    if not isinstance(view.get_field(field), fo.ListField):
        return None
    non_finite = [float("nan"), float("inf"), float("-inf")]
    return view.mongo([{"$match": {field: {"$elemMatch": {"$in": non_finite}}}}]).count()


def add_features(ctx, inputs, view):
    """Pixels (with preprocessing) or an embeddings field; only the applicable options."""
    source = ctx.params.get("features_source", "pixels")
    sources = types.RadioGroup()
    sources.add_choice("pixels", label="Pixels", description="Preprocessed image pixels")
    sources.add_choice("embeddings", label="Embeddings field", description="Vectors stored on the samples")
    source_prop = inputs.enum("features_source", sources.values(), default="pixels", label="Features", view=sources)
    if source == "embeddings":
        fields = vector_fields(view)
        choices = types.DropdownView()
        for name in fields:
            choices.add_choice(name, label=name)
        prop = inputs.str("embeddings_field", label="Embeddings field", required=True, view=choices)
        field = ctx.params.get("embeddings_field")
        if field is not None and field not in view.get_field_schema(flat=True):
            invalidate(prop, f"Field {field!r} does not exist; vector fields of this dataset: {fields}.")
        elif field is not None:
            present = view.exists(field).count()
            non_finite = count_non_finite(view, field)
            if present < len(view):
                invalidate(
                    prop,
                    f"Field {field!r} has vectors for {present} of {len(view)} samples; compute "
                    "embeddings for the whole view or restrict the view.",
                )
            elif non_finite:
                invalidate(
                    prop,
                    f"Field {field!r} holds NaN or infinite values on {non_finite} samples; fix "
                    f"those embeddings or exclude them from the view.",
                )
        return
    missing = missing_image_files(view)
    if missing:
        invalidate(
            source_prop,
            f"{len(missing):,} image file(s) of this view cannot be found, e.g. {missing[0]!r}. "
            "Restore them, or restrict the view to samples whose files exist.",
        )
    size = inputs.int(
        "size", label="Image size", required=False,
        description="Resize to size x size pixels; empty keeps the images' own size "
        "(the paper uses 224)",
    )
    add_channels(inputs)
    ranges = types.RadioGroup()
    value_range = setting_spec(Preprocessing, "value_range")
    for choice in value_range.choices:
        ranges.add_choice(choice, label=VALUE_RANGE_LABELS[choice])
    inputs.enum("value_range", ranges.values(), default=value_range.default, label="Intensity range", view=ranges)
    setting_input(inputs, Preprocessing, "normalize_max", "Per-image max normalization")
    setting_input(inputs, FeatureSettings, "num_workers", "Decoding processes")
    try:
        feature_settings(ctx.params)
    except ValidationError as error:
        invalidate(size, pydantic_message(error))


def add_channels(inputs):
    """Channel choice: keep the images' own, gray or RGB."""
    view = types.RadioGroup()
    for choice in CHANNEL_CHOICES:
        view.add_choice(choice, label=CHANNEL_LABELS[choice])
    return inputs.enum("channels", view.values(), default="auto", label="Channels", view=view)


def channels_param(params):
    """The form's channel choice as the settings take it: None, 1 or 3."""
    channels = params.get("channels", "auto")
    return None if channels in (None, "auto") else int(channels)


def feature_settings(params) -> FeatureSettings:
    """The :class:`FeatureSettings` a form's (or SDK call's) parameters describe."""
    if params.get("features_source", "pixels") == "embeddings":
        return FeatureSettings(embeddings_field=params.get("embeddings_field"))
    preprocessing = Preprocessing(
        size=None if params.get("size") in (None, "") else params.get("size"),  # 0 is refused, not "native"
        channels=channels_param(params),
        value_range=params.get("value_range", setting_spec(Preprocessing, "value_range").default),
        normalize_max=bool(params.get("normalize_max", setting_spec(Preprocessing, "normalize_max").default)),
    )
    return FeatureSettings(preprocessing=preprocessing, num_workers=params.get("num_workers") or None)


def add_label_field(ctx, inputs, view):
    """A Classification field, with checks that K_F is defined on the view."""
    fields = sorted(view.get_field_schema(embedded_doc_type=fo.Classification).keys())
    choices = types.DropdownView()
    for name in fields:
        choices.add_choice(name, label=name)
    prop = inputs.str("label_field", label="Label field", required=True, view=choices,
                      default="ground_truth" if "ground_truth" in fields else (fields[0] if fields else None),
                      description="Classification field whose labels K_F compares")
    field = ctx.params.get("label_field")
    if field is None:
        return prop
    if field not in fields:
        kind = view.get_field(field)
        what = "does not exist" if kind is None else f"is a {type(kind).__name__}, not a Classification"
        invalidate(prop, f"Field {field!r} {what}. Classification fields: {fields}.")
        return prop
    labelled = view.count(f"{field}.label")
    if labelled < len(view):
        invalidate(
            prop,
            f"{len(view) - labelled} of {len(view)} samples have no label in {field!r}; label "
            f"them or restrict the view, e.g. to view.exists('{field}').",
        )
    elif len(view.distinct(f"{field}.label")) < 2:
        invalidate(prop, f"Every sample has the same label in {field!r}: K_F needs two classes.")
    return prop


def check_enough_samples(prop, view, needed, what):
    if len(view) < needed:
        invalidate(prop, f"The view has {len(view)} samples; {what} needs at least {needed}.")


def pydantic_message(error: ValidationError) -> str:
    """One line naming each invalid setting and why."""
    return "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
