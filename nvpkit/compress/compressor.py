"""Whole-model compression: one codec per part, exact bit accounting, decoded tensors back.

A model has five parts (``nvpkit.parts``): the 2D grids ``xy``, ``xt``, ``yt`` as planes, the
sparse grid as volumes, the decoder MLP as one vector. ``Compressor`` names the codec for each; ``Compressor.roundtrip(model)`` returns a ``Compressed`` holding every
encoding, the decoded tensors and the size breakdown. ``make_compressor`` builds one from
a preset name and plain settings (what a papermill parameters cell holds).
"""
from __future__ import annotations

import inspect
import json
import time
from dataclasses import dataclass, field, fields
from typing import Any

import torch

from ..config import NVPConfig
from ..data import Video
from ..model import NVP
from ..parts import GRIDS_2D, PARTS, channels, check_parts, load_channels, part_shapes
from .base import Codec, Encoded, Float, Quantize
from .codecs import AV1, H264, HEVC, JPEG, PNG, SVTAV1, VVC, WebP
from .tucker import Tucker

__all__ = ["Compressor", "Compressed", "CODECS", "COMPRESSORS", "SETTING_HELP", "make_compressor", "preset_settings",
           "config_bits"]

CODECS: dict[str, type[Codec]] = {c.name: c for c in (Float, Quantize, JPEG, WebP, PNG, HEVC, H264, AV1, VVC, SVTAV1,
                                                        Tucker)}
"""Codec classes by registry name."""

def config_bits(config: NVPConfig) -> int:
    """Bits of the model description a decoder needs (the compact JSON config stored with it)."""
    return 8 * len(json.dumps(config.to_json(), separators=(",", ":")).encode())


@dataclass
class Compressed:
    """A compressed model: every part's encoding, the decoded tensors, the exact size."""

    config: NVPConfig
    encoded: dict[str, Encoded]
    decoded: dict[str, list[torch.Tensor]]
    seconds: float = 0.0

    def bits(self) -> dict[str, int]:
        """Bits per part (codec payloads of ``xy``, ``xt``, ``yt``, ``sparse``, ``decoder``), ``side``
        (quantization ranges, stream lengths, ranks, each part's codec and decoder settings, and the
        model config) and ``total``: everything a decoder reads, bit for bit."""
        out = {part: self.encoded[part].payload_bits for part in PARTS}
        out["side"] = sum(e.side_bits for e in self.encoded.values()) + config_bits(self.config)
        out["total"] = sum(out.values())
        return out

    def bpp(self, video: Video | tuple[int, int, int]) -> float:
        """Total bits per pixel of ``video`` (or of a ``(T, H, W)`` shape): bits / (T·H·W)."""
        t, h, w = (video.num_frames, video.height, video.width) if isinstance(video, Video) else video
        return self.bits()["total"] / (t * h * w)

    def load_into(self, model: NVP, parts: tuple[str, ...] = PARTS) -> NVP:
        """Copy the decoded values of ``parts`` (default all) into ``model``'s parameters in place
        (the parameters stay the same objects, so an optimizer keeps tracking them)."""
        if model.config != self.config:
            raise ValueError("load_into: the model's config differs from the compressed one")
        for part in check_parts("load_into", parts):
            load_channels(model, part, self.decoded[part])
        return model

    def to_model(self, device: torch.device | str = "cpu") -> NVP:
        """A new model holding the decoded values."""
        return self.load_into(NVP(self.config).to(device))

    def summary(self, video: Video | tuple[int, int, int] | None = None) -> str:
        bits = self.bits()
        parts = ", ".join(f"{k} {v / 8 / 1024:.1f} KiB" for k, v in bits.items() if k != "total")
        rate = f", {self.bpp(video):.4f} bpp" if video is not None else ""
        return f"{bits['total'] / 8 / 1024:.1f} KiB{rate} ({parts})"

    def __repr__(self) -> str:
        codecs = {part: e.codec for part, e in self.encoded.items()}
        return f"Compressed({codecs}, {self.summary()}, {self.seconds:.1f} s)"


def _default_planes() -> dict[str, Codec]:
    return {g: Float() for g in GRIDS_2D}


@dataclass
class Compressor:
    """How each part of a model is stored. ``planes`` is one codec for all three 2D grids or a
    dict by grid name (``{"xy": JPEG(2), "xt": JPEG(3), "yt": JPEG(3)}``)."""

    planes: Codec | dict[str, Codec] = field(default_factory=_default_planes)
    sparse: Codec = field(default_factory=Float)
    decoder: Codec = field(default_factory=Float)

    def __post_init__(self) -> None:
        if not isinstance(self.planes, dict):
            self.planes = {g: self.planes for g in GRIDS_2D}
        if sorted(self.planes) != sorted(GRIDS_2D):
            raise ValueError(f"Compressor: planes must name each of {GRIDS_2D}, got {sorted(self.planes)}")
        if not isinstance(self.decoder, (Float, Quantize)):
            raise ValueError(f"Compressor: the decoder is stored as floats or quantized, got {self.decoder.name}")

    def codec(self, part: str) -> Codec:
        return self.planes[part] if part in GRIDS_2D else getattr(self, part)

    def roundtrip(self, model: NVP) -> Compressed:
        """Encode every part of ``model`` and decode it as a decoder would."""
        started = time.perf_counter()
        encoded, decoded = {}, {}
        for part in PARTS:
            decoded[part], encoded[part] = self.codec(part).roundtrip(channels(model, part))
        return Compressed(model.config, encoded, decoded, time.perf_counter() - started)

    def shape_bits(self, config: NVPConfig) -> dict[str, int]:
        """The size ``roundtrip`` would report, from shapes alone; only for codecs whose size does not
        depend on the content (floats, quantization, Tucker), else ``TypeError``."""
        out = {part: self.codec(part).shape_bits(part_shapes(config, part)) for part in PARTS}
        descriptors = sum(8 * len(self.codec(part).descriptor()) for part in PARTS)
        out["total"] = sum(out.values()) + config_bits(config) + descriptors
        return out

    def describe(self) -> dict[str, Any]:
        return {part: {"codec": self.codec(part).name, **self.codec(part).params()} for part in PARTS}


# -- presets for notebooks: names and plain settings -------------------------------------------------------

def _video_preset(cls: type[Codec]):
    def build(qscale: tuple[int, int, int] = (2, 3, 3), decoder_dtype: str = "float32", **video: Any) -> Compressor:
        if not (isinstance(qscale, (list, tuple)) and len(qscale) == 3):
            raise ValueError(f"qscale={qscale!r} is not allowed; give three ints (xy, xt, yt), e.g. (2, 3, 3)")
        planes = {g: JPEG(qscale=q) for g, q in zip(GRIDS_2D, qscale)}
        return Compressor(planes, cls(**video), Float(decoder_dtype))
    build.settings = ("qscale", "decoder_dtype", *(f.name for f in fields(cls)))
    return build


def _tucker(ranks: tuple[int, ...] = (480, 240, 240), storage: str = "float32", init: str = "svd",
            n_iter: int = 100, plane_ranks: tuple[int, int] | None = None,
            decoder_dtype: str = "float32") -> Compressor:
    planes = Float() if plane_ranks is None else Tucker(tuple(plane_ranks), init, n_iter, storage, clip=True)
    return Compressor(planes, Tucker(ranks, init, n_iter, storage), Float(decoder_dtype))


def _quantize(bits: int = 8, decoder_dtype: str = "float32") -> Compressor:
    return Compressor(Quantize(bits), Quantize(bits), Float(decoder_dtype))


def _float(dtype: str = "float32") -> Compressor:
    return Compressor(Float(dtype), Float(dtype), Float(dtype))


COMPRESSORS = {
    "hevc": _video_preset(HEVC),  # published: JPEG qscale (2, 3, 3) + HEVC crf 21, slow, 25 fps, bframes=0
    "h264": _video_preset(H264),
    "av1": _video_preset(AV1),
    "vvc": _video_preset(VVC),  # VVC (vvenc) for the sparse grid, JPEG for the planes
    "svtav1": _video_preset(SVTAV1),
    "tucker": _tucker,  # published: ranks (480, 240, 240) on the sparse grid, float32; plane_ranks: 2D grids too
    "quantize": _quantize,  # published 8-bit evaluation
    "float": _float,  # the uncompressed model
}
"""Compressor presets by name; each takes plain keyword settings."""


SETTING_HELP = {
    "qscale": "JPEG -qscale:v of the xy, xt and yt grids, e.g. 2,3,3 (lower: more bits)",
    "decoder_dtype": "storage of the decoder MLP: float32 or float16",
    "crf": "constant rate factor of the sparse grid's video codec (lower: more bits)",
    "preset": "encoder preset of the sparse grid's video codec (x265: ultrafast ... veryslow)",
    "cpu_used": "libaom's speed setting of the sparse grid's AV1 encoder (higher: faster)",
    "framerate": "frame rate written in the sparse grid's video stream (the rate control reads it)",
    "x265_params": "extra x265 options, e.g. bframes=0 (checked before training)",
    "bit_depth": "bit depth of the sparse grid's video stream: 8 or 10",
    "ranks": "Tucker ranks (t, x, y) of the sparse grid: ints, or fractions of its modes, e.g. 0.8,0.8,0.8",
    "storage": "storage of the Tucker core and factors: float32, float16 or uint8",
    "init": "initialisation of HOOI: svd or random",
    "n_iter": "HOOI iterations",
    "plane_ranks": "Tucker ranks of the 2D grids too (empty: stored as float)",
    "bits": "bits per value of the uniform quantizer",
    "dtype": "storage of every value: float32 or float16",
}
"""What each keyword setting of the compressor presets means (the command line's help)."""


def preset_settings(name: str) -> tuple[str, ...]:
    """The keyword settings a compressor preset takes, e.g. ``crf``, ``qscale``, ``preset`` for ``"hevc"``."""
    build = COMPRESSORS[name]
    return tuple(getattr(build, "settings", None) or inspect.signature(build).parameters)


def make_compressor(name: str, **settings: Any) -> Compressor:
    """A preset compressor by name with overrides, e.g. ``make_compressor("hevc", crf=25)`` or
    ``make_compressor("tucker", ranks=(240, 120, 120))``."""
    if name not in COMPRESSORS:
        raise ValueError(f"make_compressor: unknown compressor {name!r}; use one of {sorted(COMPRESSORS)}")
    try:
        return COMPRESSORS[name](**settings)
    except TypeError as err:
        raise ValueError(f"make_compressor({name!r}): {err}") from None
