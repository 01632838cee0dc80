"""Atomic writes, the no-silent-overwrite rule and claims on shared files, for every writer in nvpkit."""
from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def refuse_overwrite(path: str | os.PathLike, overwrite: bool) -> Path:
    """``path`` as a Path, after checking it does not exist unless ``overwrite`` is set."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{str(path)!r} exists; pass overwrite=True to replace it")
    return path


def check_out_dir(out_dir: str | os.PathLike, config: dict[str, Any], overwrite: bool) -> Path:
    """Create ``out_dir``, refusing one whose results.json came from other parameters (unless
    ``overwrite``): nothing is replaced silently."""
    out = Path(out_dir)
    existing = out / "results.json"
    if existing.exists() and not overwrite:
        saved = json.loads(existing.read_text()).get("config")
        if saved != config:
            raise FileExistsError(f"{str(out)!r} holds results of other parameters; choose another out_dir or "
                                  "set overwrite=True")
    out.mkdir(parents=True, exist_ok=True)
    return out


def write_json(path: str | os.PathLike, data: Any) -> Path:
    """Write ``data`` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=1))
    return Path(path)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Move the finished file ``src`` to ``dst`` atomically: a rename on one filesystem, else a copy
    to a temporary sibling of ``dst`` renamed over it (then ``src`` is removed). Readers of ``dst``
    see the old file or the whole new one, never a part."""
    src, dst = Path(src), Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.replace(src, dst)
    except OSError as err:
        if err.errno != errno.EXDEV:  # not a move to another filesystem
            raise
        with atomic_path(dst) as tmp:
            shutil.copyfile(src, tmp)
        src.unlink()
    return dst


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling of ``path`` to write (a file or a folder); on success it is
    fsynced and renamed over ``path`` in one step, on failure removed. A reader never sees a
    half-written result, and a kill mid-write leaves the previous version intact."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        if tmp.is_dir():
            for child in tmp.iterdir():
                _fsync(child)
            if path.is_dir():
                shutil.rmtree(path)
        else:
            _fsync(tmp)
        os.replace(tmp, path)
        _fsync(path.parent)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()


class Claim:
    """An exclusive claim on some work among processes and hosts that share a filesystem: the
    ``path`` file, created atomically (``O_EXCL``), names its holder and is touched while the work
    goes on (``refresh``). A claim whose holder died is taken over: on the same host when its
    process is gone, anywhere when it has not been touched for ``stale_after`` seconds."""

    def __init__(self, path: str | os.PathLike, stale_after: float = 600.0, refresh_every: float = 30.0):
        self.path, self.stale_after, self.refresh_every = Path(path), stale_after, refresh_every
        self._refreshed = 0.0

    def acquire(self) -> bool:
        """Take the claim (True), or leave it to its living holder (False)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(2):  # a second try after removing an abandoned claim
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                if not self.abandoned():
                    return False
                self.path.unlink(missing_ok=True)
                continue
            with os.fdopen(fd, "w") as f:
                json.dump({"host": socket.gethostname(), "pid": os.getpid()}, f)
            self._refreshed = time.monotonic()
            return True
        return False

    def holder(self) -> dict:
        """Who holds the claim (``host``, ``pid``), or {} when nobody does or it cannot be read."""
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}

    def abandoned(self) -> bool:
        """Whether the claim's holder is gone (its claim may be taken over)."""
        try:
            age = time.time() - self.path.stat().st_mtime
        except FileNotFoundError:
            return False  # released meanwhile: acquire again
        holder = self.holder()
        if age > self.stale_after:
            return True
        return holder.get("host") == socket.gethostname() and not _alive(holder.get("pid"))

    def refresh(self, *_: object) -> None:
        """Touch the claim (at most every ``refresh_every`` seconds); cheap enough to call every step."""
        now = time.monotonic()
        if now - self._refreshed >= self.refresh_every:
            with contextlib.suppress(FileNotFoundError):  # taken over after a long stall: the work goes on
                os.utime(self.path)
            self._refreshed = now

    def release(self) -> None:
        self.path.unlink(missing_ok=True)


def _alive(pid: object) -> bool:
    """Whether a process ``pid`` runs on this host (True when that cannot be told)."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    if os.name == "nt":  # signal 0 would terminate the process there
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # it exists but belongs to someone else
        return True
    return True
