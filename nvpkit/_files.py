"""Atomic writes and the no-silent-overwrite rule, shared by every writer in nvpkit."""
from __future__ import annotations

import contextlib
import errno
import os
import shutil
from collections.abc import Iterator
from pathlib import Path


def refuse_overwrite(path: str | os.PathLike, overwrite: bool) -> Path:
    """``path`` as a Path, after checking it does not exist unless ``overwrite`` is set."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{str(path)!r} exists; pass overwrite=True to replace it")
    return path


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
