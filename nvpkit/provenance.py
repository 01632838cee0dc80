"""Where a result came from: the code (nvpkit version, git commit, a hash of the package's source,
torch), the interpreter and the device. Recorded in every results.json and checkpoint, and part of
every cache key, so results of other code are never mixed in silently."""
from __future__ import annotations

import functools
import hashlib
import platform
import subprocess
from pathlib import Path
from typing import Any

import torch

from ._version import __version__

__all__ = ["git_commit", "source_hash", "code_version", "provenance", "device_name"]

_PACKAGE = Path(__file__).resolve().parent


@functools.cache
def git_commit() -> str | None:
    """The commit of the nvpkit checkout in use, if it is one."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=_PACKAGE, timeout=10)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


@functools.cache
def source_hash() -> str:
    """SHA-256 (16 hex digits) of the package's Python sources: changes with any edit, committed or not."""
    digest = hashlib.sha256()
    for path in sorted(_PACKAGE.rglob("*.py")):
        digest.update(path.relative_to(_PACKAGE).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def code_version() -> dict[str, Any]:
    """What identifies the code that computes a result: nvpkit's version, its sources, torch."""
    return {"nvpkit": __version__, "git_commit": git_commit(), "source_sha256_16": source_hash(),
            "torch": torch.__version__}


def device_name(device: torch.device) -> str:
    """The GPU's name, or the CPU's with the torch thread count."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def provenance(device: torch.device) -> dict[str, Any]:
    """``code_version()`` plus the Python version and the device a result was computed on."""
    return {**code_version(), "python": platform.python_version(), "device": device_name(device)}
