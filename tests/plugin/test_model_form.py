"""The model form of the robustness and representation operators never loads the file:
crafted files (each payload first proven live) run no code while the form is resolved,
nor when the operator is called; wrong kinds are flagged on the form from the bytes."""

import pickle

import numpy as np
import pytest
import torch

import fiftyone.operators as foo
from fiftyone.operators.executor import ExecutionContext

from fiftyone_intrinsic.datasets.importers import import_arrays

from conftest import snapshot
from crafted import (
    EXPORT_PAYLOADS, exported_program, member_bytes, poisoned_export, poisoned_state_dict, poisoned_torchscript,
    prove_live,
)

PLUGIN = "@fiftyone-intrinsic/intrinsic"
OPERATORS = {
    "evaluate_adversarial_robustness": dict(label_field="ground_truth"),
    "compute_representation_dimension": dict(layer="layer4"),
}


@pytest.fixture
def small(dataset_name, tmp_path, rng):
    images = rng.integers(0, 256, size=(12, 8, 8), dtype=np.uint8)
    return import_arrays(images, ["a", "b"] * 6, name=dataset_name, images_dir=tmp_path / "imgs")


@pytest.fixture
def marker(tmp_path):
    return tmp_path / "payload_ran"


def form(dataset, operator, **params):
    operator = foo.get_operator(f"{PLUGIN}/{operator}")
    ctx = ExecutionContext(request_params=dict(dataset_name=dataset.name, params=dict(OPERATORS[operator.name], **params)))
    return operator.resolve_input(ctx).type.properties


def crafted_files(folder, marker):
    """(kind, path, message the form shows or None) of each crafted file, payloads proven live."""
    state = poisoned_state_dict(folder / "weights.pt", marker)
    prove_live(marker, lambda: torch.load(state, weights_only=False))
    clean = exported_program(folder / "clean.pt2")
    files = [("torchvision", state, "not a plain state dict of tensors")]
    for i, how in enumerate(EXPORT_PAYLOADS):
        pt2 = poisoned_export(clean, folder / f"crafted_{i}.pt2", marker, how)
        prove_live(marker, lambda: torch.export.load(str(pt2)))
        files += [("export", pt2, ".pt2) are not loaded"), ("torchvision", pt2, "is a torch.export archive")]
    script = poisoned_torchscript(folder, marker)
    prove_live(marker, lambda: pickle.loads(member_bytes(script, "data.pkl")))
    # structurally TorchScript: only loading could tell, and the form must not load it
    files.append(("torchscript", script, None))
    return files


@pytest.mark.parametrize("operator", OPERATORS)
def test_the_form_runs_no_code_from_a_crafted_file(small, tmp_path, marker, operator):
    for kind, path, message in crafted_files(tmp_path, marker):
        props = form(small, operator, model_kind=kind, model_path=str(path), architecture="resnet18")
        assert not marker.exists(), (kind, path.name)
        if message is None:
            assert not props["model_path"].invalid, "the form loaded the TorchScript file"
            assert "is a program" in props["torchscript_warning"].view.description
        else:
            assert props["model_path"].invalid and message in props["model_path"].error_message, (kind, path.name)


def test_the_form_says_torchscript_is_code_and_offers_no_pt2(small):
    props = form(small, "evaluate_adversarial_robustness", model_kind="torchvision")
    kinds = [choice.value for choice in props["model_kind"].view.choices]
    assert kinds == ["torchvision", "torchscript"]
    assert "torchscript_warning" not in props
    assert "trusted sources" in props["model_path"].view.description
    assert "a program" in props["model_kind"].view.choices[1].label
    warning = form(small, "compute_representation_dimension", model_kind="torchscript")["torchscript_warning"].view
    assert warning.label == "TorchScript files are code" and "sources you trust" in warning.description


def test_operators_refuse_crafted_files_at_execution_and_change_nothing(small, tmp_path, marker):
    script = poisoned_torchscript(tmp_path, marker)
    state = poisoned_state_dict(tmp_path / "weights4.pt", marker, protocol=4)  # the form's scan cannot read it
    prove_live(marker, lambda: torch.load(state, weights_only=False))
    before = snapshot(small)
    common = dict(input_size=8, input_channels=1, mean=(0.0,), std=(1.0,), device="cpu")
    robustness = foo.get_operator(f"{PLUGIN}/evaluate_adversarial_robustness")
    representation = foo.get_operator(f"{PLUGIN}/compute_representation_dimension")
    cases = [
        (lambda: robustness(small, model_path=script, model_kind="torchscript", pgd_steps=2, **common), "not a TorchScript file"),
        (lambda: representation(small, model_path=script, model_kind="torchscript", layer="output", **common), "not a TorchScript file"),
        (lambda: robustness(small, model_path=state, pgd_steps=2, **common), "weights_only"),
        (lambda: representation(small, model_path=state, layer="layer4", **common), "weights_only"),
    ]
    for call, reason in cases:
        with pytest.raises(foo.executor.ExecutionError, match=reason):
            call()
        assert not marker.exists()
        assert snapshot(small) == before
