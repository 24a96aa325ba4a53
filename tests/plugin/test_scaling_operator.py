"""The operator fit_scaling_law: registered, the library's numbers, delegated runs, refusals
on the form (operators/scaling.py)."""

import numpy as np
import pytest

import fiftyone as fo
import fiftyone.operators as foo
from fiftyone import ViewField as F
from fiftyone.operators.delegated import DelegatedOperationService
from fiftyone.operators.executor import ExecutionContext

import fiftyone_intrinsic as fi
from fiftyone_intrinsic.datasets.scaling import fit_scaling_law

from conftest import snapshot

URI = "@fiftyone-intrinsic/intrinsic/fit_scaling_law"
#: Settings for tests about plumbing, not about the numbers.
TINY = dict(sizes=[20, 40, 80], n_seeds=2, epochs=2, min_steps=5, device="cpu")


def quiet(fraction, label):
    pass

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# --- the operator ---------------------------------------------------------------------


def test_operator_is_registered_without_errors():
    registry = foo.OperatorRegistry()
    assert registry.list_errors() == []
    assert URI in {op.uri for op in registry.list_operators(builtin=False)}


def test_operator_gives_the_library_numbers_and_runs_delegated(breast):
    pool = breast.match_tags("test", bool=False)
    direct = fit_scaling_law(pool, "ground_truth", test_samples=breast.match_tags("test"), run_key="lib",
                             progress=quiet, **TINY)
    op = foo.get_operator(URI)
    stored = op(pool, test_tag="test", run_key="op", **TINY)
    np.testing.assert_allclose(stored.losses, direct.curve.losses, rtol=1e-6)
    assert stored.fit["exponent"] == pytest.approx(direct.fit.exponent, rel=1e-5)
    assert stored.mode == "curve" and stored.sources["d_data"] == "computed"

    queued = op(pool, test_tag="test", run_key="queued", target_loss=[0.6, 0.5], delegate=True, **TINY)
    assert queued.delegated and "queued" not in breast.list_runs()
    service = DelegatedOperationService()
    service.execute_queued_operations(dataset_name=breast.name)
    breast.reload()
    result = fi.load_intrinsic_results(breast, "queued")
    np.testing.assert_allclose(result.losses, direct.curve.losses, rtol=1e-6)
    assert [t["target_loss"] for t in result.plans["fitted"]["targets"]] == [0.6, 0.5]
    (operation,) = [o for o in service.list_operations(dataset_name=breast.name) if o.operator == URI]
    assert operation.run_state == "completed"
    assert operation.status.progress == 1.0 and operation.status.label.startswith("exponent")
    for key in ("lib", "op", "queued"):
        fi.delete_intrinsic_run(breast, key)


def validation_message(call):
    with pytest.raises(foo.executor.ExecutionError) as error:
        call()
    return str(error.value)


def test_operator_refuses_bad_input_and_changes_nothing(breast):
    before = snapshot(breast)
    op = foo.get_operator(URI)
    pool = breast.match_tags("test", bool=False)
    common = dict(TINY, run_key="refused")
    held = dict(common, test_tag="test")
    one_class = pool.match(F("ground_truth.label") == "0")
    cases = {
        "held-out overlaps": (lambda: op(breast, **held), "test_tag", "overlaps the training view"),
        "two sizes": (lambda: op(pool, **dict(held, sizes=[20, 40])), "sizes", "at least 3 distinct"),
        "too large": (lambda: op(pool, **dict(held, sizes=[20, 40, 5000])), "sizes", "larger than the labeled view"),
        "one class": (lambda: op(one_class, **common), "label_field", "same label"),
        "bad target": (lambda: op(pool, target_loss="a lot", **held), "target_loss", "comma-separated numbers"),
    }
    for name, (call, path, reason) in cases.items():
        message = validation_message(call)
        assert f"Path: {path}." in message and reason in message, (name, message)
        assert snapshot(breast) == before, name


def test_form_shows_only_the_options_of_the_mode(breast):
    def form(params):
        ctx = ExecutionContext(request_params=dict(dataset_name=breast.name, params=params))
        return foo.get_operator(URI).resolve_input(ctx).type.properties

    curve = form(dict(mode="curve", held_out="carve"))
    assert {"label_field", "sizes", "n_seeds", "n_test", "target_loss", "sharpness_run_key"} <= set(curve)
    assert "test_tag" not in curve
    tagged = form(dict(mode="curve", held_out="tag", label_field="ground_truth"))
    assert "test_tag" in tagged and "n_test" not in tagged
    assert {c.value for c in tagged["test_tag"].view.choices} == {"train", "val", "test"}
    before = form(dict(mode="before_labeling"))
    assert "label_field" not in before and "sizes" not in before and "dimension_run_key" in before


def test_typing_in_the_form_does_not_prepare_the_split_again(breast, monkeypatch):
    """The held-out split is prepared (every label of the view read) once per state of the
    view and settings: the keystrokes that follow reuse it; an edit to a sample of the view
    or another setting that shapes the split prepares it again, and the form's message
    follows."""
    from fiftyone_intrinsic.datasets import scaling

    calls = []
    real = scaling.prepare_split
    monkeypatch.setattr(scaling, "prepare_split", lambda *a, **k: calls.append(1) or real(*a, **k))
    view = breast.match_tags("train")

    def form(**params):
        ctx = ExecutionContext(request_params=dict(dataset_name=breast.name, view=view._serialize(),
                                                   params=dict(mode="curve", label_field="ground_truth", **params)))
        return foo.get_operator(URI).resolve_input(ctx).type.properties

    form(sizes="20, 40, 80")
    for typed in ("20, 40, 80, 1", "20, 40, 80, 16", "20, 40, 80, 160"):
        form(sizes=typed)
    assert len(calls) == 1
    refused = form(sizes="20, 40, 80", n_test=100_000)  # another split: prepared again, refused
    assert len(calls) == 2 and refused["label_field"].invalid
    sample = view.first()
    label = sample.ground_truth.label
    sample["ground_truth"] = fo.Classification(label="1" if label == "0" else "0")  # a relabelled sample
    sample.save()
    try:
        form(sizes="20, 40, 80")
        assert len(calls) == 3
    finally:
        sample["ground_truth"] = fo.Classification(label=label)
        sample.save()
