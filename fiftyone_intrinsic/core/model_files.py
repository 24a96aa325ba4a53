"""What a model file is, told from its zip directory and pickle opcodes, without loading,
unpickling or running any of it.

The operators' forms call :func:`check_model_file` on every refresh, and
:func:`~fiftyone_intrinsic.core.models.load_model` calls it before loading, so a file of the
wrong kind is refused with a message before any loader reads it. Imports no torch at
module level: the forms import this module.
"""

from __future__ import annotations

import pathlib
import zipfile

__all__ = ["check_model_file", "EXPORT_REFUSED"]

#: Why torch.export programs (``.pt2``) are refused, and what to use instead.
EXPORT_REFUSED = (
    "torch.export programs (.pt2) are not loaded: torch.export.load unpickles parts of the "
    "archive (weights and constants flagged use_pickle, opaque objects, and the sample inputs "
    "when the restricted unpickler refuses them) and evaluates the graph's symbolic-shape "
    "expressions with sympy, so a crafted .pt2 runs code as soon as it is loaded. Save a "
    "state dict for a torchvision architecture instead (torch.save(model.state_dict(), path)), "
    "or, for a model from a source you trust, TorchScript (torch.jit.script(model).save(path))."
)

#: Largest data.pkl whose opcodes a form scans (a state dict's is a few KB; tensors are
#: separate members); larger ones are left to the weights_only load at execution.
_SCAN_LIMIT = 64 * 2**20


def check_model_file(kind: str, path) -> pathlib.Path:
    """The file at ``path`` as a ``pathlib.Path`` if its bytes fit ``kind``; nothing in it is
    loaded, unpickled or run.

    Reads only the zip directory, and for a state dict the opcodes of its ``data.pkl``
    (``torch.serialization.get_unsafe_globals_in_checkpoint``, a static disassembly).

    Args:
        kind: ``"torchvision"`` (a state dict written by ``torch.save``) or
            ``"torchscript"`` (a zip archive written by ``torch.jit.save``).
        path: the file; ``~`` is expanded.

    Raises:
        ValueError: a missing or empty file, a torch.export archive (:data:`EXPORT_REFUSED`),
            a file that is not TorchScript for ``"torchscript"``, or, for ``"torchvision"``,
            a TorchScript file or a pickle naming Python objects that weights_only loading
            refuses (e.g. a whole pickled module).
    """
    path = pathlib.Path(path).expanduser()
    shown = repr(str(path))
    if not path.is_file():
        raise ValueError(f"Model file {shown} does not exist.")
    if path.stat().st_size == 0:
        raise ValueError(f"Model file {shown} is empty.")
    members = _zip_members(path)
    if members is not None and _is_export(members):
        raise ValueError(f"{shown} is a torch.export archive. {EXPORT_REFUSED}")
    if kind == "torchscript":
        if members is None or not _is_torchscript(members):
            raise ValueError(
                f"{shown} is not a TorchScript file (a zip archive with code/ and constants.pkl). "
                "Save the model with torch.jit.script(model).save(path), or choose 'torchvision' "
                "with a state dict."
            )
        return path
    if members is None:
        with open(path, "rb") as file:
            if file.read(1) != b"\x80":  # PROTO: a pickle, as torch.save's legacy format is
                raise ValueError(
                    f"{shown} is neither a zip archive nor a pickle written by torch.save. "
                    "Save the weights with torch.save(model.state_dict(), path)."
                )
        return path
    if _is_torchscript(members):
        raise ValueError(f"{shown} is a TorchScript file, not a state dict: choose 'torchscript' as the model kind.")
    if "data.pkl" not in members:
        raise ValueError(f"{shown} is a zip archive but not one written by torch.save (it has no data.pkl).")
    unsafe = _unsafe_globals(path)
    if unsafe:
        raise ValueError(
            f"{shown} is not a plain state dict of tensors: its pickle names {unsafe[:5]}, which "
            "weights_only loading refuses, so it is not loaded (only weights_only loading is "
            "allowed). Save it with torch.save(model.state_dict(), path)."
        )
    return path


def _zip_members(path: pathlib.Path):
    """Member names below the archive's top folder (torch writes ``<name>/data.pkl``), or
    None when the file is not a zip archive."""
    if not zipfile.is_zipfile(path):
        return None
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError) as error:
        raise ValueError(f"{str(path)!r} is a damaged zip archive ({error}).") from None
    return {name.split("/", 1)[-1] for name in names}


def _is_torchscript(members) -> bool:
    return "constants.pkl" in members and any(name.startswith("code/") for name in members)


def _is_export(members) -> bool:
    # archive_format, models/*.json: torch.export.save's current layout;
    # serialized_exported_program.json: the older one, which torch.export.load still reads
    return "archive_format" in members or "serialized_exported_program.json" in members or any(
        name.startswith("models/") and name.endswith(".json") for name in members
    )


def _unsafe_globals(path: pathlib.Path) -> list[str]:
    """Globals of the state dict's pickle that weights_only loading refuses, sorted; empty
    when the opcodes cannot be scanned (torch's scanner reads protocol 2 only), leaving the
    decision to the weights_only load itself."""
    with zipfile.ZipFile(path) as archive:
        sizes = [info.file_size for info in archive.infolist() if info.filename.split("/", 1)[-1] == "data.pkl"]
    if not sizes or max(sizes) > _SCAN_LIMIT:
        return []
    import torch

    try:
        return sorted(torch.serialization.get_unsafe_globals_in_checkpoint(str(path)))
    except Exception:  # noqa: BLE001 - any scanner failure defers to the weights_only load
        return []
