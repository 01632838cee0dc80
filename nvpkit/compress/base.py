"""The codec protocol, and the two codecs that need no external encoder: raw floats and quantization.

A codec turns a list of *channels* (tensors: the level planes of a 2D grid, the
per-feature volumes of the sparse grid, the decoder's flat weight vector) into one
``Encoded``: a byte payload plus the few numbers a decoder also needs (``side``:
float32 values such as min/max; ``header``: int32 values such as per-image byte
lengths or Tucker ranks). Every bit of payload, side and header is counted.
"""
from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import ClassVar

import numpy as np
import torch

from .._checks import check_choice, check_int
from ..memory import BIT_CHUNK, FLOAT32, code_bytes
from ..parts import Shape
from ..quantization import dequantize, quantize


@dataclass
class Encoded:
    """What a decoder reads for one part of the model."""

    codec: str
    """Registry name of the codec that wrote it."""
    params: dict
    """The codec's settings (rebuilds the codec; not counted: a decoder does not need them)."""
    payload: bytes
    """Codec bitstreams, concatenated."""
    side: list[float] = field(default_factory=list)
    """float32 side information (quantization ranges, …); 32 bits each."""
    header: list[int] = field(default_factory=list)
    """int32 side information (stream lengths, ranks, …); 32 bits each."""
    descriptor: bytes = b""
    """Which codec wrote the part and the settings its decoder needs (``Codec.descriptor``)."""

    @property
    def payload_bits(self) -> int:
        return 8 * len(self.payload)

    @property
    def side_bits(self) -> int:
        """Bits a decoder reads besides the payload: side numbers, header numbers, descriptor."""
        return 32 * (len(self.side) + len(self.header)) + 8 * len(self.descriptor)


class Codec(ABC):
    """Encodes a list of channels and decodes them back; ``roundtrip`` does both."""

    name: ClassVar[str]
    """Registry name (``"jpeg"``, ``"hevc"``, ``"tucker"``, …)."""
    codec_id: ClassVar[int]
    """The codec's number in a descriptor (one byte)."""
    dims: ClassVar[tuple[int, ...]] = (1, 2, 3)
    """Channel ranks the codec accepts."""

    @abstractmethod
    def encode(self, channels: list[torch.Tensor]) -> Encoded:
        """Channels (float tensors, any device) to an ``Encoded``."""

    @abstractmethod
    def decode(self, encoded: Encoded, shapes: list[Shape], device: torch.device | str = "cpu") -> list[torch.Tensor]:
        """An ``Encoded`` back to float32 channels of the given shapes."""

    def roundtrip(self, channels: list[torch.Tensor]) -> tuple[list[torch.Tensor], Encoded]:
        """Encode, then decode what a decoder would read: the decoded channels and the encoding."""
        for c in channels:
            if c.dim() not in self.dims:
                raise ValueError(f"{self.name}: channels must have {' or '.join(map(str, self.dims))} dims, "
                                 f"got shape {tuple(c.shape)}")
        encoded = self.encode(channels)
        device = channels[0].device if channels else "cpu"
        return self.decode(encoded, [tuple(c.shape) for c in channels], device), encoded

    def shape_bits(self, shapes: list[Shape]) -> int:
        """Exact encoded size in bits from shapes alone, for codecs whose size does not depend on
        the content; content-dependent codecs raise ``TypeError``."""
        raise TypeError(f"{self.name}: the encoded size depends on the content; use roundtrip()")

    @abstractmethod
    def payload_range(self, shapes: list[Shape]) -> tuple[int, int]:
        """The shortest and longest payload (bytes) a decoder of channels of ``shapes`` accepts: the
        exact length for codecs whose size does not depend on the content, else a bound far above
        any real encoding. A reader refuses anything outside it before reading the payload."""

    def check_payload(self, length: int, shapes: list[Shape]) -> None:
        """``ValueError`` unless a payload of ``length`` bytes is within ``payload_range(shapes)``."""
        lo, hi = self.payload_range(shapes)
        if not lo <= length <= hi:
            allowed = f"exactly {lo:,}" if lo == hi else f"{lo:,} to {hi:,}"
            raise ValueError(f"{self.name}: the payload has {length:,} bytes; {len(shapes)} channels of "
                             f"{sum(math.prod(s) for s in shapes):,} values take {allowed}")

    @abstractmethod
    def decode_work(self, shapes: list[Shape]) -> int:
        """Host bytes decoding channels of ``shapes`` needs at its peak beyond the float32 values it
        returns (codes, padded frames, factors, buffers, decoder processes), from shapes alone."""

    def params(self) -> dict:
        return asdict(self) if hasattr(self, "__dataclass_fields__") else {}

    def decoder_settings(self) -> tuple[int, ...]:
        """The settings a decoder needs besides the payload and side numbers, one byte each (bit
        depth, float type, ...); encoder-only settings (crf, preset, ...) are not among them."""
        return ()

    def descriptor(self) -> bytes:
        """The codec's identity and its decoder settings, as a decoder reads them: one byte each."""
        return bytes([self.codec_id, *self.decoder_settings()])


# -- raw floats --------------------------------------------------------------------------------------

_FLOATS = ("float16", "float32")


@dataclass
class Float(Codec):
    """Channels stored as raw little-endian floats (``float32`` or ``float16``)."""

    dtype: str = "float32"
    name: ClassVar[str] = "float"
    codec_id: ClassVar[int] = 0

    def __post_init__(self) -> None:
        check_choice("float", "dtype", self.dtype, _FLOATS)

    @property
    def _dtype(self) -> np.dtype:
        return np.dtype(self.dtype).newbyteorder("<")

    def encode(self, channels: list[torch.Tensor]) -> Encoded:
        data = b"".join(c.detach().float().cpu().numpy().astype(self._dtype).tobytes() for c in channels)
        return Encoded(self.name, self.params(), data, descriptor=self.descriptor())

    def decoder_settings(self) -> tuple[int, ...]:
        return (_FLOATS.index(self.dtype),)

    def decode(self, encoded: Encoded, shapes: list[Shape], device: torch.device | str = "cpu") -> list[torch.Tensor]:
        self.check_payload(len(encoded.payload), shapes)
        values = np.frombuffer(encoded.payload, dtype=self._dtype).astype(np.float32)
        return _split(torch.from_numpy(values), shapes, device, self.name)

    def shape_bits(self, shapes: list[Shape]) -> int:
        return 8 * self.payload_range(shapes)[0]

    def payload_range(self, shapes: list[Shape]) -> tuple[int, int]:
        exact = sum(math.prod(s) for s in shapes) * self._dtype.itemsize
        return exact, exact

    def decode_work(self, shapes: list[Shape]) -> int:
        return 0  # the float32 copy of the payload is the output


def _split(flat: torch.Tensor, shapes: list[Shape], device: torch.device | str, codec: str) -> list[torch.Tensor]:
    sizes = [math.prod(s) for s in shapes]
    if flat.numel() != sum(sizes):
        raise ValueError(f"{codec}: payload holds {flat.numel()} values, the shapes need {sum(sizes)}")
    return [part.reshape(shape).to(device) for part, shape in zip(flat.split(sizes), shapes)]


# -- min-max uniform quantization ----------------------------------------------------------------------

def packed_bytes(count: int, bits: int) -> int:
    """Bytes of ``count`` codes of ``bits`` bits packed by ``pack_bits``."""
    return math.ceil(count * bits / 8)


def pack_bits(codes: np.ndarray, bits: int) -> bytes:
    """Pack unsigned codes into a big-endian bit stream of ``bits`` bits per value, ``BIT_CHUNK``
    values at a time (the bit planes of one chunk are the only temporaries)."""
    if bits in (8, 16):
        return codes.astype(">u1" if bits == 8 else ">u2").tobytes()
    shifts = np.arange(bits - 1, -1, -1, dtype=np.uint32)
    chunks = []
    for start in range(0, len(codes), BIT_CHUNK):
        planes = (codes[start:start + BIT_CHUNK].astype(np.uint32)[:, None] >> shifts) & 1  # [n, bits]
        chunks.append(np.packbits(planes.astype(np.uint8).reshape(-1)).tobytes())
    return b"".join(chunks)


def unpack_bits(data: bytes, bits: int, count: int) -> np.ndarray:
    """Inverse of ``pack_bits``: ``count`` codes, uint8 up to 8 bits, else int32 (``code_bytes``),
    unpacked ``BIT_CHUNK`` at a time. ``data`` must hold exactly ``packed_bytes(count, bits)`` bytes."""
    if len(data) != packed_bytes(count, bits):
        raise ValueError(f"unpack_bits: {len(data):,} bytes for {count:,} codes of {bits} bits, which take "
                         f"{packed_bytes(count, bits):,}")
    if bits == 8:
        return np.frombuffer(data, np.uint8).copy()
    if bits == 16:
        return np.frombuffer(data, ">u2").astype(np.int32)
    raw = np.frombuffer(data, np.uint8)
    out = np.empty(count, np.uint8 if code_bytes(bits) == 1 else np.int32)
    shifts = np.arange(bits - 1, -1, -1).astype(out.dtype)
    for start in range(0, count, BIT_CHUNK):  # a chunk starts on a byte: BIT_CHUNK is a multiple of 8
        stop = min(count, start + BIT_CHUNK)
        bitplanes = np.unpackbits(raw[start * bits // 8:packed_bytes(stop, bits)])[:(stop - start) * bits]
        out[start:stop] = (bitplanes.reshape(-1, bits).astype(out.dtype) << shifts).sum(1, dtype=out.dtype)
    return out


@dataclass
class Quantize(Codec):
    """Min-max uniform quantization of each channel to ``bits`` (8 as published), bit-packed;
    each channel's min and max are side information."""

    bits: int = 8
    name: ClassVar[str] = "quantize"
    codec_id: ClassVar[int] = 1

    def __post_init__(self) -> None:
        check_int("quantize", "bits", self.bits, 1, 16)

    def encode(self, channels: list[torch.Tensor]) -> Encoded:
        side, codes = [], []
        for c in channels:
            q, lo, hi = quantize(c, self.bits)
            side += [lo.item(), hi.item()]
            codes.append(q.flatten().cpu().numpy())
        payload = pack_bits(np.concatenate(codes) if codes else np.zeros(0, np.int64), self.bits)
        return Encoded(self.name, self.params(), payload, side, descriptor=self.descriptor())

    def decoder_settings(self) -> tuple[int, ...]:
        return (self.bits,)

    def decode(self, encoded: Encoded, shapes: list[Shape], device: torch.device | str = "cpu") -> list[torch.Tensor]:
        count = sum(math.prod(s) for s in shapes)
        if len(encoded.side) != 2 * len(shapes):
            raise ValueError(f"quantize: {len(encoded.side)} side values for {len(shapes)} channels (two each)")
        self.check_payload(len(encoded.payload), shapes)
        codes = torch.from_numpy(unpack_bits(encoded.payload, self.bits, count))
        out = []
        for i, part in enumerate(_split(codes, shapes, "cpu", self.name)):
            out.append(dequantize(part, encoded.side[2 * i], encoded.side[2 * i + 1], self.bits).to(device))
        return out

    def shape_bits(self, shapes: list[Shape]) -> int:
        return 8 * self.payload_range(shapes)[0] + 64 * len(shapes)

    def payload_range(self, shapes: list[Shape]) -> tuple[int, int]:
        exact = packed_bytes(sum(math.prod(s) for s in shapes), self.bits)
        return exact, exact

    def decode_work(self, shapes: list[Shape]) -> int:
        count, largest = sum(math.prod(s) for s in shapes), max((math.prod(s) for s in shapes), default=0)
        chunk = BIT_CHUNK * self.bits * (1 + 2 * code_bytes(self.bits))  # one chunk's bit planes and shifted copy
        wide = 2 * FLOAT32 * largest if self.bits > 12 else 0  # dequantized in float64, one channel at a time
        return code_bytes(self.bits) * count + chunk + wide
