"""The one place that turns a device name into a ``torch.device`` and tunes the host for it."""
from __future__ import annotations

import ctypes
import os
import platform
from pathlib import Path

import torch

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_allocator_tuned = False


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


def keep_freed_memory() -> bool:
    """Let glibc's malloc keep freed blocks up to 1 GiB instead of unmapping them. A training step
    frees and re-allocates hundreds of MB of gradients; unmapped, they come back as fresh pages,
    faulted in and zeroed every step (half the time of a full-size NVP-S step on 2 cores).
    Process-wide, applied once (by ``Trainer`` on the CPU); a no-op where the C library is not
    glibc. Returns whether the setting is in effect."""
    global _allocator_tuned
    if not _allocator_tuned and platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
        try:
            libc = ctypes.CDLL(None)
            _allocator_tuned = bool(libc.mallopt(_M_MMAP_THRESHOLD, 2**30)
                                    and libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))
        except (OSError, AttributeError):
            pass
    return _allocator_tuned


def available_host_memory() -> int | None:
    """Bytes this process can still allocate without swapping or being killed: the smaller of the
    machine's MemAvailable (free memory plus the page cache it can drop) and what its cgroup's limit
    leaves (a container, a SLURM job, a Ray worker; ``cgroup_available``), or None where neither can
    be read."""
    found = [v for v in (_mem_available(), cgroup_available()) if v is not None]
    return min(found) if found else None


def _mem_available() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None  # cgroup v2 writes "max" for no limit


def cgroup_available(root: str | os.PathLike = "/sys/fs/cgroup", cgroup: str | None = None) -> int | None:
    """Bytes left under this process's cgroup memory limit (limit less usage), or None without a
    limit: cgroup v2 (``memory.max``, ``memory.current`` in the process's cgroup below ``root``,
    ``cgroup`` defaulting to the path in /proc/self/cgroup) or v1 (``memory/memory.limit_in_bytes``,
    ``memory.usage_in_bytes``). A v1 limit of more than 2^60 bytes is its way of saying none."""
    root = Path(root)
    if cgroup is None:
        try:
            lines = Path("/proc/self/cgroup").read_text().splitlines()
        except OSError:
            lines = []
        cgroup = next((line.split(":", 2)[2] for line in lines if line.startswith("0::")), "/")
    own = root / cgroup.lstrip("/")
    for limit_file, usage_file in ((own / "memory.max", own / "memory.current"),
                                   (root / "memory.max", root / "memory.current"),
                                   (root / "memory" / "memory.limit_in_bytes", root / "memory" / "memory.usage_in_bytes")):
        limit, usage = _read_int(limit_file), _read_int(usage_file)
        if limit is not None and limit < 2**60:
            return max(0, limit - (usage or 0))
    return None


def _status(field: str) -> int | None:
    """A ``/proc/self/status`` memory field (``VmHWM``, ``VmRSS``) in bytes, or None."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def host_memory() -> int | None:
    """This process's resident memory in bytes now (Linux; None elsewhere)."""
    return _status("VmRSS")


def host_peak_memory() -> int | None:
    """This process's peak resident memory in bytes since it started or since ``reset_host_peak``
    (Linux; None elsewhere)."""
    return _status("VmHWM")


def reset_host_peak() -> bool:
    """Restart the peak of ``host_peak_memory`` from the present resident memory (Linux: writing 5
    to /proc/self/clear_refs); returns whether it could."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False
