"""The plugin's operators, loaded by FiftyOne's own plugin loader from the plugins folder
(a link to this checkout, made by conftest), run through ``foo.execute_operator`` on real
datasets with the real embedded database."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import torchvision

import fiftyone as fo
import fiftyone.operators as foo
from fiftyone.operators.delegated import DelegatedOperationService
from fiftyone.operators.executor import ExecutionContext

import fiftyone_intrinsic as fi
from fiftyone_intrinsic.datasets.features import extract_features
from fiftyone_intrinsic.datasets.importers import import_arrays

from conftest import snapshot

PLUGIN = "@fiftyone-intrinsic/intrinsic"
OPERATORS = (
    "compute_intrinsic_dimension",
    "compute_label_sharpness",
    "compute_representation_dimension",
    "evaluate_adversarial_robustness",
    "fit_scaling_law",
    "open_intrinsic_panel",
    "load_sharpest_pairs",
    "get_intrinsic_run_info",
    "delete_intrinsic_run",
)


def uri(name):
    return f"{PLUGIN}/{name}"


@pytest.fixture
def small(dataset_name, tmp_path, rng):
    images = rng.integers(0, 256, size=(30, 8, 8), dtype=np.uint8)
    labels = ["a"] * 15 + ["b"] * 15
    dataset = import_arrays(images, labels, name=dataset_name, images_dir=tmp_path / "imgs")
    dataset.persistent = True
    return dataset


def test_plugin_registers_every_operator_without_errors():
    registry = foo.OperatorRegistry()
    assert registry.list_errors() == []
    registered = {op.uri for op in registry.list_operators(builtin=False)}
    assert {uri(name) for name in OPERATORS} <= registered
    listed = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "fiftyone"), "operators", "list"],
        capture_output=True, text=True, env=os.environ.copy(), check=True,
    )
    for name in OPERATORS:
        assert uri(name) in listed.stdout


def test_operators_give_the_library_numbers(breast):
    features = extract_features(breast)
    labels = breast.values("ground_truth.label")
    expected_kf = fi.label_sharpness(features.matrix, labels, top=4, device="cpu")
    expected_id = fi.intrinsic_dimension(features.matrix, estimator="mle", k=15, device="cpu")

    kf = foo.get_operator(uri("compute_label_sharpness"))(
        breast, label_field="ground_truth", run_key="op_kf", top=4, device="cpu"
    )
    dim = foo.get_operator(uri("compute_intrinsic_dimension"))(
        breast, run_key="op_id", estimator="mle", k=15, device="cpu"
    )
    assert kf.k_f == expected_kf.k_f
    assert [p["distance"] for p in kf.pairs] == [p.distance for p in expected_kf.pairs]
    assert dim.dimension == expected_id.dimension and dim.ci_low == expected_id.ci_low
    assert breast.count_sample_tags()["op_kf:conflicting_duplicate"] == 2

    pairs_view = foo.get_operator(uri("load_sharpest_pairs"))(breast, run_key="op_kf")
    assert len(pairs_view) == len(fi.load_sharpest_pairs_view(breast, "op_kf"))
    info = foo.get_operator(uri("get_intrinsic_run_info"))(breast, "op_kf")
    assert info["results"]["k_f"] == expected_kf.k_f
    assert info["config"]["label_field"] == "ground_truth"
    deleted = foo.get_operator(uri("delete_intrinsic_run"))(breast, "op_kf")
    assert deleted["fields"] == ["op_kf_nearest_other_distance", "op_kf_nearest_other_id", "op_kf_pair_ranks"]
    assert "op_kf" not in breast.list_runs() and "op_kf:sharp_pair" not in breast.count_sample_tags()
    foo.get_operator(uri("delete_intrinsic_run"))(breast, "op_id")


def test_operator_on_a_view_stores_view_results(breast):
    view = breast.match_tags("test")
    result = foo.get_operator(uri("compute_label_sharpness"))(view, label_field="ground_truth", run_key="test_kf", device="cpu")
    direct = fi.label_sharpness(extract_features(view).matrix, view.values("ground_truth.label"), device="cpu")
    assert result.k_f == direct.k_f and result.n_samples == 156
    assert breast.match_tags("train").exists("test_kf_nearest_other_distance").count() == 0
    fi.delete_intrinsic_run(breast, "test_kf")


def test_delegated_run_executes_in_process_and_reports_progress(small):
    queued = foo.get_operator(uri("compute_intrinsic_dimension"))(small, run_key="queued", k=5, device="cpu", delegate=True)
    assert queued.delegated
    assert "queued" not in small.list_runs()
    service = DelegatedOperationService()
    service.execute_queued_operations(dataset_name=small.name)
    small.reload()
    assert "queued" in small.list_runs()
    expected = fi.intrinsic_dimension(extract_features(small).matrix, k=5, device="cpu")
    assert fi.load_intrinsic_results(small, "queued").dimension == expected.dimension
    (operation,) = [op for op in service.list_operations(dataset_name=small.name) if op.operator == uri("compute_intrinsic_dimension")]
    assert operation.run_state == "completed"
    assert operation.status.progress == 1.0 and operation.status.label.startswith("d_data =")


def test_dimension_operator_refuses_runaway_merging_and_reports_what_it_merged(dataset_name, tmp_path, rng):
    """12 of 60 images are near-copies (one pixel changed by 1/255): the form offers the
    share setting; merging 20% is refused at the default 5% and writes nothing; allowed,
    the run merges exactly the copies and the notification says so."""
    from operators.measure import dimension_notice

    images = rng.integers(1, 255, size=(60, 8, 8), dtype=np.uint8)
    images[48:] = images[:12]
    images[48:, 0, 0] += 1
    dataset = import_arrays(images, ["a", "b"] * 30, name=dataset_name, images_dir=tmp_path / "imgs")
    operator = foo.get_operator(uri("compute_intrinsic_dimension"))
    ctx = ExecutionContext(request_params=dict(dataset_name=dataset.name, params=dict(estimator="mle")))
    share = operator.resolve_input(ctx).type.properties["max_merged_fraction"]
    assert (share.default, share.type.min, share.type.max) == (0.05, 0.0, 1.0)

    before = snapshot(dataset)
    message = validation_message(lambda: operator(dataset, k=5, duplicate_tolerance=0.1, device="cpu"))
    assert "would merge 12 of the 60 distinct samples (20.0%)" in message and "max_merged_fraction" in message
    assert snapshot(dataset) == before
    stored = operator(dataset, k=5, duplicate_tolerance=0.1, max_merged_fraction=0.2, device="cpu")
    assert stored.n_near_duplicates == 12 and stored.duplicate_tolerance == 0.1
    notice = dimension_notice(stored)
    assert ", 12 near-duplicates merged (closer than " in notice and "0.1 x the median" in notice
    assert "merged" not in dimension_notice(operator(dataset, run_key="plain", k=5, device="cpu"))


def test_results_reload_in_a_fresh_process(small):
    foo.get_operator(uri("compute_label_sharpness"))(small, label_field="ground_truth", device="cpu")
    expected = fi.load_intrinsic_results(small, "label_sharpness").k_f
    script = (
        "import json, fiftyone as fo, fiftyone.operators as foo\n"
        f"ds = fo.load_dataset({small.name!r})\n"
        f"info = foo.get_operator('{uri('get_intrinsic_run_info')}')(ds, 'label_sharpness')\n"
        "print(json.dumps(info['results']))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=os.environ.copy(), check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1])["k_f"] == expected


@pytest.fixture
def resnet_files(tmp_path):
    model = torchvision.models.resnet18(num_classes=2)
    state_path = tmp_path / "resnet18.pth"
    torch.save(model.state_dict(), state_path)
    pickled = tmp_path / "model.pkl"
    torch.save(model, pickled)  # a whole pickled module: must never be loaded
    script = torch.jit.script(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 16 * 16, 6), torch.nn.ReLU()))
    script_path = tmp_path / "features.pt"
    script.save(str(script_path))
    return model, state_path, pickled, script_path


def test_representation_dimension_operator(small, resnet_files):
    model, state_path, _, script_path = resnet_files
    op = foo.get_operator(uri("compute_representation_dimension"))
    result = op(small, model_path=state_path, layer="layer4", architecture="resnet18", input_size=32,
                estimator="mle", k=5, device="cpu")
    direct = fi.compute_representation_dimension(
        small, model, layer="layer4", model_input=dict(size=32), run_key="direct", estimator="mle", k=5,
        device="cpu", progress=lambda f, s: None,
    )
    assert result.dimension == pytest.approx(direct.representation.dimension, rel=1e-9)
    assert result.data_dimension == pytest.approx(direct.data_dimension, rel=1e-12)
    assert result.holds == direct.holds and result.n_features == 512
    scripted = op(small, model_path=script_path, model_kind="torchscript", layer="output", input_size=16,
                  run_key="scripted", device="cpu")
    assert scripted.n_features == 6 and scripted.estimator == "twonn"


def validation_message(call):
    with pytest.raises(foo.executor.ExecutionError) as error:
        call()
    return str(error.value)


def test_invalid_parameters_are_refused_and_change_nothing(small, resnet_files):
    _, state_path, pickled, _ = resnet_files
    small.add_sample_field("note", fo.StringField)
    vectors = np.random.default_rng(0).normal(size=(len(small), 4))
    vectors[3, 1], vectors[7, 0] = np.nan, np.inf
    small.set_values("emb_nan", vectors.tolist())
    fi.compute_intrinsic_dimension(small, k=5, device="cpu", progress=lambda f, s: None)
    before = snapshot(small)
    sharp = foo.get_operator(uri("compute_label_sharpness"))
    dim = foo.get_operator(uri("compute_intrinsic_dimension"))
    rep = foo.get_operator(uri("compute_representation_dimension"))
    cases = {
        "bad run key": (lambda: sharp(small, label_field="ground_truth", run_key="my key", device="cpu"), "run_key", "not a valid identifier"),
        "existing run key": (lambda: dim(small, k=5, device="cpu"), "run_key", "tick \"Replace the existing run 'intrinsic_dimension'\""),
        "non-Classification": (lambda: sharp(small, label_field="note", device="cpu"), "label_field", "not a Classification"),
        "missing embeddings": (lambda: dim(small, run_key="e", embeddings_field="nope", device="cpu"), "embeddings_field", "does not exist"),
        "unknown layer": (lambda: rep(small, model_path=state_path, layer="layer9", input_size=32, device="cpu"), "layer", "no layer 'layer9'"),
        "pickled as TorchScript": (lambda: rep(small, model_path=pickled, model_kind="torchscript", layer="output", device="cpu"), "model_path", "not a TorchScript file"),
        "pickled as state dict": (lambda: rep(small, model_path=pickled, layer="layer4", device="cpu"), "model_path", "weights_only"),
        "k too large": (lambda: dim(small, run_key="big", k=40, device="cpu"), "k", "needs at least 41"),
        "size 0": (lambda: dim(small, run_key="z", k=5, size=0, device="cpu"), "size", "Image size must be at least 1 pixel (leave it empty"),
        "NaN embeddings": (lambda: dim(small, run_key="n", k=5, embeddings_field="emb_nan", device="cpu"), "embeddings_field", "NaN or infinite values on 2 samples"),
    }
    if not torch.cuda.is_available():
        cases["cuda without GPU"] = (lambda: sharp(small, label_field="ground_truth", device="cuda"), "device", "no CUDA GPU")
    for name, (call, path, reason) in cases.items():
        message = validation_message(call)
        assert f"Path: {path}." in message and reason in message, (name, message)
        assert snapshot(small) == before, name


def test_app_form_shows_only_applicable_options_and_flags_errors(small):
    def form(operator_name, params):
        operator = foo.get_operator(uri(operator_name))
        ctx = ExecutionContext(request_params=dict(dataset_name=small.name, params=params))
        return operator.resolve_input(ctx).type.properties

    pixels = form("compute_intrinsic_dimension", dict(features_source="pixels", estimator="mle"))
    assert {"size", "channels", "value_range", "normalize_max", "k"} <= set(pixels)
    assert "embeddings_field" not in pixels and "discard_fraction" not in pixels
    twonn = form("compute_intrinsic_dimension", dict(features_source="embeddings", estimator="twonn", embeddings_field="gone"))
    assert "size" not in twonn and "k" not in twonn and "discard_fraction" in twonn
    assert twonn["embeddings_field"].invalid and "does not exist" in twonn["embeddings_field"].error_message
    sharp = form("compute_label_sharpness", dict(label_field="filepath", device="cuda"))
    assert sharp["label_field"].invalid and "Classification fields: ['ground_truth']" in sharp["label_field"].error_message
    assert sharp["label_field"].type.__class__.__name__ == "String"
    device_choices = [choice.value for choice in sharp["device"].view.choices]
    assert ("cuda" in device_choices) == torch.cuda.is_available()
    assert sharp["device"].invalid == (not torch.cuda.is_available())


def test_missing_image_files_are_a_form_message_not_a_traceback(small):
    before = snapshot(small)
    gone = small.first().filepath
    os.remove(gone)
    dim = foo.get_operator(uri("compute_intrinsic_dimension"))
    message = validation_message(lambda: dim(small, run_key="files", k=5, device="cpu"))
    assert "Path: features_source." in message and "1 image file(s)" in message and gone in message
    assert snapshot(small) == before


def test_unreadable_files_differing_shapes_and_nan_vectors_are_form_messages(small, tmp_path):
    """What would fail when the data are read is a form message first: a file that is not an
    image, images of two sizes with no size set, NaN in a binary vector field. Each message
    goes when the user changes what it names (another size, a restricted view)."""
    from PIL import Image

    from operators import data_checks

    before = snapshot(small)
    dim = foo.get_operator(uri("compute_intrinsic_dimension"))
    sharp = foo.get_operator(uri("compute_label_sharpness"))
    first, second = small.take(2, seed=1)
    with open(first.filepath, "wb") as handle:
        handle.write(b"not a PNG")
    message = validation_message(lambda: dim(small, run_key="unreadable", k=5, device="cpu"))
    assert "Path: features_source." in message and "1 file(s) of this view are not images" in message
    assert first.filepath in message and "UnidentifiedImageError" in message
    readable = small.exclude(first.id)

    Image.fromarray(np.zeros((12, 10), dtype=np.uint8)).save(second.filepath, format="PNG")
    message = validation_message(lambda: dim(readable, run_key="shapes", k=5, device="cpu"))
    assert "Path: size." in message and "2 different shapes" in message and second.filepath in message
    assert snapshot(small) == before  # refused on the form: nothing was written
    dim(readable, run_key="resized", k=5, size=8, device="cpu")  # one size for all: runs
    assert small.has_run("resized")

    small.add_sample_field("vec", fo.VectorField)
    vectors = np.random.default_rng(1).normal(size=(len(small), 6)).astype(np.float32)
    vectors[[4, 9, 11], 2] = [np.nan, np.inf, -np.inf]
    small.set_values("vec", list(vectors))
    assert isinstance(small.get_field("vec"), fo.VectorField)
    message = validation_message(lambda: sharp(small, label_field="ground_truth", embeddings_field="vec", device="cpu"))
    assert "Path: embeddings_field." in message and "NaN or infinite values on 3 samples" in message
    ids = small.values("id")
    finite = small.exclude([ids[4], ids[9], ids[11]])
    sharp(finite, label_field="ground_truth", embeddings_field="vec", run_key="finite", device="cpu")

    # the cache follows the data: an edit to a sample of the view is seen by the next form
    edited = small[ids[4]]
    edited["vec"] = vectors[0]
    edited.save()
    fixed = small.exclude([ids[9], ids[11]])
    assert data_checks.non_finite_vectors(fixed, "vec") == 0
    sample = small[ids[5]]
    sample["vec"] = np.full(6, np.nan, dtype=np.float32)
    sample.save()
    assert data_checks.non_finite_vectors(fixed, "vec") == 1
