"""Choosing the torch device that heavy computations run on."""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch

__all__ = ["resolve_device", "exact_float32_matmul"]


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """Return the torch device to compute on.

    Args:
        device (None): ``None`` or ``"auto"`` picks CUDA when a GPU is present, else the
            CPU; ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` ask for one explicitly.

    Raises:
        ValueError: when CUDA is asked for and no GPU is visible, or the name is unknown.

    >>> resolve_device("cpu")
    device(type='cpu')
    """
    if device is None or (isinstance(device, str) and device.strip().lower() == "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ValueError(
            f"Unknown device {device!r}. Use 'auto', 'cpu', 'cuda' or 'cuda:N'."
        ) from error
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"Device {device!r} was requested but no CUDA GPU is visible to torch. "
                "Use device='cpu' or 'auto'."
            )
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise ValueError(
                f"Device {device!r} does not exist: torch sees {torch.cuda.device_count()} "
                "GPU(s). Use 'cuda:0' or 'auto'."
            )
    elif resolved.type != "cpu":
        raise ValueError(f"Unsupported device {device!r}. Use 'auto', 'cpu' or 'cuda'.")
    return resolved


@contextlib.contextmanager
def exact_float32_matmul() -> Iterator[None]:
    """Disable TF32 inside the block so float32 matmuls keep their 2**-24 rounding unit.

    The candidate bounds of the exact neighbour search assume IEEE float32 products;
    TF32 (on by default for matmuls on some GPUs) would make them ~8000x looser.
    """
    previous_precision = torch.get_float32_matmul_precision()
    previous_tf32 = torch.backends.cuda.matmul.allow_tf32
    torch.set_float32_matmul_precision("highest")
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(previous_precision)
        torch.backends.cuda.matmul.allow_tf32 = previous_tf32
