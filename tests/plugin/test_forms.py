"""The operator forms as the App resolves them: defaults that do not open in error,
targets that suggest the whole dataset, labels the operator browser finds, icons that
exist, only usable embeddings fields, and messages written for people.

Forms are resolved by FiftyOne's own ``resolve_input`` on real datasets in the embedded
database, with the request the App sends (dataset, view stages, params)."""

import pathlib
import re
import xml.etree.ElementTree as ET

import numpy as np
import pytest

import fiftyone as fo
import fiftyone.operators as foo
import fiftyone.plugins as fop
from fiftyone.operators.executor import ExecutionContext

import fiftyone_intrinsic as fi
from fiftyone_intrinsic.datasets.claims import claim_run
from fiftyone_intrinsic.datasets.importers import import_arrays
from fiftyone_intrinsic.datasets.schema import SHARPNESS

from conftest import REPO, snapshot

PLUGIN = "@fiftyone-intrinsic/intrinsic"
QUIET = dict(device="cpu", progress=lambda f, s: None)


def uri(name):
    return f"{PLUGIN}/{name}"


@pytest.fixture
def small(dataset_name, tmp_path, rng):
    images = rng.integers(0, 256, size=(30, 8, 8), dtype=np.uint8)
    dataset = import_arrays(images, ["a"] * 15 + ["b"] * 15, name=dataset_name, images_dir=tmp_path / "imgs")
    dataset.persistent = True
    return dataset


def form(dataset, operator_name, params, view=None):
    """The form's properties as the App receives them for ``params`` on ``view``."""
    request = dict(dataset_name=dataset.name, params=dict(params))
    if view is not None:
        request["view"] = view._serialize()
    operator = foo.get_operator(uri(operator_name))
    return operator.resolve_type(ExecutionContext(request_params=request), "inputs").type.properties


def errors(properties):
    return {name: prop.error_message for name, prop in properties.items() if prop.invalid}


def plugin_operators():
    return [op for op in foo.OperatorRegistry().list_operators(builtin=False) if op.plugin_name == PLUGIN]


# -- run key ------------------------------------------------------------------------------


def test_a_second_run_opens_its_form_on_the_next_free_key_not_in_error(small):
    fi.compute_label_sharpness(small, "ground_truth", top=2, **QUIET)
    opened = form(small, "compute_label_sharpness", {})
    assert opened["run_key"].default == "label_sharpness_2"
    # the App sends the defaults back: the form it shows is not in error
    shown = form(small, "compute_label_sharpness", dict(run_key="label_sharpness_2"))
    assert errors(shown) == {}

    # a run another process is still computing holds its key: not offered either
    with claim_run(small, "label_sharpness_2", SHARPNESS):
        assert fi.list_intrinsic_runs(small, status="incomplete") == ["label_sharpness_2"]
        assert form(small, "compute_label_sharpness", {})["run_key"].default == "label_sharpness_3"
        # nor a key whose field the user already has
        small.add_sample_field("label_sharpness_3_nearest_other_distance", fo.FloatField)
        assert form(small, "compute_label_sharpness", {})["run_key"].default == "label_sharpness_4"


def test_an_existing_key_is_refused_in_app_words_and_replaced_with_the_visible_checkbox(small):
    fi.compute_label_sharpness(small, "ground_truth", top=2, **QUIET)
    taken = form(small, "compute_label_sharpness", dict(run_key="label_sharpness"))
    message = taken["run_key"].error_message
    assert taken["run_key"].invalid and "already exists" in message
    assert "tick \"Replace the existing run 'label_sharpness'\"" in message and "'label_sharpness_2'" in message
    assert "overwrite=True" not in message and "pass " not in message
    checkbox = taken["overwrite"]
    assert isinstance(checkbox.view, fo.operators.types.CheckboxView)
    assert checkbox.view.label == "Replace the existing run 'label_sharpness' and what it wrote"
    replacing = form(small, "compute_label_sharpness", dict(run_key="label_sharpness", overwrite=True))
    assert errors(replacing) == {}


# -- target view --------------------------------------------------------------------------


def test_a_view_too_small_defaults_the_target_to_the_dataset_and_says_so(small):
    pair = small.select(small.values("id")[:2])  # what a pair click leaves in the grid
    opened = form(small, "compute_intrinsic_dimension", dict(estimator="mle", k=5), view=pair)
    target = opened["view_target"]
    assert target.default == "DATASET"
    assert target.invalid and "current view has 2 samples" in target.error_message
    assert "Choose 'Dataset' as the target view (30 samples)" in target.error_message
    assert not opened["k"].invalid  # the error is not on k: lowering k would not help
    assert errors(form(small, "compute_intrinsic_dimension", dict(estimator="mle", k=5, view_target="DATASET"), view=pair)) == {}

    # a view that is big enough keeps FiftyOne's default (the current view), no message
    half = small.limit(20)
    fine = form(small, "compute_intrinsic_dimension", dict(estimator="mle", k=5), view=half)
    assert fine["view_target"].default == "CURRENT_VIEW" and errors(fine) == {}
    # a dataset too small as well: the fix is a smaller k, so the message stays on k
    big_k = form(small, "compute_intrinsic_dimension", dict(estimator="mle", k=40), view=pair)
    assert big_k["k"].invalid and not big_k["view_target"].invalid


@pytest.mark.parametrize("operator", ["evaluate_adversarial_robustness", "fit_scaling_law"])
def test_robustness_and_scaling_forms_suggest_the_dataset_after_a_pair_click(small, operator):
    """The same on the robustness and scaling forms: a 2-sample view opens them on the
    whole dataset, the message on "Target view", and the other inputs are checked against
    the dataset it suggests (two samples of one class are no error of the label field)."""
    pair = small.select(small.values("id")[:2])
    opened = form(small, operator, dict(label_field="ground_truth"), view=pair)
    target = opened["view_target"]
    assert target.default == "DATASET"
    assert target.invalid and "current view has 2 samples" in target.error_message
    assert not opened["label_field"].invalid
    if operator == "fit_scaling_law":
        assert not opened["sizes"].invalid
    widened = form(small, operator, dict(label_field="ground_truth", view_target="DATASET"), view=pair)
    assert not widened["view_target"].invalid


def test_choosing_the_dataset_from_a_pair_view_measures_the_dataset_and_a_python_view_is_never_widened(small):
    pair = small.select(small.values("id")[:2])
    params = dict(
        run_key="whole", estimator="mle", k=5, discard_fraction=0.1, duplicate_tolerance=0.0,
        features_source="pixels", size=None, channels="auto", value_range="unit", normalize_max=False,
        device="cpu", overwrite=False,
    )
    foo.execute_operator(uri("compute_intrinsic_dimension"), ctx=dict(view=pair), params=dict(params, view_target="DATASET"))
    assert fi.load_intrinsic_results(small, "whole").n_samples == 30
    before = snapshot(small)
    with pytest.raises(foo.executor.ExecutionError, match="Path: view_target"):
        foo.execute_operator(uri("compute_intrinsic_dimension"), ctx=dict(view=pair), params=dict(params, run_key="pair"))
    assert snapshot(small) == before


# -- labels and icons ---------------------------------------------------------------------


@pytest.mark.parametrize("typed, expected", [
    ("label sharpness", "compute_label_sharpness"),
    ("intrinsic dimension", "compute_intrinsic_dimension"),
    ("K_F", "compute_label_sharpness"),
    ("d_data", "compute_intrinsic_dimension"),
])
def test_the_operator_browser_finds_the_measure_first_by_its_words(typed, expected):
    operators = plugin_operators()
    starting = [op.name for op in operators if op.config.label.lower().startswith(typed.lower())]
    containing = [op.name for op in operators if typed.lower() in op.config.label.lower()]
    assert containing == [expected]
    if " " in typed:
        assert starting == [expected]
        # nothing else mentions the words, in its label or its description (the robustness
        # operator, which mentioned label sharpness, was highlighted for them)
        others = [op.name for op in operators if op.name != expected
                  and typed.lower() in f"{op.config.label} {op.config.description}".lower()]
        assert others == []


def test_every_icon_an_operator_or_panel_names_ships_with_the_plugin():
    root = pathlib.Path(fop.find_plugin(PLUGIN))
    assert root.resolve() == REPO.resolve()
    named = {}
    for op in plugin_operators():
        for attribute in ("icon", "light_icon", "dark_icon"):
            icon = getattr(op.config, attribute, None)
            if icon and ("/" in icon or "." in icon):  # others are built-in icon names
                named[f"{op.name}.{attribute}"] = icon
    assert {"compute_intrinsic_dimension.icon", "compute_label_sharpness.icon"} <= set(named)
    for where, icon in named.items():
        path = root / icon.lstrip("/")
        assert path.is_file(), f"{where} names {icon}, which the plugin does not ship"
        assert ET.parse(path).getroot().tag == "{http://www.w3.org/2000/svg}svg", where


def test_scheduling_text_says_what_the_open_source_app_needs():
    readme = (REPO / "README.md").read_text()
    paragraphs = [p for p in readme.split("\n\n") if re.search(r"\bschedul", p, re.I)]
    assert paragraphs
    assert any("FIFTYONE_ALLOW_LEGACY_ORCHESTRATORS=true" in p and "fiftyone delegated\nlaunch" in p.replace("delegated launch", "delegated\nlaunch") for p in paragraphs)
    assert not fo.config.allow_legacy_orchestrators  # the default: no "Schedule" in the App
    for op in plugin_operators():
        assert "schedul" not in f"{op.config.label} {op.config.description}".lower(), op.name


# -- embeddings fields --------------------------------------------------------------------


def test_only_top_level_fixed_length_number_vectors_are_offered_as_embeddings(small):
    rng = np.random.default_rng(0)
    n = len(small)
    small.set_values("emb", rng.normal(size=(n, 4)).tolist())
    small.set_values("vec", list(rng.normal(size=(n, 3))))
    small.set_values("ragged", [[0.0] * (1 + i % 3) for i in range(n)])
    small.set_values("ground_truth.logits", rng.normal(size=(n, 2)).tolist())
    assert small.get_field("vec").__class__.__name__ in ("VectorField", "ArrayField")

    opened = form(small, "compute_intrinsic_dimension", dict(features_source="embeddings", estimator="mle", k=5))
    offered = [choice.value for choice in opened["embeddings_field"].view.choices]
    assert offered == ["emb", "vec"]
    small.add_sample_field("note", fo.StringField)
    for field, reason in (
        ("ground_truth.logits", "is a subfield of 'ground_truth', not a top-level field"),
        ("ragged", "holds lists of different lengths (1, 2, 3)"),
        ("note", "is a StringField, not a vector of numbers"),
    ):
        chosen = form(small, "compute_intrinsic_dimension", dict(features_source="embeddings", estimator="mle", k=5, embeddings_field=field))
        message = chosen["embeddings_field"].error_message
        assert chosen["embeddings_field"].invalid and reason in message and "['emb', 'vec']" in message, message
    good = form(small, "compute_intrinsic_dimension", dict(features_source="embeddings", estimator="mle", k=5, embeddings_field="emb"))
    assert errors(good) == {}


# -- messages -----------------------------------------------------------------------------


@pytest.mark.parametrize("operator_name, params, path, expected", [
    ("compute_intrinsic_dimension", dict(size=0, k=5), "size",
     "Image size must be at least 1 pixel (leave it empty to keep each image's own size)."),
    ("compute_label_sharpness", dict(size=-3), "size",
     "Image size must be at least 1 pixel (leave it empty to keep each image's own size)."),
    ("compute_representation_dimension", dict(input_size=4), "mean", "Input size must be at least 8 pixels."),
    ("compute_representation_dimension", dict(std="0.2,0.2"), "mean", "Std has 2 values for 3 channel(s); give 1 or 3."),
])
def test_setting_errors_are_written_for_people(small, operator_name, params, path, expected):
    shown = form(small, operator_name, params)
    assert shown[path].invalid and shown[path].error_message == expected
    assert "Input should be" not in shown[path].error_message


def test_embeddings_coverage_and_non_finite_values_come_from_one_aggregation(small):
    rng = np.random.default_rng(1)
    n = len(small)
    lists = rng.normal(size=(n, 4)).tolist()
    lists[0] = None
    lists[5][1], lists[6][2], lists[7][0] = float("nan"), float("inf"), float("-inf")
    small.set_values("emb", lists)
    arrays = list(rng.normal(size=(n, 3)))
    arrays[2] = None
    small.set_values("vec", arrays)
    for field, expected in (("emb", "has vectors for 29 of 30 samples"), ("vec", "has vectors for 29 of 30 samples")):
        shown = form(small, "compute_intrinsic_dimension", dict(features_source="embeddings", estimator="mle", k=5, embeddings_field=field))
        assert expected in shown["embeddings_field"].error_message, field
    small.set_values("emb", [v if v is not None else [0.0] * 4 for v in lists])
    shown = form(small, "compute_intrinsic_dimension", dict(features_source="embeddings", estimator="mle", k=5, embeddings_field="emb"))
    assert "NaN or infinite values on 3 samples" in shown["embeddings_field"].error_message


def test_the_class_map_is_checked_against_labels_read_once_per_view_state(small):
    """Typing class names checks them against the view's labels, read once per view state:
    a relabelled sample is seen by the next keystroke."""
    params = dict(label_field="ground_truth")
    assert "not in the class map" in form(small, "evaluate_adversarial_robustness", dict(params, class_names="a"))[
        "class_names"].error_message
    assert not form(small, "evaluate_adversarial_robustness", dict(params, class_names="a, b"))["class_names"].invalid
    sample = small.first()
    sample["ground_truth"] = fo.Classification(label="c")
    sample.save()
    message = form(small, "evaluate_adversarial_robustness", dict(params, class_names="a, b"))["class_names"].error_message
    assert "Labels ['c'] are not in the class map ['a', 'b']" in message
