"""A source's colour: how its Y'CbCr samples map to RGB, and its planes, as video coding measures them.

A raw ``.yuv`` (UVG) holds Y'CbCr planes; nvpkit trains on RGB made from them with the source's own
conversion (``Colour``: BT.709 limited range by default, as UVG is, or what the caller says), done
by the bundled ffmpeg's scale filter (``rgb_args``). The YUV PSNR of a reconstruction of such a
source is then measured the way a codec evaluation measures it: the reconstruction's RGB converted
back with the same matrix and range and subsampled as ffmpeg subsamples for the codecs
(``to_planes``), each plane against the source's own planes (``YuvSource.planes``) at its bit
depth. That is the number x265 and ffmpeg's ``psnr`` filter report on the same ``.yuv``.
"""
from __future__ import annotations

import math
import subprocess
from dataclasses import dataclass

import imageio_ffmpeg
import numpy as np

from ._checks import check_choice

__all__ = ["Colour", "YuvSource", "to_planes", "plane_shapes", "split_planes", "planes_psnr", "MATRICES", "RANGES",
           "CHROMAS"]

MATRICES = ("bt709", "bt601")
"""Y'CbCr matrices nvpkit converts with (BT.709: HD video and UVG; BT.601: SD), by ffmpeg's names."""
RANGES = ("tv", "pc")
"""Sample ranges: ``tv`` limited (16-235 luma at 8 bits, UVG's), ``pc`` full."""
CHROMAS = {"420": (2, 2), "422": (2, 1), "444": (1, 1)}
"""Chroma formats and their horizontal and vertical subsampling."""


@dataclass(frozen=True)
class Colour:
    """How a source's Y'CbCr samples map to RGB and how they are laid out."""

    matrix: str = "bt709"
    """'bt709' (HD video, UVG) or 'bt601'."""
    range: str = "tv"
    """'tv' (limited: luma 16-235 at 8 bits, as UVG) or 'pc' (full)."""
    chroma: str = "420"
    """'420', '422' or '444'."""
    bit_depth: int = 8
    """8 or 10 bits per sample."""

    def __post_init__(self) -> None:
        check_choice("Colour", "matrix", self.matrix, MATRICES)
        check_choice("Colour", "range", self.range, RANGES)
        check_choice("Colour", "chroma", self.chroma, CHROMAS)
        check_choice("Colour", "bit_depth", self.bit_depth, (8, 10))

    @property
    def pix_fmt(self) -> str:
        """ffmpeg's name of the planar layout."""
        return f"yuv{self.chroma}p" + ("10le" if self.bit_depth == 10 else "")

    @property
    def peak(self) -> int:
        """The largest sample value (255 at 8 bits): the peak of a plane's PSNR."""
        return 2**self.bit_depth - 1

    def rgb_args(self) -> list[str]:
        """ffmpeg output options that turn these planes into rgb24 with this matrix and range."""
        return ["-vf", f"scale=in_color_matrix={self.matrix}:in_range={self.range}", "-pix_fmt", "rgb24"]

    def describe(self) -> str:
        return f"{self.matrix.upper()} {'limited' if self.range == 'tv' else 'full'} range {self.chroma[0]}:" \
               f"{self.chroma[1]}:{self.chroma[2]} {self.bit_depth}-bit"


def plane_shapes(height: int, width: int, colour: Colour) -> list[tuple[int, int]]:
    """The ``(rows, columns)`` of the Y, U and V planes of a frame."""
    sx, sy = CHROMAS[colour.chroma]
    chroma = (math.ceil(height / sy), math.ceil(width / sx))
    return [(height, width), chroma, chroma]


@dataclass(frozen=True)
class YuvSource:
    """The raw planes a clip's frames were made from, one for one (no crop, no scaling): frame ``i``
    of the clip is frame ``start + i * stride`` of the file."""

    path: str
    width: int
    height: int
    colour: Colour
    start: int = 0
    stride: int = 1

    @property
    def frame_bytes(self) -> int:
        size = 2 if self.colour.bit_depth == 10 else 1
        return sum(h * w for h, w in plane_shapes(self.height, self.width, self.colour)) * size

    def raw(self, i: int) -> bytes:
        """Frame ``i`` of the clip as the file stores it (read with bounded work: one frame)."""
        with open(self.path, "rb") as f:
            f.seek((self.start + i * self.stride) * self.frame_bytes)
            data = f.read(self.frame_bytes)
        if len(data) != self.frame_bytes:
            raise ValueError(f"{self.path!r}: frame {self.start + i * self.stride} is past the end of the file")
        return data

    def planes(self, i: int) -> list[np.ndarray]:
        """Frame ``i`` of the clip as its Y, U and V planes (uint8, or uint16 at 10 bits)."""
        return split_planes(self.raw(i), self.height, self.width, self.colour)


def split_planes(data: bytes, height: int, width: int, colour: Colour) -> list[np.ndarray]:
    """One planar frame's bytes as its Y, U and V planes."""
    dtype = np.dtype("<u2") if colour.bit_depth == 10 else np.dtype(np.uint8)
    planes, offset = [], 0
    for h, w in plane_shapes(height, width, colour):
        planes.append(np.frombuffer(data, dtype, h * w, offset).reshape(h, w))
        offset += h * w * dtype.itemsize
    return planes


def to_planes(rgb: np.ndarray, colour: Colour) -> list[np.ndarray]:
    """A uint8 RGB frame ``[H, W, 3]`` as Y, U and V planes of ``colour``, converted by the bundled
    ffmpeg with that matrix and range (its scale filter, which subsamples chroma for the codecs)."""
    height, width = rgb.shape[:2]
    run = subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24",
         "-s", f"{width}x{height}", "-i", "-", "-vf",
         f"scale=out_color_matrix={colour.matrix}:out_range={colour.range}", "-pix_fmt", colour.pix_fmt,
         "-f", "rawvideo", "-"], input=np.ascontiguousarray(rgb, np.uint8).tobytes(), capture_output=True)
    if run.returncode != 0:
        raise RuntimeError(f"to_planes: ffmpeg failed: {run.stderr.decode(errors='replace').strip()[:300]}")
    return split_planes(run.stdout, height, width, colour)


def planes_psnr(recon: list[np.ndarray], source: list[np.ndarray], peak: int) -> list[float]:
    """PSNR in dB of each plane (Y, U, V) against the source's, peak ``peak`` (a zero MSE counts as 1e-20)."""
    out = []
    for a, b in zip(recon, source, strict=True):
        mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
        out.append(10 * math.log10(peak**2 / max(mse, 1e-20)))
    return out
