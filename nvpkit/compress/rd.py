"""Rate-distortion tools: sweeps over codec settings, target-rate search, and the plain-codec anchor.

Every point is measured the same way, a model's and the plain codec's alike: bits over T·H·W,
and the reconstruction's uint8 frames scored by ``metrics.FrameScores`` (RGB and YUV PSNR, MS-SSIM;
for models also the float PSNR of the unrounded render, the published evaluation).
"""
from __future__ import annotations

import os
import re
import shlex
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import metrics
from .._progress import progress_bar
from .._checks import check_choice, check_int
from .._files import write_json
from ..colour import Colour, plane_shapes, split_planes
from ..data import Video
from ..model import NVP
from ..rendering import evaluate
from .artifact import container_bits
from .codecs import PRESETS, VVC_PRESETS, ffmpeg_chunks, require_encoder, run_ffmpeg
from .compressor import Compressor

__all__ = ["rd_sweep", "find_setting", "video_anchor", "anchor_args", "anchor_encode", "anchor_decode", "anchor_label",
           "ANCHORS", "TUNES", "Anchor", "check_anchor", "write_rd", "RD_METRICS"]


def _point(model: NVP, video: Video, compressor: Compressor, ms_ssim: bool) -> dict[str, Any]:
    result = compressor.roundtrip(model)
    device = next(model.parameters()).device
    measured = evaluate(result.to_model(device), video, ms_ssim=ms_ssim, progress=False)
    return {"bits": result.bits()["total"], "bpp": result.bpp(video), **_scores(measured.to_dict()),
            "seconds": result.seconds, "parts": {**result.bits(), "container": container_bits(result)}}


def _scores(measured: dict[str, Any]) -> dict[str, Any]:
    """The means of an evaluation (an RD row keeps no per-frame lists)."""
    return {k: measured[k] for k in ("psnr", "psnr_float", "yuv_psnr", "yuv_psnr_planes", "yuv_psnr_definition",
                                     "yuv_psnr_rgb", "ms_ssim")}


def rd_sweep(model: NVP, video: Video, compressors: Mapping[str, Compressor], *, ms_ssim: bool = False,
             progress: bool = True) -> list[dict[str, Any]]:
    """Compress ``model`` with each labelled compressor, decode once, evaluate every frame.
    Returns one row per setting: ``label, bits, bpp, psnr, psnr_float, yuv_psnr, yuv_psnr_planes,
    ms_ssim, seconds, parts`` (bits by part, with the artifact's ``container`` overhead)."""
    rows = []
    for label, compressor in progress_bar(compressors.items(), desc="rd sweep", disable=not progress):
        rows.append({"label": label, **_point(model, video, compressor, ms_ssim)})
    return rows


def find_setting(model: NVP, video: Video, build: Callable[[int], Compressor], values: Sequence[int], *,
                 target_bpp: float | None = None, target_psnr: float | None = None,
                 progress: bool = True) -> dict[str, Any]:
    """The value in ``values`` (e.g. ``range(0, 52)`` of crf) whose compressor lands closest to
    ``target_bpp`` (or ``target_psnr``), by bisection: ``values`` must be sorted so that the rate
    and quality fall as the value grows, as crf and qscale do. Returns the closest row, with
    ``value`` and every ``tried`` row."""
    if (target_bpp is None) == (target_psnr is None):
        raise ValueError("find_setting: give exactly one of target_bpp or target_psnr")
    values = list(values)
    if not values:
        raise ValueError("find_setting: values is empty")
    key, target = ("bpp", target_bpp) if target_bpp is not None else ("psnr", target_psnr)
    tried: dict[int, dict[str, Any]] = {}
    bar = progress_bar(desc=f"search {key}={target}", disable=not progress)

    def at(i: int) -> dict[str, Any]:
        if i not in tried:
            tried[i] = {"value": values[i], **_point(model, video, build(values[i]), False)}
            bar.update(1)
        return tried[i]

    lo, hi = 0, len(values) - 1
    while hi - lo > 1:  # invariant: the metric falls with the index
        mid = (lo + hi) // 2
        if at(mid)[key] > target:
            lo = mid
        else:
            hi = mid
    bar.close()
    best = min((at(lo), at(hi)), key=lambda row: abs(row[key] - target))
    return {**best, "tried": [tried[i] for i in sorted(tried)]}


@dataclass(frozen=True)
class Anchor:
    """How a plain codec encodes the clip itself: the ffmpeg encoder and its quality option."""

    encoder: str
    """The ffmpeg encoder."""
    label: str
    """Its name in tables and figures."""
    quality: str
    """The option that takes the ``crf`` value (constant quality, or constant QP for vvenc)."""
    quality_max: int
    presets: tuple[str, ...]
    default_preset: str
    pix_fmts: dict[str, str]
    """Pixel format by chroma format ("420", "444")."""
    format: str
    """The raw bitstream muxer (no container)."""
    psnr: tuple[str, ...]
    """The options that tune the encoder for PSNR (x265 and x264 document ``--tune psnr`` for PSNR
    measurements; vvenc's perceptual QP adaptation off; SVT-AV1's PSNR tuning)."""
    args: tuple[str, ...] = ()


ANCHORS = {
    "hevc": Anchor("libx265", "x265", "-crf", 51, tuple(PRESETS), "slow", {"420": "yuv420p", "444": "yuv444p"},
                   "hevc", ("-tune", "psnr"), ("-x265-params", "log-level=error")),
    "h264": Anchor("libx264", "x264", "-crf", 51, tuple(PRESETS), "slow", {"420": "yuv420p", "444": "yuv444p"},
                   "h264", ("-tune", "psnr")),
    "vvc": Anchor("libvvenc", "vvenc", "-qp", 63, VVC_PRESETS, "medium", {"420": "yuv420p10le"}, "vvc",
                  ("-qpa", "0")),
    "svtav1": Anchor("libsvtav1", "SVT-AV1", "-crf", 63, tuple(str(p) for p in range(14)), "8", {"420": "yuv420p"},
                     "obu", ("-svtav1-params", "tune=1")),
}
"""The anchor codecs by name: x265 (the published setting's codec), x264, vvenc (VVC), SVT-AV1."""
TUNES = ("psnr", "none")
"""What an anchor encoder is tuned for: PSNR (the metric scored; the default), or its own default."""



def planar(video: Video, chroma: str) -> bool:
    """Whether an anchor at ``chroma`` encodes the clip's source planes themselves, as a codec
    evaluation does (a raw .yuv kept one for one, at its own chroma format), not its RGB frames."""
    return video.yuv is not None and video.yuv.colour.chroma == chroma


def anchor_args(video: Video, codec: str, crf: int, preset: str, chroma: str, tune: str = "psnr") -> list[str]:
    """The ffmpeg arguments that encode the clip with an anchor codec, its frames on stdin (the
    source planes where ``planar``, else rgb24): what ``anchor_encode`` runs, and what an anchor row
    records as its ``command``."""
    spec = ANCHORS[codec]
    pix_fmt = video.yuv.colour.pix_fmt if planar(video, chroma) else "rgb24"
    return ["-f", "rawvideo", "-pix_fmt", pix_fmt, "-s", f"{video.width}x{video.height}", "-framerate",
            f"{video.fps:g}", "-i", "-", "-c:v", spec.encoder, *spec.args, *(spec.psnr if tune == "psnr" else ()),
            "-preset", preset, spec.quality, str(crf), "-pix_fmt", spec.pix_fmts[chroma], "-f", spec.format, "-"]


def anchor_encode(video: Video, codec: str, crf: int, preset: str, chroma: str, tune: str = "psnr") -> bytes:
    """The clip through an anchor codec at ``crf``: the raw bitstream, frames streamed in."""
    frames = ((video.yuv.raw(i) for i in range(video.num_frames)) if planar(video, chroma)
              else (frame.tobytes() for frame in video.frames))
    return run_ffmpeg(anchor_args(video, codec, crf, preset, chroma, tune), frames, f"{codec} anchor")


def anchor_decode(stream: bytes, video: Video, codec: str, chroma: str = "420") -> Iterator[torch.Tensor]:
    """The decoded frames of an anchor bitstream, uint8 ``[H, W, 3]`` RGB, one at a time; a
    ``planar`` anchor's converted with the source's own colour (as the clip's frames were made),
    another's back with the conversion that made its input."""
    h, w = video.height, video.width
    to_rgb = video.yuv.colour.rgb_args() if planar(video, chroma) else ["-pix_fmt", "rgb24"]
    for raw in ffmpeg_chunks(["-f", ANCHORS[codec].format, "-i", "-", *to_rgb, "-f", "rawvideo", "-"],
                             [stream], h * w * 3, f"{codec} anchor decode"):
        yield torch.frombuffer(bytearray(raw), dtype=torch.uint8).view(h, w, 3)


def anchor_planes(stream: bytes, video: Video, codec: str, chroma: str) -> Iterator[list[np.ndarray]]:
    """The decoded Y, U, V planes of a ``planar`` anchor bitstream at the source's bit depth, one
    frame at a time (a 10-bit stream of an 8-bit source, vvenc's, rounded to 8 bits)."""
    colour, spec = video.yuv.colour, ANCHORS[codec]
    coded = Colour(colour.matrix, colour.range, colour.chroma, 10 if spec.pix_fmts[chroma].endswith("10le") else 8)
    h, w = video.height, video.width
    frame_bytes = sum(a * b for a, b in plane_shapes(h, w, coded)) * (2 if coded.bit_depth == 10 else 1)
    shift = coded.bit_depth - colour.bit_depth
    for raw in ffmpeg_chunks(["-f", spec.format, "-i", "-", "-pix_fmt", coded.pix_fmt, "-f", "rawvideo", "-"],
                             [stream], frame_bytes, f"{codec} anchor decode"):
        planes = split_planes(raw, h, w, coded)
        if shift > 0:  # rounded back to the source's depth
            planes = [np.minimum((p.astype(np.uint16) + (1 << (shift - 1))) >> shift, colour.peak).astype(np.uint8)
                      for p in planes]
        yield planes


def check_anchor(codec: str, preset: str | None, chroma: str, tune: str = "psnr") -> str:
    """Validate an anchor's settings (``ValueError`` naming the one that is wrong); returns the preset
    (the codec's default for None)."""
    check_choice("video_anchor", "codec", codec, ANCHORS)
    spec = ANCHORS[codec]
    preset = spec.default_preset if preset is None else preset
    check_choice("video_anchor", "preset", preset, spec.presets)
    check_choice("video_anchor", "chroma", chroma, spec.pix_fmts)
    check_choice("video_anchor", "tune", tune, TUNES)
    return preset


def video_anchor(video: Video, codec: str = "hevc", crfs: Sequence[int] = (18, 23, 28, 33, 38), *,
                 preset: str | None = None, chroma: str = "420", tune: str = "psnr", ms_ssim: bool = False,
                 progress: bool = True) -> list[dict[str, Any]]:
    """The clip itself through a plain codec (``ANCHORS``: x265, x264, vvenc, SVT-AV1) at each crf,
    in memory, as the RD anchor of video coding: ``preset`` (default: the codec's, slow for x265, the
    published HEVC setting of the grids; use the experiment codec's), ``chroma`` "420" (as codecs
    are used) or "444" (an RGB-fair comparison, x265 and x264), ``tune`` "psnr" (the encoder tuned
    for the metric scored, as x265's documentation asks for PSNR measurements) or "none"; raw
    bitstream, every bit counted. Decoded frames are scored by the function that scores the models.
    Each row records the ``command``: the ffmpeg arguments that encoded it."""
    preset = check_anchor(codec, preset, chroma, tune)
    spec = ANCHORS[codec]
    for crf in crfs:
        check_int("video_anchor", "crf", crf, 0, spec.quality_max)
    if chroma == "420" and (video.height % 2 or video.width % 2):
        raise ValueError(f"video_anchor: 4:2:0 needs even frame sizes, got {video.width}x{video.height}; crop the "
                         "video or use chroma='444'")
    require_encoder(f"{codec} anchor", spec.encoder)
    ms_ssim = ms_ssim and min(video.height, video.width) >= metrics.MS_SSIM_MIN_SIDE
    rows = []
    for crf in progress_bar(crfs, desc=f"{codec} anchor", disable=not progress):
        started = time.perf_counter()
        stream = anchor_encode(video, codec, crf, preset, chroma, tune)
        source = video.yuv if planar(video, chroma) else None
        scores = metrics.FrameScores(ms_ssim=ms_ssim, source=source)
        planes = anchor_planes(stream, video, codec, chroma) if source is not None else None
        for i, frame in enumerate(anchor_decode(stream, video, codec, chroma)):
            scores.add(frame, torch.from_numpy(video.frames[i]), planes=next(planes) if planes else None)
        rows.append({"label": f"{codec} crf {crf}", "value": crf, "bits": 8 * len(stream),
                     "bpp": 8 * len(stream) / video.num_pixels, **_scores(scores.summary()),
                     "seconds": time.perf_counter() - started,
                     "command": shlex.join(["ffmpeg", *anchor_args(video, codec, crf, preset, chroma, tune)])})
    return rows


RD_METRICS = {"psnr": "psnr", "psnr_float": "psnr-float", "yuv_psnr": "psnr-yuv", "ms_ssim": "ms-ssim"}
"""An RD row's metrics by the names CompressAI's results files give them."""


def write_rd(curves: Mapping[str, Sequence[Mapping[str, Any]]], folder: str | os.PathLike,
             description: str = "") -> list[Path]:
    """Each curve (rows with ``bpp`` and the ``RD_METRICS``) as a results file in CompressAI's format,
    ``folder/rd/<curve>.json``: ``name``, ``description`` and ``results`` with a list per metric
    (a metric missing at any point is left out), ``bpp`` first; ``python -m compressai.utils.plot -f
    folder/rd/*.json`` draws them beside CompressAI's own. Written atomically; returns the paths."""
    paths = []
    for name, rows in curves.items():
        results = {"bpp": [r["bpp"] for r in rows]}
        for key, metric in RD_METRICS.items():
            values = [r.get(key) for r in rows]
            if values and all(isinstance(v, (int, float)) for v in values):
                results[metric] = values
        slug = re.sub(r"[^A-Za-z0-9.+-]+", "-", name).strip("-").lower() or "curve"
        paths.append(write_json(Path(folder) / "rd" / f"{slug}.json",
                                {"name": name, "description": description, "results": results}))
    return paths


def anchor_label(codec: str, preset: str, chroma: str, tune: str = "none") -> str:
    """How an anchor curve is named in tables and figures: the encoder and its settings (results
    written before anchors were tuned record no ``tune``: untuned)."""
    tuned = ", tuned for PSNR" if tune == "psnr" else ""
    return f"{ANCHORS[codec].label} on the video ({preset}, {chroma[0]}:{chroma[1]}:{chroma[2]}{tuned})"
