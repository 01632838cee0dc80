"""Where a result came from: the code (nvpkit version, git commit, hashes of the package's sources,
torch), the interpreter, the device (and on CUDA its driver), the libraries, and the ffmpeg build and
encoder versions that decide every bpp (``provenance()``). Recorded in every results.json.

``numeric_code()`` is what decides a trained arm's numbers: nvpkit's version, a hash of the modules
on the training and compression path (``NUMERIC_SOURCES``) and torch's version. Checkpoints and
cached arms carry it; a run resumes across a change of it only when asked (``allow_code_change``),
and the change is recorded. A fix to a figure, a table or the command line changes none of it."""
from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import os
import platform
import re
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import imageio_ffmpeg
import torch

from ._version import __version__

__all__ = ["git_commit", "source_hash", "numeric_hash", "code_version", "numeric_code", "code_change", "provenance",
           "library_versions", "gpu_driver", "encoder_versions", "LIBRARIES", "device_name",
           "NUMERIC_SOURCES"]

_PACKAGE = Path(__file__).resolve().parent
NUMERIC_SOURCES = ("config.py", "data.py", "grids.py", "model.py", "_kernels.py", "parts.py", "quantization.py",
                   "rate.py", "train.py", "compress/*.py", "experiments/guidance.py", "experiments/initialize.py")
"""The package's modules (globs relative to it) on the training and compression path: the model,
its kernels, the training loop and its rate term, the clip's loading, the codecs, guidance and
Tucker initialisation."""


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


LIBRARIES = ("numpy", "imageio", "imageio-ffmpeg", "tensorly", "pillow", "scipy", "bjontegaard", "pytorch-msssim")
"""The libraries besides torch whose versions can change a result (read from their metadata, not imported)."""


def library_versions() -> dict[str, str | None]:
    """The installed version of each of ``LIBRARIES`` (None where one is not installed)."""
    found = {}
    for name in LIBRARIES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    return found


@functools.cache
def gpu_driver() -> str | None:
    """The NVIDIA driver's version (nvidia-smi), or None where there is none."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10)
        return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None
    except (OSError, subprocess.SubprocessError):
        return None


_VERSIONS = {"libx265": r"HEVC encoder version (\S+)", "libx264": r"x264 - (core \d+[^-]*?)\s+-",
             "libaom-av1": r"\[libaom-av1 @ [^\]]+\] (v\d\S*)", "libvvenc": r"libvvenc version: (\S+)",
             "libsvtav1": r"SVT-AV1 Encoder Lib (\S+)"}
"""Where each encoder states its version when it runs (its log at verbose level, or its stream's SEI)."""


@functools.cache
def encoder_versions() -> dict[str, str | None]:
    """The bundled ffmpeg's build (``ffmpeg``) and the version of each video encoder it has, as the
    binaries report them (one 1-frame encode each, once per process; None where an encoder is
    missing or says nothing): what decides every bpp of a codec result."""
    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    first = subprocess.run([ffmpeg, "-version"], capture_output=True, text=True).stdout.splitlines()

    def version(encoder: str) -> str | None:  # None also where the binary has no such encoder
        run = subprocess.run([ffmpeg, "-hide_banner", "-loglevel", "verbose", "-f", "lavfi",
                              "-i", "testsrc=size=64x64:d=0.04:r=25", "-frames:v", "1", "-c:v", encoder, "-f", "nut",
                              "-"], capture_output=True, timeout=60)
        found = re.search(_VERSIONS[encoder].encode(), run.stderr + run.stdout)
        return found.group(1).decode(errors="replace") if found else None

    with ThreadPoolExecutor(len(_VERSIONS)) as pool:
        found = dict(zip(_VERSIONS, pool.map(version, _VERSIONS)))
    return {"ffmpeg": first[0].split(" Copyright")[0] if first else None,
            "ffmpeg_binary": os.path.basename(ffmpeg), **found}


def provenance(device: torch.device | str = "cpu") -> dict[str, Any]:
    """Where a result comes from: ``code_version()``, the Python version, the device (on CUDA, the
    CUDA version torch was built with and the driver), ``library_versions()`` and ``codecs``, the
    ffmpeg build and every encoder's version (``encoder_versions``)."""
    device = torch.device(device)
    cuda = {"cuda": torch.version.cuda, "gpu_driver": gpu_driver()} if device.type == "cuda" else {}
    return {**code_version(), "python": platform.python_version(), "device": device_name(device), **cuda,
            "libraries": library_versions(), "codecs": encoder_versions()}
