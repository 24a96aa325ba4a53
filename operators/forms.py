"""Form inputs shared by the operators, and their translation into library settings.

Every check here runs in ``resolve_input``, which FiftyOne calls for App forms and SDK
calls alike: an invalid value marks its property invalid with a message that says what to
change, and nothing runs.
"""


import fiftyone as fo
from fiftyone import ViewField as F
from fiftyone.operators import types
from fiftyone.operators.constants import ViewTarget
from pydantic import ValidationError

from fiftyone_intrinsic.core.settings import Preprocessing, setting_spec
from fiftyone_intrinsic.datasets import runs
from fiftyone_intrinsic.datasets.feature_store import shapes_message
from fiftyone_intrinsic.datasets.settings import FeatureSettings

from . import data_checks

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


def next_free_run_key(dataset, method):
    """``method``, else ``method_2``, ``method_3``, … : the first key that no run of the
    dataset holds (of any tool, complete or still being computed by another process) and
    whose sample fields and saved view do not exist, so a new form does not open on a key
    that is taken. Tags are not checked here: that needs a scan of every sample, and the
    run's own check at execution still refuses a taken tag."""
    from fiftyone_intrinsic.datasets.schema import schema_of

    taken = set(dataset.list_runs())
    schema = schema_of(method)

    def free(key):
        if key in taken:
            return False
        names = schema.names(key)
        return not any(dataset.has_sample_field(f) for f in names.fields.values()) and not any(
            dataset.has_saved_view(v) for v in names.saved_views.values()
        )

    key, n = method, 2
    while not free(key):
        key, n = f"{method}_{n}", n + 1
    return key


def add_run_key(ctx, inputs, method):
    """Run key (default: the first free one) and a visible "replace" checkbox; validates
    the identifier, ownership and that an existing run of that key is of the same method.

    Messages speak of the form's inputs, not of Python arguments."""
    default = next_free_run_key(ctx.dataset, method)
    key = ctx.params.get("run_key") or default
    overwrite = bool(ctx.params.get("overwrite", False))
    prop = inputs.str(
        "run_key", label="Run key", default=default, required=True,
        description="Name of the stored run (letters, digits, underscores)",
    )
    exists = isinstance(key, str) and key in ctx.dataset.list_runs()
    replace = inputs.bool(
        "overwrite", default=False, view=types.CheckboxView(),
        label=f"Replace the existing run '{key}' and what it wrote" if exists
        else "Replace an existing run with this key, and what it wrote",
        description="Its fields, tags and saved view are replaced when the new run is stored",
    )
    try:
        runs.validate_run_key(ctx.dataset, key, overwrite, method)
    except ValueError as error:
        message = str(error)
        if exists and not overwrite and "already exists" in message:
            message = (
                f"A run named '{key}' already exists on this dataset. Use another key "
                f"(e.g. '{default}'), or tick \"Replace the existing run '{key}'\" below."
            )
        invalidate(prop, message)
    return prop, replace


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
    """Top-level fields that hold one numeric vector per sample, all of one length:
    vector and array fields, and lists of numbers whose non-empty lists all have the same
    length (one aggregation for all of them). Subfields of labels (``ground_truth.logits``)
    are not offered: the feature reader takes top-level fields only."""
    schema = view.get_field_schema()
    vectors = [name for name, field in schema.items() if isinstance(field, (fo.VectorField, fo.ArrayField))]
    lists = [
        name for name, field in schema.items()
        if isinstance(field, fo.ListField) and isinstance(field.field, (fo.FloatField, fo.IntField))
    ]
    if lists:
        lengths = view.aggregate([fo.Distinct(F(name).length()) for name in lists])
        lists = [name for name, found in zip(lists, lengths) if len(set(found) - {0}) == 1]
    return sorted(vectors + lists)


def _not_a_vector_field(view, field: str) -> str:
    """Why ``field`` (which exists) is not offered as embeddings, for the form's message."""
    if "." in field:
        return f"is a subfield of {field.split('.')[0]!r}, not a top-level field"
    kind = view.get_field(field)
    if isinstance(kind, fo.ListField) and isinstance(kind.field, (fo.FloatField, fo.IntField)):
        lengths = sorted(set(view.distinct(F(field).length())) - {0})
        if not lengths:
            return "has no vectors in this view"
        return f"holds lists of different lengths ({', '.join(map(str, lengths[:5]))}{', …' if len(lengths) > 5 else ''})"
    return f"is a {type(kind).__name__}, not a vector of numbers"


def embeddings_coverage(view, field: str):
    """``(samples, with_vectors, non_finite)`` of ``view`` for ``field``, in one database
    round trip; ``non_finite`` (samples holding NaN or ±inf) is ``None`` for fields stored
    as binary vectors, which are checked when read."""
    has = fo.Sum(F(field).exists().if_else(1, 0))
    if not isinstance(view.get_field(field), fo.ListField):
        return (*view.aggregate([fo.Count(), has]), None)
    bad = [float("nan"), float("inf"), float("-inf")]
    non_finite = fo.Sum((F(field).filter(F().is_in(bad)).length() > 0).if_else(1, 0))
    return tuple(view.aggregate([fo.Count(), has, non_finite]))


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
        elif field is not None and field not in fields:
            invalidate(
                prop,
                f"Field {field!r} {_not_a_vector_field(view, field)}; choose one of {fields}, or "
                "store the embeddings as a top-level field with one vector of one length per sample.",
            )
        elif field is not None:
            total, present, non_finite = embeddings_coverage(view, field)
            if present < total:
                invalidate(
                    prop,
                    f"Field {field!r} has vectors for {present} of {total} samples; compute "
                    "embeddings for the whole view or restrict the view.",
                )
            else:
                if non_finite is None:  # a binary vector field: read it (small views, cached)
                    non_finite = data_checks.non_finite_vectors(view, field)
                if non_finite:
                    invalidate(
                        prop,
                        f"Field {field!r} holds NaN or infinite values on {non_finite} samples; fix "
                        f"those embeddings or exclude them from the view.",
                    )
        return
    headers = data_checks.image_headers(view)
    if headers and headers.missing:
        invalidate(
            source_prop,
            f"{len(headers.missing):,} image file(s) of this view cannot be found, e.g. "
            f"{headers.missing[0]!r}. Restore them, or restrict the view to samples whose files exist.",
        )
    elif headers and headers.unreadable:
        invalidate(
            source_prop,
            f"{len(headers.unreadable):,} file(s) of this view are not images PIL can read, e.g. "
            f"{headers.unreadable[0]}. Fix or replace them, or restrict the view to the other samples.",
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
        preprocessing = feature_settings(ctx.params).preprocessing
    except ValidationError as error:
        invalidate(size, pydantic_message(error))
        return
    if headers and headers.shapes:
        converted = {}
        for (width, height, channels), path in headers.shapes.items():
            shape = (preprocessing.size or height, preprocessing.size or width, preprocessing.channels or channels)
            converted.setdefault(shape, path)
        if len(converted) > 1:
            invalidate(size, shapes_message(converted))


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
    # one database round trip per keystroke instead of three
    total, labelled, classes = view.aggregate(
        [fo.Count(), fo.Count(f"{field}.label"), fo.Distinct(f"{field}.label")]
    )
    if labelled < total:
        invalidate(
            prop,
            f"{total - labelled} of {total} samples have no label in {field!r}; label "
            f"them or restrict the view, e.g. to view.exists('{field}').",
        )
    elif len(classes) < 2:
        invalidate(prop, f"Every sample has the same label in {field!r}: K_F needs two classes.")
    return prop


def check_enough_samples(prop, view, needed, what):
    if len(view) < needed:
        invalidate(prop, f"The view has {len(view)} samples; {what} needs at least {needed}.")


def add_target_view(ctx, inputs, needed):
    """The "Target view" choice, defaulting to the whole dataset when the current view
    (or selection) has fewer than ``needed`` samples and the dataset has enough, e.g.
    after clicking a pair the grid shows 2 samples.

    Returns ``(view, too_small)``: the view the form validates (what
    ``ctx.target_view()`` resolves to), and whether that view is too small while the
    dataset is not; the "Target view" choice then carries a message suggesting
    "Dataset", and callers skip their own size check. A view chosen explicitly, or one
    passed from Python, is never widened silently."""
    view = ctx.target_view()
    chosen = ctx.request_params.get("view_target")
    count = view.count() if chosen != ViewTarget.DATASET else None
    default, too_small, dataset_count = None, False, None
    if count is not None and count < needed:
        dataset_count = ctx.dataset.count()
        if dataset_count >= needed:
            default, too_small = ViewTarget.DATASET, True
    prop = inputs.view_target(ctx, default_target=default, action_description="Measure")
    if too_small:
        invalidate(
            prop,
            f"The {'selection' if chosen == ViewTarget.SELECTED_SAMPLES else 'current view'} has "
            f"{count} samples; this needs at least {needed}. Choose 'Dataset' as the target view "
            f"({dataset_count:,} samples).",
        )
    return view, too_small


#: How the form names a setting, the unit of its numbers, and a hint for an invalid value;
#: keyed by field name, or by (settings class, field name) where two classes share a name.
SETTING_WORDS = {
    ("ModelInput", "size"): ("Input size", "pixel", None),
    ("ModelInput", "channels"): ("Input channels", None, None),
    "size": ("Image size", "pixel", "leave it empty to keep each image's own size"),
    "num_workers": ("Decoding processes", "process", "leave it empty for one per CPU core"),
    "k": ("Neighbours k", None, None),
    "top": ("Sharpest pairs to flag", "pair", None),
    "discard_fraction": ("Discarded fraction", None, None),
    "duplicate_tolerance": ("Near-duplicate tolerance", None, None),
    "max_merged_fraction": ("Largest merged fraction", None, None),
    "pgd_steps": ("PGD steps", "step", None),
    "mean": ("Mean", None, None),
    "std": ("Std", None, None),
}


def _bound(value, unit):
    if unit is None:
        return f"{value:g}" if isinstance(value, float) else str(value)
    return f"{value:g} {unit}{'' if value == 1 else 's'}"


def _error_sentence(error, title) -> str:
    name = str(error["loc"][-1]) if error["loc"] else "value"
    words = SETTING_WORDS.get((title, name)) or SETTING_WORDS.get(name)
    label, unit, hint = words or (name.replace("_", " ").capitalize(), None, None)
    bounds, kind = error.get("ctx") or {}, error["type"]
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        key = {"greater_than_equal": "ge", "greater_than": "gt", "less_than_equal": "le", "less_than": "lt"}[kind]
        word = {"ge": "at least", "gt": "more than", "le": "at most", "lt": "less than"}[key]
        sentence = f"{label} must be {word} {_bound(bounds[key], unit)}"
    elif kind in ("int_parsing", "int_type", "int_from_float"):
        sentence = f"{label} must be a whole number"
    elif kind in ("float_parsing", "float_type"):
        sentence = f"{label} must be a number"
    elif kind == "value_error":  # the settings' own checks already speak to people
        text = error["msg"].removeprefix("Value error, ")
        sentence = text[0].upper() + text[1:]
    elif kind == "literal_error":
        sentence = f"{label} must be one of {bounds.get('expected', '')}"
    else:
        sentence = f"{label}: {error['msg'][0].lower()}{error['msg'][1:]}".replace("input should", "should")
    return f"{sentence} ({hint})" if hint else sentence


def pydantic_message(error: ValidationError) -> str:
    """Each invalid setting, named as the form names it, with its limit and the fix:
    "Image size must be at least 1 pixel (leave it empty to keep each image's own size)"."""
    return "; ".join(_error_sentence(e, error.title) for e in error.errors()) + "."
