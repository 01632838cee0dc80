"""Atomic writes, the no-silent-overwrite rule and claims on shared files, for every writer in nvpkit;
bounded JSON reading, for every reader of JSON from elsewhere."""
from __future__ import annotations

import contextlib
import csv
import ctypes
import errno
import json
import os
import secrets
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


RUNS_ENV = "NVPKIT_RUNS"
"""The environment variable that sets the runs root."""
_PROJECT_MARKERS = (".git", "pyproject.toml")


def runs_root(start: str | os.PathLike | None = None) -> Path:
    """Where runs go by default: ``$NVPKIT_RUNS`` when set, else ``runs/`` at the root of the
    project around ``start`` (default: the current folder; the nearest folder above it holding
    ``.git`` or ``pyproject.toml``), else ``runs/`` in ``start``. A notebook opened in JupyterLab
    (its kernel starts in ``notebooks/``), the same notebook run by papermill from the project
    root and the command line all write to one folder, so they share cached baselines."""
    if os.environ.get(RUNS_ENV):
        return Path(os.environ[RUNS_ENV]).expanduser().resolve()
    here = Path(start or os.getcwd()).resolve()
    for folder in (here, *here.parents):
        if any((folder / marker).exists() for marker in _PROJECT_MARKERS):
            return folder / "runs"
    return here / "runs"


def check_out_dir(out_dir: str | os.PathLike, config: dict[str, Any], overwrite: bool,
                  ignore: tuple[str, ...] = ()) -> Path:
    """Create ``out_dir``, refusing one whose results.json came from other parameters (unless
    ``overwrite``; the config keys in ``ignore`` are not compared): nothing is replaced silently."""
    out = Path(out_dir)
    existing = out / "results.json"
    if existing.exists() and not overwrite:
        saved = read_json(existing, MAX_RESULTS_BYTES, "results.json")
        saved = saved.get("config") if isinstance(saved, dict) else None
        if not isinstance(saved, dict) or ({k: v for k, v in saved.items() if k not in ignore}
                                           != {k: v for k, v in config.items() if k not in ignore}):
            raise FileExistsError(f"{str(out)!r} holds results of other parameters; choose another out_dir or "
                                  "set overwrite=True")
    out.mkdir(parents=True, exist_ok=True)
    return out


MAX_CONFIG_BYTES = 2**20
"""Largest model config file read."""
MAX_RESULTS_BYTES = 256 * 2**20
"""Largest results.json read (files from others are read with bounded work)."""
MAX_JSON_DEPTH = 64
"""Nesting a JSON file from elsewhere may have (nvpkit's own files nest under 10 deep)."""
MAX_INT_DIGITS = 40
"""Digits an integer in a JSON file from elsewhere may have (float32 ranges end at 39)."""


def _parse_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise ValueError(f"an integer of {len(text.lstrip('-')):,} digits (at most {MAX_INT_DIGITS})")
    return int(text)


def parse_json(data: bytes | str) -> Any:
    """JSON from elsewhere, with bounded work: ``ValueError`` saying what is wrong for text that is
    not UTF-8 or not JSON, nests deeper than ``MAX_JSON_DEPTH`` or holds an integer of more than
    ``MAX_INT_DIGITS`` digits (so Python's int-string limit, float overflow and recursion limit are
    never met by what reads it)."""
    try:
        value = json.loads(data, parse_int=_parse_int)
    except RecursionError:
        raise ValueError(f"nested deeper than {MAX_JSON_DEPTH} levels") from None
    except UnicodeDecodeError as err:
        raise ValueError(f"not UTF-8 ({err.reason} at byte {err.start})") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"not JSON ({err.msg} at line {err.lineno} column {err.colno})") from None
    stack = [(value, 1)]
    while stack:  # depth, without recursion
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth > MAX_JSON_DEPTH:
                raise ValueError(f"nested deeper than {MAX_JSON_DEPTH} levels")
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return value


def read_json(path: str | os.PathLike, max_bytes: int, what: str = "JSON file") -> Any:
    """``parse_json`` of the file at ``path``, refusing one larger than ``max_bytes``; ``ValueError``
    naming the file and the problem (``FileNotFoundError`` when there is none)."""
    path = Path(path)
    size = path.stat().st_size
    if size > max_bytes:
        raise ValueError(f"{str(path)!r}: {size:,} bytes is larger than any {what} ({max_bytes:,})")
    try:
        return parse_json(path.read_bytes())
    except ValueError as err:
        raise ValueError(f"{str(path)!r}: not a readable {what}: {err}") from None


def write_csv(path: str | os.PathLike, rows: list[dict[str, Any]]) -> Path:
    """Write ``rows`` (dicts; the columns are every key, in first-seen order) as CSV, atomically;
    lists and dicts in a cell are written as JSON, a missing value as an empty cell."""
    columns = list(dict.fromkeys(k for row in rows for k in row))
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, columns)
            writer.writeheader()
            for row in rows:
                writer.writerow({k: json.dumps(v) if isinstance(v, (list, dict)) else v for k, v in row.items()})
    return Path(path)


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


_RENAME_EXCHANGE = 2
"""renameat2's flag that swaps two names in one step (Linux 3.15, glibc 2.28)."""
_AT_FDCWD = -100


def exchange(first: str | os.PathLike, second: str | os.PathLike) -> bool:
    """Swap the names of two existing paths in one atomic step (Linux ``renameat2`` with
    ``RENAME_EXCHANGE``); False where the system or the filesystem cannot, and nothing happened."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):  # not Linux, or a C library without it
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if renameat2(_AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):  # a filesystem or kernel without it
        return False
    raise OSError(code, os.strerror(code), str(first))


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling of ``path`` to write (a file or a folder); on success it is
    fsynced and put in place of ``path``, on failure removed. A reader never sees a half-written
    result, and a kill at any moment, SIGKILL included, leaves the previous version or the new one:
    a file is renamed over ``path`` in one step, and a folder replacing a folder is exchanged with
    it in one step (``exchange``), the old one removed after. Where the system cannot exchange two
    names (not Linux, or a filesystem without ``RENAME_EXCHANGE``) the folder goes in three steps,
    the old one renamed aside, the new one in, the old one removed, and a kill between the first two
    leaves the old folder under a hidden name beside ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
    aside = path.with_name(f".{path.name}.old-{os.getpid()}-{secrets.token_hex(4)}")
    try:
        yield tmp
        if tmp.is_dir():
            for child in tmp.iterdir():
                _fsync(child)
            if path.is_dir() and exchange(tmp, path):  # tmp now holds the old folder, removed below
                _fsync(path.parent)
                return
            if path.is_dir():
                os.rename(path, aside)
        else:
            _fsync(tmp)
        os.replace(tmp, path)
        _fsync(path.parent)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()
        if aside.exists():
            if path.exists():
                shutil.rmtree(aside, ignore_errors=True)
            else:  # the new folder never arrived: the old one goes back
                os.rename(aside, path)


def check_outputs(folder: str | os.PathLike, names: list[str], overwrite: bool) -> Path:
    """``folder`` (created), after checking that none of the files a run will write there exists
    unless ``overwrite``: call it before a run's first step, so it cannot fail after hours."""
    folder = Path(folder)
    existing = [name for name in names if (folder / name).exists()]
    if existing and not overwrite:
        raise FileExistsError(f"{str(folder)!r} already holds {existing}; choose another folder or set overwrite=True")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


class Claim:
    """An exclusive claim on some work among processes and hosts that share a filesystem: the
    ``path`` file, created atomically (``O_EXCL``), names its holder (host, pid, a random token)
    and is touched while the work goes on (``refresh``). A claim whose holder died is taken over:
    on the same host when its process is gone, anywhere when it has not been touched for
    ``stale_after`` seconds.

    Taking over is atomic: a taker first creates the marker ``path.takeover-<token of the dead
    claim>`` exclusively, so of the processes that found the same dead claim exactly one wins; the
    winner checks that the claim still holds that token and replaces it with its own in one rename.
    A taker that died in between leaves a marker that goes stale in turn and is taken over the
    same way (its name extended by the dead taker's token)."""

    def __init__(self, path: str | os.PathLike, stale_after: float = 600.0, refresh_every: float = 30.0):
        self.path, self.stale_after, self.refresh_every = Path(path), stale_after, refresh_every
        self.token = secrets.token_hex(8)
        self._refreshed = 0.0

    def _content(self) -> str:
        return json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "token": self.token})

    def acquire(self) -> bool:
        """Take the claim (True), or leave it to its living holder or to the run taking it over (False)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(3):  # a claim released meanwhile is created afresh
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                dead = _dead(self.path, self.stale_after)
                if dead is None:
                    if self.path.exists():
                        return False  # its holder lives
                    continue  # released meanwhile
                return self._take_over(dead)
            with os.fdopen(fd, "w") as f:
                f.write(self._content())
            self._refreshed = time.monotonic()
            return True
        return False

    def _take_over(self, dead: str) -> bool:
        """Replace the abandoned claim ``dead`` (its identity) with ours, exactly one taker winning."""
        key = dead
        while True:
            marker = self.path.with_name(f"{self.path.name}.takeover-{key}")
            try:
                fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                dead_taker = _dead(marker, self.stale_after)
                if dead_taker is None:
                    return False  # another run is taking it over (or has)
                key = f"{key}-{dead_taker}"[:200]
                continue
            with os.fdopen(fd, "w") as f:
                f.write(self._content())
            try:
                if _identity(self.path) != dead:
                    return False  # taken over (or released) before our marker existed
                tmp = self.path.with_name(f".{self.path.name}.{self.token}")
                tmp.write_text(self._content())
                os.replace(tmp, self.path)
                self._refreshed = time.monotonic()
                return True
            finally:
                marker.unlink(missing_ok=True)

    def holder(self) -> dict:
        """Who holds the claim (``host``, ``pid``, ``token``), or {} when nobody does or it cannot be read."""
        return _read(self.path)

    def abandoned(self) -> bool:
        """Whether the claim's holder is gone (its claim may be taken over)."""
        return _dead(self.path, self.stale_after) is not None

    def refresh(self, *_: object) -> None:
        """Touch the claim (at most every ``refresh_every`` seconds); cheap enough to call every step."""
        now = time.monotonic()
        if now - self._refreshed >= self.refresh_every:
            with contextlib.suppress(FileNotFoundError):  # taken over after a long stall: the work goes on
                os.utime(self.path)
            self._refreshed = now

    def release(self) -> None:
        """Give the claim up, if it is still ours (never remove the claim of a run that took it over)."""
        if _read(self.path).get("token") == self.token:
            self.path.unlink(missing_ok=True)


def _read(path: Path) -> dict:
    try:
        data = json.loads(path.read_text()[:4096])
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _identity(path: Path) -> str | None:
    """What tells one claim from the next at ``path``: its token (its inode and mtime for a claim
    written without one); None when there is none."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    token = _read(path).get("token")
    return str(token)[:64] if token else f"i{stat.st_ino}m{stat.st_mtime_ns}"


def _dead(path: Path, stale_after: float) -> str | None:
    """The identity of the claim (or marker) file ``path`` if its holder is gone, else None (it
    lives, or the file is gone). The identity is read first, so the verdict is about that claim."""
    identity = _identity(path)
    try:
        age = time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return None
    holder = _read(path)
    gone = age > stale_after or (holder.get("host") == socket.gethostname() and not _alive(holder.get("pid")))
    return identity if gone else None


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
