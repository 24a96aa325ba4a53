"""Model files crafted to run code when loaded the unsafe way: each payload writes a marker
file. Tests first prove a payload live (loading it the unsafe way writes the marker), then
that our loaders and forms refuse the file and the marker stays absent."""

import builtins
import io
import json
import pathlib
import pickle
import zipfile

import torch


class WritesMarker:
    """Unpickling this calls ``exec`` on code that writes ``marker``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return builtins.exec, (f"open({self.marker!r}, 'w').write('ran')",)


def prove_live(marker, run):
    """Run ``run``, an unsafe load of a crafted file: its payload must write ``marker``
    (else a test using the file proves nothing). Removes the marker again."""
    try:
        run()
    except Exception:  # noqa: BLE001 - unsafe loaders often fail after the payload ran
        pass
    assert marker.exists(), "the payload did not run when loaded unsafely; the test would prove nothing"
    marker.unlink()


def payload(marker, protocol=2) -> bytes:
    return pickle.dumps(WritesMarker(marker), protocol=protocol)


def poisoned_state_dict(path, marker, protocol=2):
    """A torch.save checkpoint with tensors and one object whose unpickling runs code."""
    torch.save({"fc.weight": torch.zeros(2, 4), "fc.bias": torch.zeros(2), "meta": WritesMarker(marker)},
               path, pickle_protocol=protocol)
    return path


def rewrite_zip(source, target, replace):
    """Copy the zip ``source`` to ``target`` with ``replace(inner_name, bytes) -> bytes``
    applied to each member (inner_name: the name below the archive's top folder)."""
    with zipfile.ZipFile(source) as original, zipfile.ZipFile(target, "w") as out:
        for info in original.infolist():
            data = original.read(info.filename)
            out.writestr(info, replace(info.filename.split("/", 1)[-1], data))
    return target


def member_bytes(archive_path, member) -> bytes:
    """The bytes of the zip member named ``member`` below the archive's top folder."""
    with zipfile.ZipFile(archive_path) as archive:
        (name,) = [n for n in archive.namelist() if n.split("/", 1)[-1] == member]
        return archive.read(name)


def tiny_torchscript(path):
    torch.jit.script(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 2))).save(str(path))
    return path


def poisoned_torchscript(folder, marker, member="data.pkl"):
    """A real TorchScript archive whose ``member`` pickle is replaced by a payload."""
    folder = pathlib.Path(folder)
    clean = tiny_torchscript(folder / f"clean_{member}.pt")
    return rewrite_zip(clean, folder / f"poisoned_{member}.pt",
                       lambda name, data: payload(marker) if name == member else data)


def exported_program(path):
    """A real ``torch.export.save`` archive of a tiny CNN (input 1 x 3 x 8 x 8)."""
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 2, 3), torch.nn.Flatten(), torch.nn.Linear(72, 2))
    torch.export.save(torch.export.export(model, (torch.rand(1, 3, 8, 8),)), str(path))
    return path


#: Ways a .pt2 runs code in torch.export.load: a weight flagged use_pickle, sample inputs
#: the restricted unpickler refuses (it then falls back to full unpickling), and, with no
#: pickle at all, a symbolic-shape expression that sympy.sympify evaluates.
EXPORT_PAYLOADS = ("use_pickle weight", "sample inputs", "sympy expression")


def poisoned_export(clean, target, marker, how):
    """Copy of the .pt2 ``clean`` that runs code when torch.export.load reads it."""
    unsafe = torch_save_payload(marker)

    def replace(name, data):
        if how == "use_pickle weight" and name.endswith("model_weights_config.json"):
            config = json.loads(data)
            entry = next(iter(config["config"].values()))
            entry["use_pickle"] = True
            return json.dumps(config).encode()
        if how == "use_pickle weight" and name == f"data/weights/{first_weight(clean)}":
            return unsafe
        if how == "sample inputs" and name.startswith("data/sample_inputs/"):
            return unsafe
        if how == "sympy expression" and name.startswith("models/") and name.endswith(".json"):
            code = f"__import__('builtins').exec(\"open({str(marker)!r}, 'w').write('ran')\")"
            expression = json.dumps({"as_expr": {"expr_str": code, "hint": {"as_int": 2}}})
            text = data.decode()
            if '{"as_int": 2}' not in text:
                raise AssertionError("the exported graph has no size 2 to replace")
            return text.replace('{"as_int": 2}', expression, 1).encode()
        return data

    return rewrite_zip(clean, target, replace)


def torch_save_payload(marker) -> bytes:
    buffer = io.BytesIO()
    torch.save(WritesMarker(marker), buffer)
    return buffer.getvalue()


def first_weight(pt2) -> str:
    """File name (e.g. ``weight_0``) of the first weight in a .pt2's weights config."""
    with zipfile.ZipFile(pt2) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith("model_weights_config.json")]
        config = json.loads(archive.read(name))
    return next(iter(config["config"].values()))["path_name"]
