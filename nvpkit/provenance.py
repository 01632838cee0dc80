"""Where a result came from: the code (nvpkit version, git commit, hashes of the package's sources,
torch), the interpreter and the device. Recorded in every results.json and checkpoint.

``numeric_code()`` is what decides a trained arm's numbers: nvpkit's version, a hash of the modules
on the training and compression path (``NUMERIC_SOURCES``) and torch's version. Checkpoints and
cached arms carry it; a run resumes across a change of it only when asked (``allow_code_change``),
and the change is recorded. A fix to a figure, a table or the command line changes none of it."""
from __future__ import annotations

import functools
import hashlib
import platform
import subprocess
from pathlib import Path
from typing import Any

import torch

from ._version import __version__

__all__ = ["git_commit", "source_hash", "numeric_hash", "code_version", "numeric_code", "code_change", "provenance", "device_name",
           "NUMERIC_SOURCES"]

_PACKAGE = Path(__file__).resolve().parent
NUMERIC_SOURCES = ("config.py", "data.py", "grids.py", "model.py", "_kernels.py", "parts.py", "quantization.py",
                   "train.py", "compress/*.py", "experiments/guidance.py", "experiments/initialize.py")
"""The package's modules (globs relative to it) on the training and compression path: the model,
its kernels, the training loop, the clip's loading, the codecs, guidance and Tucker initialisation."""


@functools.cache
def git_commit() -> str | None:
    """The commit of the nvpkit checkout in use, if it is one."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=_PACKAGE, timeout=10)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def _hash(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in sorted(set(paths)):
        digest.update(path.relative_to(_PACKAGE).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


@functools.cache
def source_hash() -> str:
    """SHA-256 (16 hex digits) of the package's Python sources: changes with any edit, committed or not."""
    return _hash(list(_PACKAGE.rglob("*.py")))


@functools.cache
def numeric_hash() -> str:
    """SHA-256 (16 hex digits) of the ``NUMERIC_SOURCES`` modules only."""
    return _hash([path for pattern in NUMERIC_SOURCES for path in _PACKAGE.glob(pattern)])


def code_version() -> dict[str, Any]:
    """What identifies the code that computes a result: nvpkit's version, its sources (all, and those
    on the training and compression path), torch."""
    return {"nvpkit": __version__, "git_commit": git_commit(), "source_sha256_16": source_hash(),
            "numeric_sha256_16": numeric_hash(), "torch": str(torch.__version__)}


def numeric_code() -> dict[str, str]:
    """What decides a trained arm's numbers: nvpkit's version, ``numeric_hash``, torch's version."""
    return {"nvpkit": __version__, "numeric_sha256_16": numeric_hash(), "torch": str(torch.__version__)}


def code_change(saved: Any, now: Any) -> str:
    """What differs between two code versions (``provenance.numeric_code``), readable."""
    if not isinstance(saved, dict):
        return f"the checkpoint records no code version; now {now}"
    changed = [f"{k} {saved.get(k)} -> {now.get(k)}" for k in sorted(set(saved) | set(now or {}))
               if saved.get(k) != (now or {}).get(k)]
    return ", ".join(changed)


def device_name(device: torch.device) -> str:
    """The GPU's name, or the CPU's with the torch thread count."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def provenance(device: torch.device) -> dict[str, Any]:
    """``code_version()`` plus the Python version and the device a result was computed on."""
    return {**code_version(), "python": platform.python_version(), "device": device_name(device)}
