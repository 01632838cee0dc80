"""The one place that turns a device name into a ``torch.device``."""
from __future__ import annotations

import torch


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` is CUDA when present, else the CPU; a named device must exist."""
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device={device!r} is not a device name; use 'auto', 'cpu', 'cuda' or 'cuda:N'") from None
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ValueError(f"device={device!r}: CUDA is not available here; use 'cpu' or 'auto'")
        if dev.index is not None and dev.index >= count:
            raise ValueError(f"device={device!r}: only {count} CUDA device(s), cuda:0..cuda:{count - 1}")
    elif dev.type != "cpu":
        raise ValueError(f"device={device!r}: nvpkit runs on 'cpu' or 'cuda'")
    return dev
