"""Image codecs for 2D planes and video codecs for 3D volumes, all in memory.

Every channel is min-max quantized to the codec's bit depth (its min and max are side
information), then encoded. Video goes through the ffmpeg binary that imageio-ffmpeg
ships, fed and read through pipes (no files): HEVC (libx265), H.264 (libx264), AV1 (libaom),
VVC (libvvenc) and SVT-AV1 (libsvtav1) as 8- or 10-bit raw bitstreams (grayscale 4:0:0 where the
encoder takes it, else 4:2:0 with constant chroma), one process per channel, channels concurrently. JPEG with ffmpeg's ``-qscale:v`` is the published route (ffmpeg's
mjpeg encoder); JPEG with an IJG ``quality``, WebP and PNG go through Pillow, which writes
true 8-bit grayscale images without a colour conversion.
"""
from __future__ import annotations

import functools
import io
import math
import os
import subprocess
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import ClassVar

import imageio_ffmpeg
import numpy as np
import torch
from PIL import Image

from .._checks import check_choice, check_int
from ..memory import DECODER_FRAMES, FFMPEG_BYTES, FLOAT32
from ..parts import Shape
from ..quantization import dequantize, quantize
from .base import Codec, Encoded


class CodecError(RuntimeError):
    """An encoder or decoder failed; the message carries its own error output."""


def _ffmpeg(args: list[str]) -> list[str]:
    return [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", *args]


def _failure(what: str, code: int, stderr: bytes) -> CodecError:
    """The encoder's own message (the cause) comes first in ffmpeg's stderr, its consequences after."""
    lines = [line.strip() for line in stderr.decode(errors="replace").splitlines() if line.strip()]
    return CodecError(f"{what} failed (ffmpeg exit {code}): {' | '.join(lines[:3]) or 'no output'}")


def run_ffmpeg(args: list[str], data: bytes | Iterable[bytes], what: str) -> bytes:
    """Run the bundled ffmpeg with ``args`` (an argument list, never a shell), ``data`` (bytes, or
    chunks streamed one after another) on stdin; return stdout. Failures raise ``CodecError`` with
    the first lines of ffmpeg's stderr."""
    if isinstance(data, bytes):
        proc = subprocess.run(_ffmpeg(args), input=data, capture_output=True)
        if proc.returncode != 0 or not proc.stdout:
            raise _failure(what, proc.returncode, proc.stderr)
        return proc.stdout
    return b"".join(ffmpeg_chunks(args, data, None, what))


def ffmpeg_chunks(args: list[str], data: Iterable[bytes], chunk: int | None, what: str, *,
                  header: Callable[[bytes], None] | None = None, timeout: float | None = None) -> Iterator[bytes]:
    """Run ffmpeg streaming ``data`` into stdin (from a thread) and yield stdout ``chunk`` bytes at a
    time (one decoded frame, say; None: as it comes), so neither side is ever held whole. A
    trailing partial chunk or a failure raises ``CodecError``. ``header``: called with the output's
    first line (at most 256 bytes: a Y4M header, say) before any chunk is read; it raises to stop.
    ``timeout``: seconds after which ffmpeg is killed and ``CodecError`` raised."""
    proc = subprocess.Popen(_ffmpeg(args), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    errors: list[bytes] = []
    expired = threading.Event()

    def expire() -> None:
        expired.set()
        proc.kill()
    timer = threading.Timer(timeout, expire) if timeout else None

    def feed() -> None:
        try:
            for part in data:
                proc.stdin.write(part)
        except (BrokenPipeError, OSError):
            pass  # ffmpeg stopped reading: its exit code says why
        finally:
            proc.stdin.close()

    feeder = threading.Thread(target=feed, daemon=True)
    drain = threading.Thread(target=lambda: errors.append(proc.stderr.read()), daemon=True)
    feeder.start()
    drain.start()
    if timer:
        timer.start()
    produced, finished = 0, False
    try:
        if header is not None:
            line = proc.stdout.readline(256)
            if line:  # else ffmpeg failed: its exit code and message follow
                header(line)
        while True:
            part = proc.stdout.read(chunk) if chunk else proc.stdout.read1(2**20)
            if not part:
                break
            if chunk and len(part) < chunk:
                raise CodecError(f"{what}: the output ended {len(part)} bytes into a {chunk}-byte frame")
            produced += len(part)
            yield part
        finished = True
    finally:
        if not finished:  # the reader stopped early or failed: stop ffmpeg too
            proc.kill()
        proc.stdout.close()
        code = proc.wait()
        if timer:
            timer.cancel()
        feeder.join()
        drain.join()
    if expired.is_set():
        raise CodecError(f"{what}: stopped after {timeout:.0f} s (the decoder's time limit)")
    if code != 0 or not produced:
        raise _failure(what, code, b"".join(errors))


def _quantized(channels: list[torch.Tensor], bits: int) -> tuple[list[np.ndarray], list[float]]:
    codes, side = [], []
    for c in channels:
        q, lo, hi = quantize(c, bits)
        codes.append(q.cpu().numpy() if bits <= 8 else q.cpu().numpy().astype(np.uint16))
        side += [lo.item(), hi.item()]
    return codes, side


def _dequantized(codes: list[np.ndarray], side: list[float], bits: int, device) -> list[torch.Tensor]:
    if len(side) != 2 * len(codes):
        raise ValueError(f"encoding holds {len(side) // 2} value ranges for {len(codes)} channels")
    return [dequantize(_code_tensor(c).to(device), side[2 * i], side[2 * i + 1], bits) for i, c in enumerate(codes)]


def _code_tensor(codes: np.ndarray) -> torch.Tensor:
    """Decoded codes as a tensor, 8-bit ones not widened (a decoder's buffer may be read-only: copied)."""
    if codes.dtype != np.uint8:
        return torch.from_numpy(codes.astype(np.int32))
    return torch.from_numpy(codes if codes.flags.writeable else codes.copy())


def _split_payload(encoded: Encoded, count: int) -> list[bytes]:
    lengths = encoded.header
    if len(lengths) != count or any(n <= 0 for n in lengths) or sum(lengths) != len(encoded.payload):
        raise ValueError(f"{encoded.codec}: stream lengths {lengths[:8]}… do not match {count} channels and "
                         f"{len(encoded.payload)} payload bytes")
    starts = np.cumsum([0, *lengths])
    return [encoded.payload[a:b] for a, b in zip(starts[:-1], starts[1:])]


class _PerChannel(Codec):
    """Shared plumbing: quantize each channel, encode each independently, concatenate the streams
    (their byte lengths are the header), and the reverse."""

    bit_depth: int = 8

    def _encode_one(self, codes: np.ndarray) -> bytes:
        raise NotImplementedError

    def _decode_one(self, stream: bytes, shape: Shape, threads: int = 1) -> np.ndarray:
        """One channel's codes; ``threads``: the decoder's share of the cores."""
        raise NotImplementedError

    def _decoders(self, count: int) -> int:
        """Channels decoded at once: at most one per core."""
        return max(1, min(count, os.cpu_count() or 1))

    def _workers(self, count: int) -> int:
        """Channels encoded at once."""
        return self._decoders(count)

    def _stream_bytes(self, shape: Shape) -> int:
        """The raw size of one channel's samples as the encoder takes them: a real stream is smaller."""
        return math.prod(shape) * (2 if self.bit_depth > 8 else 1)

    def payload_range(self, shapes: list[Shape]) -> tuple[int, int]:
        return len(shapes), sum(2 * self._stream_bytes(s) + 2**16 for s in shapes)

    def decode_work(self, shapes: list[Shape]) -> int:
        largest = max((math.prod(s) for s in shapes), default=0)
        codes = sum(math.prod(s) for s in shapes) * (2 if self.bit_depth > 8 else 1)
        images = self._decoders(len(shapes)) * 4 * largest  # Pillow's decoded image and its grayscale copy
        return codes + images + FLOAT32 * largest  # and one channel's codes widened to int32

    def encode(self, channels: list[torch.Tensor]) -> Encoded:
        codes, side = _quantized(channels, self.bit_depth)
        with ThreadPoolExecutor(self._workers(len(codes))) as pool:
            streams = list(pool.map(self._encode_one, codes))
        return Encoded(self.name, self.params(), b"".join(streams), side, [len(s) for s in streams],
                       self.descriptor())

    def decoder_settings(self) -> tuple[int, ...]:
        return (self.bit_depth,)

    def decode(self, encoded: Encoded, shapes: list[Shape], device: torch.device | str = "cpu") -> list[torch.Tensor]:
        self.check_payload(len(encoded.payload), shapes)
        streams = _split_payload(encoded, len(shapes))
        decoders = self._decoders(len(shapes))
        threads = [max(1, (os.cpu_count() or 1) // decoders)] * len(shapes)
        with ThreadPoolExecutor(decoders) as pool:
            codes = list(pool.map(self._decode_one, streams, shapes, threads))
        return _dequantized(codes, encoded.side, self.bit_depth, device)


# -- images (2D planes) ----------------------------------------------------------------------------------

@dataclass
class JPEG(_PerChannel):
    """JPEG of each plane as an 8-bit grayscale image. ``qscale`` (1-31, lower is better) is
    ffmpeg's ``-qscale:v`` on its mjpeg encoder, the published setting (2 for xy, 3 for xt
    and yt; 2 when neither is given); or ``quality`` (1-95, IJG scale, libjpeg through Pillow)."""

    qscale: int | None = None
    quality: int | None = None
    name: ClassVar[str] = "jpeg"
    codec_id: ClassVar[int] = 2
    dims: ClassVar[tuple[int, ...]] = (2,)

    def __post_init__(self) -> None:
        if self.qscale is None and self.quality is None:
            self.qscale = 2
        if (self.qscale is None) == (self.quality is None):
            raise ValueError(f"jpeg: give exactly one of qscale (ffmpeg) or quality (IJG), got "
                             f"qscale={self.qscale!r}, quality={self.quality!r}")
        if self.qscale is not None:
            check_int("jpeg", "qscale", self.qscale, 1, 31)
        else:
            check_int("jpeg", "quality", self.quality, 1, 95)

    def _encode_one(self, codes: np.ndarray) -> bytes:
        if self.quality is not None:
            return _pillow_save(codes, "JPEG", quality=self.quality)
        h, w = codes.shape
        return run_ffmpeg(["-f", "rawvideo", "-pix_fmt", "gray", "-s", f"{w}x{h}", "-i", "-", "-frames:v", "1",
                           "-c:v", "mjpeg", "-pix_fmt", "yuvj420p", "-qmin", "1", "-qscale:v", str(self.qscale),
                           "-f", "image2pipe", "-"], codes.tobytes(), "jpeg encode")

    def _decode_one(self, stream: bytes, shape: Shape, threads: int = 1) -> np.ndarray:
        return _pillow_load(stream, shape, 8)


@dataclass
class WebP(_PerChannel):
    """WebP of each plane (libwebp through Pillow): lossy at ``quality`` (0-100) or lossless."""

    quality: int = 90
    lossless: bool = False
    name: ClassVar[str] = "webp"
    codec_id: ClassVar[int] = 3
    dims: ClassVar[tuple[int, ...]] = (2,)

    def __post_init__(self) -> None:
        check_int("webp", "quality", self.quality, 0, 100)

    def _encode_one(self, codes: np.ndarray) -> bytes:
        return _pillow_save(np.repeat(codes[..., None], 3, 2), "WEBP", quality=self.quality, lossless=self.lossless)

    def _decode_one(self, stream: bytes, shape: Shape, threads: int = 1) -> np.ndarray:
        return _pillow_load(stream, shape, 8)


@dataclass
class PNG(_PerChannel):
    """Lossless PNG of each plane, 8- or 16-bit grayscale: exact up to the quantization step."""

    bit_depth: int = 8
    name: ClassVar[str] = "png"
    codec_id: ClassVar[int] = 4
    dims: ClassVar[tuple[int, ...]] = (2,)

    def __post_init__(self) -> None:
        check_choice("png", "bit_depth", self.bit_depth, {8, 16})

    def _encode_one(self, codes: np.ndarray) -> bytes:
        return _pillow_save(codes, "PNG", optimize=True)

    def _decode_one(self, stream: bytes, shape: Shape, threads: int = 1) -> np.ndarray:
        return _pillow_load(stream, shape, self.bit_depth)


def _pillow_save(codes: np.ndarray, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image = Image.fromarray(codes.astype(np.uint16)) if codes.dtype == np.uint16 else Image.fromarray(codes)
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def _pillow_load(stream: bytes, shape: Shape, bits: int) -> np.ndarray:
    try:
        image = Image.open(io.BytesIO(stream))  # reads the header only
        if image.size != (shape[1], shape[0]):  # before the pixels are decoded
            raise CodecError(f"image decode: the stream is {image.size[0]}x{image.size[1]}, expected "
                             f"{shape[1]}x{shape[0]}")
        array = np.asarray(image.convert("L") if bits == 8 else image)
    except CodecError:
        raise
    except Exception as err:  # Pillow raises several types for a bad stream
        raise CodecError(f"image decode failed: {err}") from None
    if array.shape[:2] != tuple(shape):
        raise CodecError(f"image decode gave {array.shape[:2]}, expected {tuple(shape)}")
    return array[..., 0] if array.ndim == 3 else array


# -- videos (3D volumes: time as frames) ---------------------------------------------------------------

def _padded(x: int, y: int) -> tuple[int, int]:
    """A frame's X, Y padded to even sizes of at least 16 (what every encoder accepts)."""
    return max(16, x + x % 2), max(16, y + y % 2)


def _pad_even(volume: np.ndarray) -> np.ndarray:
    """Edge-pad a [T, X, Y] volume to ``_padded`` frames."""
    _, x, y = volume.shape
    px, py = _padded(x, y)
    return np.pad(volume, ((0, 0), (0, px - x), (0, py - y)), mode="edge") if (px, py) != (x, y) else volume


@functools.cache
def ffmpeg_encoders() -> frozenset[str]:
    """The encoders of the bundled ffmpeg binary (asked once, when a codec is first used)."""
    out = subprocess.run(_ffmpeg(["-encoders"]), capture_output=True, text=True).stdout
    return frozenset(line.split()[1] for line in out.splitlines() if len(line.split()) > 1 and line.startswith(" V"))


def require_encoder(codec: str, encoder: str) -> None:
    """``CodecError`` saying so when the bundled ffmpeg has no ``encoder``."""
    if encoder not in ffmpeg_encoders():
        raise CodecError(f"{codec}: the ffmpeg binary of imageio-ffmpeg ({imageio_ffmpeg.get_ffmpeg_exe()}) has no "
                         f"{encoder} encoder; install an imageio-ffmpeg whose ffmpeg has it, or use another codec")


_Y4M_FRAME = b"FRAME\n"


class _Video(_PerChannel):
    """Each channel ``[T, X, Y]`` as a video, T frames of X rows and Y columns: grayscale (4:0:0) where
    the encoder takes it, else 4:2:0 with constant (neutral) chroma, whose few bits are counted like
    the rest; ``_input_depth`` is the sample depth the encoder takes (codes of fewer bits are
    shifted up, and rounded back down when decoded)."""

    crf: int
    framerate: float
    bit_depth: int
    dims: ClassVar[tuple[int, ...]] = (3,)
    _format: ClassVar[str]
    _encoder: ClassVar[str]
    _crf_max: ClassVar[int] = 51
    _chroma: ClassVar[bool] = False
    _input_depth: ClassVar[int | None] = None

    def _check(self) -> None:
        check_int(self.name, "crf", self.crf, 0, self._crf_max)
        check_choice(self.name, "bit_depth", self.bit_depth, {8, 10})
        if isinstance(self.framerate, bool) or not (isinstance(self.framerate, (int, float))
                                                     and 0 < self.framerate <= 1000):
            raise ValueError(f"{self.name}: framerate={self.framerate!r} is not allowed; use a number in (0, 1000]")
        self.framerate = float(self.framerate)  # 25 and 25.0 are one setting: the same bytes in an artifact

    def _encoder_args(self) -> list[str]:
        """The encoder's settings on the ffmpeg command line (after ``-c:v <_encoder>``)."""
        raise NotImplementedError

    @property
    def _depth(self) -> int:
        return self._input_depth or self.bit_depth

    @property
    def _pix_fmt(self) -> str:
        return ("yuv420p" if self._chroma else "gray") + ("10le" if self._depth == 10 else "")

    @property
    def _dtype(self) -> np.dtype:
        return np.dtype("<u2") if self._depth == 10 else np.dtype(np.uint8)

    def _workers(self, count: int) -> int:
        return max(1, count)  # every channel encoded at once: the encoders are multi-threaded themselves

    def _frame_samples(self, shape: Shape) -> int:
        """Samples of one decoded frame: the padded luma, and the chroma planes where there are some."""
        px, py = _padded(*shape[1:])
        return px * py * (3 if self._chroma else 2) // 2

    def _stream_bytes(self, shape: Shape) -> int:
        return shape[0] * self._frame_samples(shape) * self._dtype.itemsize

    def decode_work(self, shapes: list[Shape]) -> int:
        padded = sum(s[0] * math.prod(_padded(*s[1:])) for s in shapes) * self._dtype.itemsize  # the luma kept
        frame = max((self._frame_samples(s) for s in shapes), default=0) * self._dtype.itemsize
        decoders = self._decoders(len(shapes)) * (FFMPEG_BYTES + (DECODER_FRAMES * 2 + 1) * frame)  # 16-bit inside
        largest = max((math.prod(s) for s in shapes), default=0)
        return padded + decoders + FLOAT32 * largest  # and one channel's codes widened to int32

    def encode(self, channels: list[torch.Tensor]) -> Encoded:
        require_encoder(self.name, self._encoder)
        return super().encode(channels)

    def _encode_one(self, codes: np.ndarray) -> bytes:
        volume = _pad_even(codes).astype(self._dtype) << (self._depth - self.bit_depth)
        t, x, y = volume.shape
        if self._chroma:  # [T, X*Y] luma, then both chroma planes at their mid value
            chroma = np.full((t, x * y // 2), 1 << (self._depth - 1), self._dtype)
            volume = np.concatenate([volume.reshape(t, -1), chroma], axis=1)
        return run_ffmpeg(["-f", "rawvideo", "-pix_fmt", self._pix_fmt, "-s", f"{y}x{x}", "-framerate",
                           f"{self.framerate:g}", "-i", "-", "-c:v", self._encoder, *self._encoder_args(),
                           "-pix_fmt", self._pix_fmt,
                           "-f", self._format, "-"], volume.tobytes(), f"{self.name} encode")

    def _decode_one(self, stream: bytes, shape: Shape, threads: int = 1) -> np.ndarray:
        """One channel, decoded by an ffmpeg child bounded by the manifest: ``-max_pixels`` (with
        room for the decoder's alignment), ``-frames:v`` one more than expected, a share of the
        cores, a time limit; its Y4M output's header (the stream's declared size) is checked before
        any frame is read, then exactly ``t`` frames are."""
        t, x, y = shape
        px, py = _padded(x, y)
        what = f"{self.name} decode"

        def check_size(line: bytes) -> None:
            fields = dict((f[:1], f[1:]) for f in line.decode("ascii", "replace").split()[1:] if f)
            if not line.startswith(b"YUV4MPEG2 ") or (fields.get("W"), fields.get("H")) != (str(py), str(px)):
                raise CodecError(f"{what}: the stream is {fields.get('W')}x{fields.get('H')}, expected {py}x{px}")

        frame_bytes = self._frame_samples(shape) * self._dtype.itemsize
        out = np.empty((t, px, py), self._dtype)
        frames = ffmpeg_chunks(["-threads", str(threads), "-max_pixels", str((px + 256) * (py + 256)),
                                "-f", self._format, "-i", "-", "-frames:v", str(t + 1), "-f", "yuv4mpegpipe",
                                "-strict", "-1", "-pix_fmt", self._pix_fmt, "-"],
                               [stream], len(_Y4M_FRAME) + frame_bytes, what, header=check_size,
                               timeout=60 + 2e-6 * t * px * py)
        count = 0
        try:
            for count, frame in enumerate(frames, start=1):
                if count > t:  # a stream that decodes to more than it should is stopped here
                    raise CodecError(f"{what}: the stream holds more than the {t} frames of {py}x{px} it should")
                if not frame.startswith(_Y4M_FRAME):
                    raise CodecError(f"{what}: frame {count} has no Y4M frame header")
                out[count - 1] = np.frombuffer(frame, self._dtype, px * py, len(_Y4M_FRAME)).reshape(px, py)  # luma
        finally:
            frames.close()
        if count != t:
            raise CodecError(f"{what} gave {count} frames, expected {t} frames of {py}x{px}")
        shift = self._depth - self.bit_depth
        if shift:  # back to the codes' depth, rounded, in place (a 10-bit sample plus the half step fits)
            out += np.array(1 << (shift - 1), out.dtype)
            out >>= shift
            np.minimum(out, (1 << self.bit_depth) - 1, out=out)
        return out[:, :x, :y]


@dataclass
class HEVC(_Video):
    """HEVC (libx265), 4:0:0 8/10-bit; the published setting is crf 21, preset slow, framerate 25,
    bframes=0."""

    crf: int = 21
    preset: str = "slow"
    framerate: float = 25.0
    x265_params: str = "bframes=0"
    bit_depth: int = 8
    name: ClassVar[str] = "hevc"
    codec_id: ClassVar[int] = 5
    _format: ClassVar[str] = "hevc"
    _encoder: ClassVar[str] = "libx265"

    def __post_init__(self) -> None:
        self._check()
        check_choice("hevc", "preset", self.preset, PRESETS)

    def _encoder_args(self) -> list[str]:
        params = ":".join(p for p in (self.x265_params, "log-level=error") if p)
        return ["-preset", self.preset, "-crf", str(self.crf), "-x265-params", params]


@dataclass
class H264(_Video):
    """H.264 (libx264), 4:0:0 8/10-bit."""

    crf: int = 21
    preset: str = "slow"
    framerate: float = 25.0
    bit_depth: int = 8
    name: ClassVar[str] = "h264"
    codec_id: ClassVar[int] = 6
    _format: ClassVar[str] = "h264"
    _encoder: ClassVar[str] = "libx264"

    def __post_init__(self) -> None:
        self._check()
        check_choice("h264", "preset", self.preset, PRESETS)

    def _encoder_args(self) -> list[str]:
        return ["-preset", self.preset, "-crf", str(self.crf)]


@dataclass
class AV1(_Video):
    """AV1 (libaom), 4:0:0 8/10-bit, constant quality ``crf`` (0-63); ``cpu_used`` 0-8 trades
    speed for size."""

    crf: int = 32
    cpu_used: int = 6
    framerate: float = 25.0
    bit_depth: int = 8
    name: ClassVar[str] = "av1"
    codec_id: ClassVar[int] = 7
    _format: ClassVar[str] = "obu"
    _encoder: ClassVar[str] = "libaom-av1"
    _crf_max: ClassVar[int] = 63

    def __post_init__(self) -> None:
        self._check()
        check_int("av1", "cpu_used", self.cpu_used, 0, 8)

    def _encoder_args(self) -> list[str]:
        return ["-crf", str(self.crf), "-b:v", "0", "-cpu-used", str(self.cpu_used),
                "-row-mt", "1"]


@dataclass
class VVC(_Video):
    """VVC / H.266 (libvvenc), constant QP ``crf`` (vvenc's ``-qp``, 0-63) at a vvenc ``preset``
    (faster, fast, medium, slow, slower). vvenc takes only 10-bit 4:2:0, so each channel is the luma
    of a 10-bit 4:2:0 video with neutral chroma; 8-bit codes are shifted into 10 bits."""

    crf: int = 32
    preset: str = "medium"
    framerate: float = 25.0
    bit_depth: int = 8
    name: ClassVar[str] = "vvc"
    codec_id: ClassVar[int] = 9
    _format: ClassVar[str] = "vvc"
    _encoder: ClassVar[str] = "libvvenc"
    _crf_max: ClassVar[int] = 63
    _chroma: ClassVar[bool] = True
    _input_depth: ClassVar[int | None] = 10

    def __post_init__(self) -> None:
        self._check()
        check_choice("vvc", "preset", self.preset, VVC_PRESETS)

    def _encoder_args(self) -> list[str]:
        return ["-preset", self.preset, "-qp", str(self.crf)]


@dataclass
class SVTAV1(_Video):
    """AV1 by SVT-AV1 (libsvtav1), constant quality ``crf`` (0-63) at ``preset`` 0-13 (lower is
    slower and smaller). SVT-AV1 takes no grayscale: each channel is the luma of a 4:2:0 video with
    neutral chroma, 8- or 10-bit."""

    crf: int = 32
    preset: int = 8
    framerate: float = 25.0
    bit_depth: int = 8
    name: ClassVar[str] = "svtav1"
    codec_id: ClassVar[int] = 10
    _format: ClassVar[str] = "obu"
    _encoder: ClassVar[str] = "libsvtav1"
    _crf_max: ClassVar[int] = 63
    _chroma: ClassVar[bool] = True

    def __post_init__(self) -> None:
        self._check()
        check_int("svtav1", "preset", self.preset, 0, 13)

    def _encoder_args(self) -> list[str]:
        return ["-preset", str(self.preset), "-crf", str(self.crf)]


VVC_PRESETS = ("faster", "fast", "medium", "slow", "slower")
"""vvenc's presets, fastest first."""

PRESETS = {"ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow",
            "placebo"}

__all__ = ["CodecError", "JPEG", "WebP", "PNG", "HEVC", "H264", "AV1", "VVC", "SVTAV1", "run_ffmpeg", "ffmpeg_chunks",
           "ffmpeg_encoders", "require_encoder", "PRESETS", "VVC_PRESETS"]
