"""Model files: crafted ones (a poisoned pickle in a state dict, a TorchScript archive, a
.pt2) run no code through ``load_model``, each payload first proven live; real files of
each kind load, and a file of the wrong kind is refused from its bytes alone."""

import pickle

import pytest
import torch
import torchvision

import fiftyone_intrinsic as fi
from fiftyone_intrinsic.core.model_files import EXPORT_REFUSED, check_model_file
from fiftyone_intrinsic.core.settings import ModelSource

from crafted import (
    EXPORT_PAYLOADS, exported_program, member_bytes, poisoned_export, poisoned_state_dict, poisoned_torchscript,
    prove_live, tiny_torchscript,
)


@pytest.fixture
def marker(tmp_path):
    return tmp_path / "payload_ran"


@pytest.fixture(scope="module")
def clean_pt2(tmp_path_factory):
    return exported_program(tmp_path_factory.mktemp("export") / "model.pt2")


@pytest.mark.parametrize("protocol", [2, 4])
def test_a_poisoned_state_dict_runs_no_code(tmp_path, marker, protocol):
    # protocol 2: refused by the static opcode scan; 4: the scan cannot read it, so
    # torch.load(weights_only=True) itself is the barrier
    path = poisoned_state_dict(tmp_path / "weights.pt", marker, protocol)
    prove_live(marker, lambda: torch.load(path, weights_only=False))
    with pytest.raises(ValueError, match="not a plain state dict of tensors.*weights_only"):
        fi.load_model(ModelSource(kind="torchvision", path=str(path), architecture="resnet18"))
    assert not marker.exists()


@pytest.mark.parametrize("member", ["data.pkl", "constants.pkl"])
def test_a_torchscript_archive_with_a_poisoned_pickle_runs_no_code(tmp_path, marker, member):
    path = poisoned_torchscript(tmp_path, marker, member)
    prove_live(marker, lambda: pickle.loads(member_bytes(path, member)))
    check_model_file("torchscript", path)  # structurally TorchScript: the loader must refuse it
    with pytest.raises(ValueError, match="not a TorchScript file.*RuntimeError"):
        fi.load_model(ModelSource(kind="torchscript", path=str(path)))
    assert not marker.exists()


@pytest.mark.parametrize("how", EXPORT_PAYLOADS)
@pytest.mark.parametrize("kind", ["export", "torchvision", "torchscript"])
def test_a_crafted_pt2_runs_no_code_whatever_kind_it_is_given_as(tmp_path, marker, clean_pt2, how, kind):
    path = poisoned_export(clean_pt2, tmp_path / "model.pt2", marker, how)
    prove_live(marker, lambda: torch.export.load(str(path)))
    with pytest.raises(ValueError) as error:
        fi.load_model(ModelSource(kind=kind, path=str(path), architecture="resnet18" if kind == "torchvision" else None))
    assert "torch.export programs (.pt2) are not loaded" in str(error.value)
    assert "torch.save(model.state_dict(), path)" in str(error.value)
    assert not marker.exists()


def test_pt2_is_refused_even_when_clean(clean_pt2):
    torch.export.load(str(clean_pt2))  # a genuine archive: the refusal is by kind, not damage
    with pytest.raises(ValueError, match="sympy"):
        ModelSource(kind="export", path=str(clean_pt2))
    for kind in ("torchvision", "torchscript"):
        with pytest.raises(ValueError, match="is a torch.export archive"):
            check_model_file(kind, clean_pt2)
    assert "TorchScript (torch.jit.script(model).save(path))" in EXPORT_REFUSED


def test_real_files_of_each_kind_load(tmp_path):
    model = torchvision.models.resnet18(num_classes=3).eval()
    state = tmp_path / "resnet18.pth"
    torch.save(model.state_dict(), state)
    legacy = tmp_path / "legacy.pth"
    torch.save(model.state_dict(), legacy, _use_new_zipfile_serialization=False)
    x = torch.rand(2, 3, 32, 32)
    for path in (state, legacy):
        loaded = fi.load_model(ModelSource(kind="torchvision", path=str(path), architecture="resnet18")).eval()
        with torch.no_grad():
            torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)
    script_path = tiny_torchscript(tmp_path / "tiny.pt")
    scripted = fi.load_model(ModelSource(kind="torchscript", path=str(script_path)))
    assert scripted(torch.rand(1, 3, 8, 8)).shape == (1, 2)


def test_wrong_kinds_are_refused_from_the_bytes(tmp_path):
    state = tmp_path / "weights.pth"
    torch.save({"fc.weight": torch.zeros(2, 4)}, state)
    script = tiny_torchscript(tmp_path / "tiny.pt")
    pickled = tmp_path / "model.pkl"
    torch.save(torch.nn.Linear(4, 2), pickled)
    image = tmp_path / "photo.jpg"
    image.write_bytes(b"\xff\xd8\xff\xe0 not a model")
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    cases = [
        ("torchscript", state, "not a TorchScript file"),
        ("torchscript", image, "not a TorchScript file"),
        ("torchvision", script, "is a TorchScript file, not a state dict"),
        ("torchvision", pickled, "torch.nn.modules.linear.Linear"),
        ("torchvision", image, "neither a zip archive nor a pickle written by torch.save"),
        ("torchvision", empty, "is empty"),
        ("torchvision", tmp_path / "missing.pt", "does not exist"),
        ("torchvision", tmp_path, "does not exist"),
    ]
    for kind, path, reason in cases:
        with pytest.raises(ValueError, match=reason):
            check_model_file(kind, path)
    assert check_model_file("torchvision", state) == state
    assert check_model_file("torchscript", script) == script
