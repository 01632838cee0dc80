"""Datasets by name: the UVG 1080p sequences, fetched once into a cache and read by name.

``fetch("uvg/Jockey")`` (``python -m nvpkit data fetch uvg/Jockey``) downloads the official 7z
archive of the raw YUV from the Ultra Video Group into ``data_root()`` (``$NVPKIT_DATA``, else
the user cache folder), with a progress bar; an interrupted download resumes where it stopped
(HTTP range requests). The archive's size is checked against what the server announces and what
nvpkit knows, the raw YUV's exact byte size against the sequence's frame count before it is
extracted (py7zr), and its sha256 is recorded next to it; a later ``fetch`` verifies it. The
sequence becomes visible at its final path only when all of that passed (an extraction goes into
a hidden folder renamed into place), so nothing half-written is ever read; a partial download
waits in ``.partial/`` to be resumed. ``load_video("uvg/Jockey")`` then reads it with its size,
frame rate and chroma format.
"""
from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from ._files import read_json, write_json
from ._progress import progress_bar

__all__ = ["RawClip", "DATASETS", "DATA_ENV", "UVG_URL", "data_root", "fetch", "dataset_path", "FetchError"]

DATA_ENV = "NVPKIT_DATA"
"""The environment variable that sets the dataset cache folder."""
UVG_URL = "https://ultravideo.fi/video/"
"""Where the Ultra Video Group serves the UVG archives."""
RECORD = "nvpkit.json"
"""What a fetched sequence's folder records: source, sizes, frame count and the YUV's sha256."""
_CHUNK = 2**20


class FetchError(RuntimeError):
    """A download or an archive that is not what it should be; the message says what to do."""


@dataclass(frozen=True)
class RawClip:
    """A raw 8-bit YUV sequence distributed as a 7z archive."""

    name: str
    """Its name in nvpkit, e.g. 'uvg/Jockey'."""
    archive: str
    """File name of the archive on the server."""
    archive_bytes: int
    """Size of the archive (checked before and after the download)."""
    width: int
    height: int
    frames: int
    fps: float
    chroma: str = "420"
    url: str = UVG_URL
    """Folder URL the archive is served from."""

    @property
    def yuv_bytes(self) -> int:
        """The raw YUV's exact size: ``frames`` planar 4:2:0 frames of 8 bits."""
        return self.frames * self.width * self.height * 3 // 2

    @property
    def yuv_name(self) -> str:
        """The file name nvpkit keeps it under (UVG style, so that its geometry is in the name)."""
        return f"{self.name.split('/')[-1]}_{self.width}x{self.height}_{self.fps:g}fps_{self.chroma}_8bit_YUV.yuv"


def _uvg(name: str, archive_name: str, archive_bytes: int, frames: int = 600) -> RawClip:
    return RawClip(f"uvg/{name}", f"{archive_name}_1920x1080_120fps_420_8bit_YUV_RAW.7z", archive_bytes,
                   1920, 1080, frames, 120.0)


DATASETS: dict[str, RawClip] = {c.name: c for c in (
    _uvg("Beauty", "Beauty", 925_430_047),
    _uvg("Bosphorus", "Bosphorus", 680_772_328),
    _uvg("HoneyBee", "HoneyBee", 906_770_507),
    _uvg("Jockey", "Jockey", 770_631_599),
    _uvg("ReadySetGo", "ReadySetGo", 832_143_797),  # the archive holds ReadySteadyGo_...yuv
    _uvg("ShakeNDry", "ShakeNDry", 460_046_003, frames=300),
    _uvg("YachtRide", "YachtRide", 724_220_168),
)}
"""The sequences ``fetch`` knows: the seven UVG 1080p sequences (120 fps, 8-bit 4:2:0)."""


def data_root() -> Path:
    """Where fetched datasets live: ``$NVPKIT_DATA``, else the user cache folder (platformdirs)."""
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV]).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("nvpkit")) / "data"


def _clip(name: str | RawClip) -> RawClip:
    if isinstance(name, RawClip):
        return name
    if name not in DATASETS:
        raise ValueError(f"dataset {name!r} is not known; known: {sorted(DATASETS)}")
    return DATASETS[name]


def dataset_path(name: str | RawClip, root: str | os.PathLike | None = None) -> Path:
    """The raw YUV of a fetched sequence; ``FileNotFoundError`` saying how to fetch it otherwise."""
    clip = _clip(name)
    path = Path(root or data_root()) / clip.name / clip.yuv_name
    if not path.is_file():
        raise FileNotFoundError(f"{clip.name} is not fetched (looked in {str(path.parent)!r}); run "
                                f"`python -m nvpkit data fetch {clip.name}` (set {DATA_ENV} to choose the folder)")
    if path.stat().st_size != clip.yuv_bytes:
        raise FileNotFoundError(f"{str(path)!r} has {path.stat().st_size:,} bytes, not the {clip.yuv_bytes:,} of "
                                f"{clip.frames} frames; delete its folder and fetch {clip.name} again")
    return path


def _sha256(path: Path, progress: bool) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f, progress_bar(total=path.stat().st_size, desc="sha256", unit="B",
                                             disable=not progress) as bar:
        while block := f.read(16 * _CHUNK):
            digest.update(block)
            bar.update(len(block))
    return digest.hexdigest()


def _download(clip: RawClip, part: Path, timeout: float, progress: bool) -> None:
    """Download the archive into ``part``, resuming what is there; ``FetchError`` when the server
    announces another size or the transfer ends early (``part`` is kept then, to be resumed)."""
    have = part.stat().st_size if part.exists() else 0
    if have > clip.archive_bytes:
        part.unlink()
        have = 0
    if have == clip.archive_bytes:
        return
    url = clip.url + clip.archive
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except (urllib.error.URLError, OSError) as err:
        raise FetchError(f"{clip.name}: cannot download {url} ({err}); check the network, or set the URL "
                         "of a mirror") from None
    with response:
        resumed = response.status == 206
        length, whole = response.headers.get("Content-Length"), response.headers.get("Content-Range", "")
        if resumed and "/" in whole and whole.rsplit("/", 1)[1].isdigit():
            total = int(whole.rsplit("/", 1)[1])
        else:
            total = (have if resumed else 0) + int(length) if length is not None else None
        if total is not None and total != clip.archive_bytes:
            raise FetchError(f"{clip.name}: {url} offers {total:,} bytes, but the archive nvpkit knows has "
                             f"{clip.archive_bytes:,}: it changed upstream or the URL is wrong; nothing was kept")
        if not resumed:
            have = 0
        with open(part, "ab" if resumed else "wb") as f, \
                progress_bar(total=clip.archive_bytes, initial=have, desc=clip.name, unit="B",
                             disable=not progress) as bar:
            try:
                while block := response.read(_CHUNK):
                    if have + len(block) > clip.archive_bytes:
                        raise FetchError(f"{clip.name}: {url} sent more than the {clip.archive_bytes:,} bytes "
                                         "of the archive; nothing was kept")
                    f.write(block)
                    have += len(block)
                    bar.update(len(block))
            except FetchError:
                f.close()
                part.unlink()
                raise
            except (OSError, urllib.error.URLError) as err:
                raise FetchError(f"{clip.name}: the download stopped at {have:,} of {clip.archive_bytes:,} bytes "
                                 f"({err}); run the same fetch again to resume") from None
    if have != clip.archive_bytes:
        raise FetchError(f"{clip.name}: the download stopped at {have:,} of {clip.archive_bytes:,} bytes; run the "
                         "same fetch again to resume")


def _extract(clip: RawClip, archive: Path, folder: Path) -> Path:
    """The archive's one raw YUV, checked from the archive's listing (exact size, a plain name)
    before anything is written, extracted into ``folder`` under ``clip.yuv_name``."""
    import py7zr

    try:
        with py7zr.SevenZipFile(archive) as z:
            members = [m for m in z.list() if not m.is_directory]
            yuvs = [m for m in members if m.filename.lower().endswith(".yuv")]
            if len(yuvs) != 1:
                raise FetchError(f"{clip.name}: the archive holds {len(yuvs)} .yuv files, not one")
            member = yuvs[0]
            if member.uncompressed != clip.yuv_bytes:
                raise FetchError(f"{clip.name}: the archive's {member.filename} has {member.uncompressed:,} bytes, "
                                 f"not the {clip.yuv_bytes:,} of {clip.frames} frames of {clip.width}x{clip.height} "
                                 "4:2:0")
            if Path(member.filename).name != member.filename or member.filename.startswith("."):
                raise FetchError(f"{clip.name}: the archive's member {member.filename!r} is not a plain file name")
            z.extract(path=folder, targets=[member.filename])
    except FetchError:
        raise
    except Exception as err:  # py7zr's own, lzma's, EOFError, ...: a damaged archive, whatever the error
        raise FetchError(f"{clip.name}: the archive {str(archive)!r} is damaged ({type(err).__name__}: {err}); "
                         "it was deleted, fetch again to download it anew") from None
    extracted = folder / member.filename
    if not extracted.is_file() or extracted.stat().st_size != clip.yuv_bytes:
        raise FetchError(f"{clip.name}: the archive is damaged (its YUV did not extract to "
                         f"{clip.yuv_bytes:,} bytes); it was deleted, fetch again to download it anew")
    target = folder / clip.yuv_name
    extracted.rename(target)
    return target


def fetch(name: str | RawClip, *, root: str | os.PathLike | None = None, timeout: float = 60.0,
          progress: bool = True) -> Path:
    """The raw YUV of ``name`` (e.g. ``"uvg/Jockey"``) in the dataset cache, downloaded, checked and
    extracted first if it is not there (see the module docstring); when it is, its sha256 is
    checked against the one recorded at the first download. ``FetchError`` says what went wrong
    and what to do."""
    clip = _clip(name)
    root = Path(root or data_root())
    final = root / clip.name
    if (final / clip.yuv_name).is_file():
        try:
            recorded = read_json(final / RECORD, 2**16, "fetch record")["sha256"]
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise FetchError(f"{clip.name}: the fetch record of {str(final)!r} is unreadable ({err}); delete "
                             f"{str(final)!r} and fetch again") from None
        if _sha256(final / clip.yuv_name, progress) != recorded:
            raise FetchError(f"{clip.name}: {str(final / clip.yuv_name)!r} changed since it was fetched (sha256 "
                             f"differs from {recorded}); delete {str(final)!r} and fetch again")
        return dataset_path(clip, root)
    if final.exists():
        raise FetchError(f"{clip.name}: {str(final)!r} exists but holds no complete sequence; delete it and fetch "
                         "again")
    partial = root / ".partial"
    partial.mkdir(parents=True, exist_ok=True)
    part = partial / f"{clip.name.replace('/', '--')}.7z.part"
    _download(clip, part, timeout, progress)
    staging = final.parent / f".{final.name}.{secrets.token_hex(4)}"
    staging.mkdir(parents=True)
    try:
        try:
            yuv = _extract(clip, part, staging)
        except FetchError:
            part.unlink(missing_ok=True)
            raise
        write_json(staging / RECORD, {"name": clip.name, "url": clip.url + clip.archive,
                                      "archive_bytes": clip.archive_bytes, "yuv_bytes": clip.yuv_bytes,
                                      "frames": clip.frames, "size": [clip.width, clip.height], "fps": clip.fps,
                                      "chroma": clip.chroma, "sha256": _sha256(yuv, progress)})
        os.rename(staging, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    part.unlink()
    return dataset_path(clip, root)
