"""Video in and out: ``load_video`` reads any source into uint8 frames, ``write_video`` writes them.

Sources: ``"sample"`` (the clip in ``data/``), a dataset by name (``"uvg/Jockey"``, fetched
with ``python -m nvpkit data fetch uvg/Jockey``), a folder of png/jpg frames (natural
sort: the UVG layout ``f00001.png …``), any file the ffmpeg that imageio-ffmpeg
ships can read (mp4, mkv, y4m, …), raw planar ``.yuv`` (size, chroma format and
bit depth from arguments or from UVG-style names such as
``Jockey_1920x1080_120fps_420_8bit_YUV.yuv``), ``.npy`` arrays, or an array.
Frames are selected (``start``, ``stride``, ``num_frames``), cropped and
downscaled while they stream in, so memory holds only the frames kept.
"""
from __future__ import annotations

import contextlib
import itertools
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import imageio.v3 as iio
import imageio_ffmpeg
import numpy as np
import torch
import torch.nn.functional as F

from ._checks import check_int
from .colour import Colour, YuvSource
from ._files import atomic_path, refuse_overwrite
from ._resources import DATA_DIR
from .datasets import DATASETS, dataset_path

__all__ = ["Video", "load_video", "write_video", "video_writer", "SAMPLES"]

SAMPLES = {"sample": DATA_DIR / "bigbuckbunny.mp4"}
"""Clips shipped in ``data/`` by name (see ``data/README.md`` for source and licence)."""

_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}
_CONTAINERS = {".mp4": "mp4", ".mkv": "matroska", ".mov": "mov"}


@dataclass
class Video:
    """uint8 RGB frames ``[T, H, W, 3]`` with a name and a frame rate; for a raw ``.yuv`` source, its
    colour (the conversion the frames were made with) and, when the frames are its frames one for
    one (no crop, no downscale), where its planes are (``yuv``: YUV PSNR is measured against them)."""

    frames: np.ndarray
    name: str
    fps: float = 25.0
    source: str = ""
    colour: Colour | None = None
    """The source's Y'CbCr colour (None: an RGB source, such as image files or an array)."""
    yuv: YuvSource | None = None
    """The source planes of the frames, one for one (None: not a raw .yuv, or cropped or scaled)."""

    @property
    def num_frames(self) -> int:
        return self.frames.shape[0]

    @property
    def height(self) -> int:
        return self.frames.shape[1]

    @property
    def width(self) -> int:
        return self.frames.shape[2]

    @property
    def num_pixels(self) -> int:
        """``T * H * W``, the denominator of bits per pixel."""
        return self.num_frames * self.height * self.width

    def head(self, count: int) -> "Video":
        """The first ``count`` frames (all, for a shorter clip), sharing this clip's memory."""
        return Video(self.frames[:count], self.name, self.fps, self.source, self.colour, self.yuv)

    def __repr__(self) -> str:
        return (f"Video({self.name!r}, {self.num_frames} frames of {self.height}x{self.width}, "
                f"{self.fps:g} fps)")


def _natural_key(path: Path) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


HEADER_WAIT_S = 9.5
"""A failure to read ffmpeg's header after this long is imageio-ffmpeg giving up on a slow start
(it waits 10 s), as on a heavily loaded machine, not an unreadable file: it is tried again."""


def _ffmpeg_frames(path: Path, input_params: list[str] | None = None, colour: Colour | None = None
                   ) -> tuple[Iterator[np.ndarray], float, str]:
    """Frames of a file decoded by the bundled ffmpeg (converted to RGB with ``colour`` when given),
    its frame rate and ffmpeg's description of its pixel format (with its colour tags)."""
    for attempt in range(3):
        started = time.perf_counter()
        try:
            reader = imageio_ffmpeg.read_frames(str(path), pix_fmt="rgb24", input_params=input_params or [],
                                                output_params=colour.rgb_args()[:2] if colour else [])
            meta = next(reader)
            break
        except (OSError, RuntimeError, StopIteration) as err:
            if time.perf_counter() - started < HEADER_WAIT_S or attempt == 2:
                raise ValueError(f"{str(path)!r}: ffmpeg cannot read it as a video ({_last_line(err)})") from None
    width, height = meta["size"]

    def frames() -> Iterator[np.ndarray]:
        try:
            for buffer in reader:
                yield np.frombuffer(buffer, np.uint8).reshape(height, width, 3)
        except (OSError, RuntimeError) as err:
            raise ValueError(f"{str(path)!r}: ffmpeg failed while decoding ({_last_line(err)})") from None
        finally:
            reader.close()

    return frames(), float(meta.get("fps") or 25.0), str(meta.get("pix_fmt", ""))


_TAGGED_MATRICES = {"bt709": "bt709", "bt470bg": "bt601", "smpte170m": "bt601"}
"""ffmpeg's names of the Y'CbCr matrices nvpkit converts with."""


def _tagged_colour(described: str) -> Colour | None:
    """A video file's colour from ffmpeg's description of its stream (``yuv420p(tv, bt709,
    progressive)``), which the bundled ffmpeg converts to RGB with: the tagged matrix and range; for
    an untagged Y'CbCr file ffmpeg's default (BT.601, the range its pixel format implies), as every
    frame converter reading it would; None for other streams (RGB, other matrices or layouts)."""
    found = re.fullmatch(r"yuv(j?)(420|422|444)p(10le)?(?:\((.*)\))?", described.strip())
    if not found:
        return None
    tags = [t.strip() for t in (found[4] or "").split(",")]
    matrix = next((_TAGGED_MATRICES.get(t.split("/")[0]) for t in tags if t.split("/")[0] in _TAGGED_MATRICES
                   or t.startswith(("bt2020", "fcc", "smpte240m"))), "bt601")
    if matrix is None:
        return None
    full = found[1] == "j" or "pc" in tags
    return Colour(matrix, "pc" if full else "tv", found[2], 10 if found[3] else 8)


def _last_line(err: BaseException) -> str:
    lines = [line for line in str(err).strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else type(err).__name__


def _image_files(folder: Path) -> list[Path]:
    files = sorted((p for p in folder.iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES), key=_natural_key)
    if not files:
        raise ValueError(f"{str(folder)!r}: folder holds no png/jpg frames")
    return files


def _read_image(file: Path) -> np.ndarray:
    try:
        return _as_rgb(iio.imread(file, plugin="pillow"), file)
    except ValueError:
        raise
    except Exception as err:  # imageio raises many types for a corrupt image
        raise ValueError(f"{str(file)!r}: cannot read image ({_last_line(err)})") from None


def _as_rgb(image: np.ndarray, origin: object) -> np.ndarray:
    if image.dtype != np.uint8:
        raise ValueError(f"{origin!s}: expected 8-bit frames, got dtype {image.dtype}")
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        raise ValueError(f"{origin!s}: expected an RGB(A) or grey frame, got shape {image.shape}")
    return image[..., :3]


def parse_yuv_name(name: str) -> dict:
    """Size, frame rate, chroma format and bit depth from a UVG-style file name (what is present)."""
    found = {}
    if m := re.search(r"(\d+)x(\d+)", name):
        found["width"], found["height"] = int(m[1]), int(m[2])
    if m := re.search(r"(\d+(?:\.\d+)?)fps", name, re.IGNORECASE):
        found["fps"] = float(m[1])
    if m := re.search(r"(?:^|[_\-.])(420|422|444)(?:[_\-.p]|$)", name):
        found["chroma"] = m[1]
    if m := re.search(r"(8|10)bit", name, re.IGNORECASE):
        found["bit_depth"] = int(m[1])
    return found


def _yuv_frames(path: Path, size: tuple[int, int] | None, chroma: str | None, bit_depth: int | None,
                fps: float | None, matrix: str, yuv_range: str
                ) -> tuple[int, Iterator[np.ndarray], float, Colour, tuple[int, int]]:
    parsed = parse_yuv_name(path.name)
    width, height = size if size is not None else (parsed.get("width"), parsed.get("height"))
    if width is None:
        raise ValueError(f"{str(path)!r}: raw .yuv needs size=(width, height); none given or found in the "
                         "name (UVG style: Name_1920x1080_120fps_420_8bit_YUV.yuv)")
    for key, value in (("width", width), ("height", height)):
        check_int(f"{str(path)!r}: raw .yuv", key, value, 1, 2**16)
    chroma, bit_depth = chroma or parsed.get("chroma", "420"), bit_depth or parsed.get("bit_depth", 8)
    try:
        colour = Colour(matrix, yuv_range, chroma, bit_depth)
    except ValueError as err:
        raise ValueError(f"{str(path)!r}: {err}") from None
    fps = fps or parsed.get("fps", 25.0)
    frame_bytes = YuvSource(str(path), width, height, colour).frame_bytes
    total = path.stat().st_size
    if total == 0 or total % frame_bytes:
        raise ValueError(f"{str(path)!r}: truncated or mis-sized raw video: {total} bytes is not a whole number "
                         f"of {width}x{height} {chroma} {bit_depth}-bit frames ({frame_bytes} bytes each)")
    params = ["-f", "rawvideo", "-pix_fmt", colour.pix_fmt, "-s", f"{width}x{height}", "-framerate", f"{fps:g}"]
    frames, _, _ = _ffmpeg_frames(path, params, colour)
    return total // frame_bytes, frames, fps, colour, (width, height)


def _downscale(frame: np.ndarray, factor: int) -> np.ndarray:
    """Area (box) average to ``(H // factor, W // factor)``, rounded to uint8."""
    h, w = frame.shape[0] // factor, frame.shape[1] // factor
    x = torch.from_numpy(frame.astype(np.float32)).permute(2, 0, 1)[None]  # [H, W, 3] -> [1, 3, H, W]
    x = F.interpolate(x, size=(h, w), mode="area")
    return (x[0].permute(1, 2, 0) + 0.5).floor().clamp(0, 255).to(torch.uint8).numpy()  # [h, w, 3]


def load_video(source: str | Path | np.ndarray = "sample", num_frames: int | None = None, *, start: int = 0,
               stride: int = 1, crop: tuple[int, int, int, int] | None = None, downscale: int = 1,
               size: tuple[int, int] | None = None, chroma: str | None = None, bit_depth: int | None = None,
               matrix: str = "bt709", yuv_range: str = "tv", fps: float | None = None,
               name: str | None = None) -> Video:
    """Load a video as uint8 RGB frames ``[T, H, W, 3]``.

    Args:
        source: ``"sample"``, a dataset name (``"uvg/Jockey"``, once fetched: ``nvpkit.datasets``), a
            folder of frames, a video file, a raw ``.yuv``, a ``.npy`` or an array.
        num_frames: frames to keep (all if None); an error if the source has fewer.
        start: index of the first frame kept.
        stride: keep every ``stride``-th frame from ``start``.
        crop: ``(top, left, height, width)`` in source pixels, applied before downscaling.
        downscale: integer factor; frames are area-averaged to ``(H // f, W // f)``.
        size: raw ``.yuv`` only: ``(width, height)`` (parsed from UVG-style names when omitted).
        chroma: raw ``.yuv`` only: ``"420"``, ``"422"`` or ``"444"`` (from the name, else 4:2:0).
        bit_depth: raw ``.yuv`` only: 8 or 10 (from the name, else 8).
        matrix: raw ``.yuv`` only: the Y'CbCr matrix, ``"bt709"`` (UVG's; the default) or ``"bt601"``.
        yuv_range: raw ``.yuv`` only: ``"tv"`` (limited, UVG's; the default) or ``"pc"`` (full).
        fps: frame rate to record (taken from the source when it has one).
        name: name to record (the file or folder stem by default).
    """
    for key, value, least in (("start", start, 0), ("stride", stride, 1), ("downscale", downscale, 1)):
        check_int("load_video", key, value, least)
    if num_frames is not None:
        check_int("load_video", "num_frames", num_frames, 1)

    rate, colour, planes = 25.0, None, None
    if isinstance(source, np.ndarray):
        label, frames, total = name or "array", _check_array(source, "array"), len(source)
    else:
        if str(source) in DATASETS:  # fetched into the dataset cache
            path, label = dataset_path(str(source)), name or str(source).split("/")[-1]
        else:
            path = SAMPLES.get(str(source), Path(source))
            label = name or path.stem
        if not path.exists():
            raise FileNotFoundError(f"load_video: {str(path)!r} does not exist (shipped samples: {sorted(SAMPLES)})")
        if path.is_dir():
            frames = _image_files(path)
            total = len(frames)
        elif path.suffix.lower() == ".npy":
            try:
                array = np.load(path, mmap_mode="r", allow_pickle=False)
            except (ValueError, OSError) as err:
                raise ValueError(f"{str(path)!r}: not a readable .npy array ({_last_line(err)})") from None
            frames, total = _check_array(array, str(path)), len(array)
        elif path.suffix.lower() == ".yuv":
            total, frames, rate, colour, (width, height) = _yuv_frames(path, size, chroma, bit_depth, fps, matrix,
                                                                       yuv_range)
            if crop is None and downscale == 1:  # the frames are the file's frames, one for one
                planes = YuvSource(str(path), width, height, colour, start, stride)
        else:
            (frames, rate, described), total = _ffmpeg_frames(path), None
            colour = _tagged_colour(described)
        source = str(path)

    wanted = num_frames or 1
    if total is not None:  # random access (folder, array) or a known count (raw yuv): check before decoding
        selected = len(range(start, total, stride))
        if selected < wanted:
            raise ValueError(f"load_video: {source!r} has {total} frames; start={start}, stride={stride} "
                             f"selects {selected}, fewer than num_frames={wanted}")
    if isinstance(frames, (list, np.ndarray)):  # random access: read only the selected frames
        items = frames
        picked = range(start, total, stride)[:num_frames]
        stream = ((items[i], _read_image(items[i])) if isinstance(items, list) else (f"frame {i}", items[i])
                  for i in picked)
    else:
        stream = ((f"frame {i}", frame) for i, frame in itertools.islice(enumerate(frames), start, None, stride))
    # frames go straight into the clip's array when their count is known (else a list, stacked at the end)
    count = num_frames or (len(range(start, total, stride)) if total is not None else None)
    kept: list[np.ndarray] | np.ndarray = []
    first, read = None, 0
    for where, frame in itertools.islice(stream, num_frames):
        frame = _as_rgb(np.asarray(frame), source)
        first = first or (where, frame.shape)
        if frame.shape != first[1]:
            raise ValueError(f"load_video: {str(where)!r} of {source!r} is {frame.shape[1]}x{frame.shape[0]} but "
                             f"{str(first[0])!r} is {first[1][1]}x{first[1][0]}; all frames must match")
        if crop is not None:
            frame = _crop(frame, crop, source)
        frame = _downscale(frame, downscale) if downscale > 1 else frame
        if count is None:
            kept.append(np.array(frame))
        else:
            if read == 0:
                kept = np.empty((count, *frame.shape), np.uint8)
            kept[read] = frame
        read += 1
    if hasattr(frames, "close"):
        frames.close()  # stop ffmpeg once enough frames are read
    if read < wanted:
        raise ValueError(f"load_video: {source!r} ended after start={start}, stride={stride} selected "
                         f"{read} frames, fewer than num_frames={wanted}")
    out = kept[:read] if isinstance(kept, np.ndarray) else np.stack(kept)
    if min(out.shape[1:3]) < 2:
        raise ValueError(f"load_video: frames of {out.shape[2]}x{out.shape[1]} are too small (need >= 2x2)")
    return Video(out, label, float(fps or rate), str(source), colour, planes)


def _check_array(array: np.ndarray, origin: str) -> np.ndarray:
    if array.dtype != np.uint8 or array.ndim not in (3, 4) or (array.ndim == 4 and array.shape[3] not in (1, 3, 4)):
        raise ValueError(f"{origin}: expected uint8 frames [T, H, W, 3] (or [T, H, W]), got {array.dtype} "
                         f"array of shape {array.shape}")
    return array[..., 0] if array.ndim == 4 and array.shape[3] == 1 else array


def _crop(frame: np.ndarray, crop: tuple[int, int, int, int], origin: str) -> np.ndarray:
    top, left, height, width = crop
    h, w = frame.shape[:2]
    if min(top, left) < 0 or height < 2 or width < 2 or top + height > h or left + width > w:
        raise ValueError(f"load_video: crop={crop!r} (top, left, height, width) does not fit the "
                         f"{w}x{h} frames of {origin!r}")
    return frame[top:top + height, left:left + width]


@contextlib.contextmanager
def video_writer(path: str | Path, fps: float = 25.0, *, crf: int = 12,
                 overwrite: bool = False) -> Iterator[Callable[[np.ndarray], None]]:
    """Context manager yielding ``write(frame)`` for uint8 ``[H, W, 3]`` frames, streamed to an mp4
    (H.264, near-lossless ``crf``) or, for a path without a suffix, to a folder of
    ``f00001.png …``. The result appears atomically when the block ends without error;
    an existing ``path`` is refused unless ``overwrite``."""
    path = refuse_overwrite(path, overwrite)
    if path.suffix and path.suffix not in _CONTAINERS:
        raise ValueError(f"video_writer: path suffix {path.suffix!r} not supported; use one of "
                         f"{sorted(_CONTAINERS)} or no suffix for a folder of png frames")
    with atomic_path(path) as tmp:
        count, encoder = 0, None

        def write(frame: np.ndarray) -> None:
            nonlocal count, encoder
            if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
                raise ValueError(f"video_writer: expected a uint8 frame [H, W, 3], got {frame.dtype} {frame.shape}")
            count += 1
            if not path.suffix:
                tmp.mkdir(exist_ok=True)
                iio.imwrite(tmp / f"f{count:05d}.png", frame)
                return
            if encoder is None:
                height, width = frame.shape[:2]
                encoder = imageio_ffmpeg.write_frames(
                    str(tmp), (width, height), fps=fps, codec="libx264", macro_block_size=1,
                    pix_fmt_in="rgb24", pix_fmt_out="yuv420p", output_params=[
                        "-crf", str(crf), "-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2", "-f", _CONTAINERS[path.suffix]])
                encoder.send(None)
            encoder.send(np.ascontiguousarray(frame))

        try:
            yield write
        finally:
            if encoder is not None:
                encoder.close()
        if count == 0:
            raise ValueError(f"video_writer: no frame was written to {str(path)!r}")


def write_video(frames: np.ndarray | Video, path: str | Path, fps: float | None = None, *, crf: int = 12,
                overwrite: bool = False) -> Path:
    """Write uint8 frames ``[T, H, W, 3]`` (or a ``Video``) with ``video_writer``; returns the path."""
    if isinstance(frames, Video):
        fps = fps or frames.fps
        frames = frames.frames
    with video_writer(path, fps or 25.0, crf=crf, overwrite=overwrite) as write:
        for frame in np.asarray(frames):
            write(frame)
    return Path(path)
