"""One self-describing file per compressed model: a JSON manifest plus raw payloads, no pickle.

Layout: ``b"NVPKIT-C"`` (8 bytes), manifest length (uint32 little-endian), the manifest
(UTF-8 JSON: format version, model config, and per part its codec, settings, side
numbers and payload length), then the payloads in manifest order. Reading checks every
field against limits before allocating anything, so a damaged or hostile file fails
with ``ArtifactError`` and nothing else; there are no paths or code in the format.

A decode budget bounds the work a file can ask for. The reader reads the manifest first (the
payloads stay on disk), checks every payload length against what its codec can hold for the
model's shapes (exact for floats, quantization and Tucker; a bound far above any real stream for
the image and video codecs) and the file's size against their sum, then computes what decoding
needs from shapes alone (``decode_bytes``: every part's values as float32, the model that holds
them, the payloads, and the largest part's working memory as its codec states it: codes, padded
frames, factors, ffmpeg processes) and refuses a file that needs more than ``max_bytes`` (default:
half the available host memory) before reading a payload. Decoders then read exactly the frames
and bytes the manifest implies and stop with an error at anything else; an ffmpeg decoder runs
with ``-max_pixels`` from the manifest, a share of the cores and a time limit, and the size its
stream declares is checked before any frame is read.
"""
from __future__ import annotations

import json
import math
import struct
from pathlib import Path

from .._checks import is_int
from .._device import available_host_memory
from .._files import atomic_path, parse_json, refuse_overwrite
from ..config import load_config
from ..memory import EVAL_BYTES, FLOAT32
from ..model import NVP
from ..parts import PARTS, num_values, part_shapes
from .base import Codec, Encoded
from .compressor import CODECS, Compressed

__all__ = ["save_compressed", "load_compressed", "container_bits", "decode_bytes", "default_budget", "ArtifactError"]

MAGIC = b"NVPKIT-C"
VERSION = 1
MAX_MANIFEST = 16 * 2**20
MAX_SIDE = 2**20
MAX_VALUES = 2**33  # decoded values a file may describe (NVP-L has 2.7e8)


class ArtifactError(ValueError):
    """The file is not a readable nvpkit artifact; the message says what is wrong."""


def _manifest(result: Compressed) -> bytes:
    parts = []
    for part in PARTS:
        e = result.encoded[part]
        parts.append({"name": part, "codec": e.codec, "params": e.params, "side": e.side, "header": e.header,
                      "length": len(e.payload)})
    return json.dumps({"format": VERSION, "config": result.config.to_json(), "parts": parts},
                      separators=(",", ":")).encode()


def container_bits(result: Compressed) -> int:
    """Bits an artifact file holds beyond the accounted ones (magic, lengths, JSON syntax, codec
    settings): what ``save_compressed`` would report as overhead, computed without writing."""
    size = len(MAGIC) + 4 + len(_manifest(result)) + sum(len(e.payload) for e in result.encoded.values())
    return 8 * size - result.bits()["total"]


def save_compressed(result: Compressed, path: str | Path, *, overwrite: bool = False) -> dict[str, int]:
    """Write ``result`` to one file (atomically; an existing file only with ``overwrite``).
    Returns ``{"file_bytes", "accounted_bytes", "overhead_bytes"}``: the file is the accounted
    bits plus a small container overhead (magic, lengths, JSON syntax, codec settings)."""
    path = refuse_overwrite(path, overwrite)
    manifest = _manifest(result)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(MAGIC + struct.pack("<I", len(manifest)) + manifest)
            for part in PARTS:
                f.write(result.encoded[part].payload)
    size = path.stat().st_size
    accounted = math.ceil(result.bits()["total"] / 8)
    return {"file_bytes": size, "accounted_bytes": accounted, "overhead_bytes": size - accounted}


def _fail(path: Path, problem: str) -> ArtifactError:
    return ArtifactError(f"{str(path)!r}: not a valid nvpkit artifact: {problem}")


def _read_manifest(path: Path, file, size: int) -> tuple[dict, int]:
    """The manifest and the offset of the first payload."""
    start = file.read(12)
    if len(start) < 12 or start[:8] != MAGIC:
        raise _fail(path, "wrong magic bytes")
    (length,) = struct.unpack("<I", start[8:12])
    if length > MAX_MANIFEST or 12 + length > size:
        raise _fail(path, f"manifest length {length} does not fit the {size}-byte file")
    try:
        manifest = parse_json(file.read(length))
    except ValueError as err:
        raise _fail(path, f"the manifest is {err}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != VERSION:
        raise _fail(path, f"unsupported format {manifest.get('format') if isinstance(manifest, dict) else None!r}")
    if not isinstance(manifest.get("parts"), list) or [p.get("name") if isinstance(p, dict) else None
                                                        for p in manifest["parts"]] != list(PARTS):
        raise _fail(path, f"parts must be {list(PARTS)} in order")
    return manifest, 12 + length


def _codec(path: Path, entry: dict, shapes: list) -> Codec:
    """The part's codec, its side numbers and payload length checked against ``shapes``."""
    codec_cls = CODECS.get(entry["codec"]) if isinstance(entry.get("codec"), str) else None
    if codec_cls is None:
        raise _fail(path, f"part {entry['name']!r} has unknown codec {entry.get('codec')!r}")
    params, side, header = entry.get("params"), entry.get("side"), entry.get("header")
    if not isinstance(params, dict) or not isinstance(side, list) or not isinstance(header, list):
        raise _fail(path, f"part {entry['name']!r}: params, side and header must be an object and lists")
    if len(side) + len(header) > MAX_SIDE:
        raise _fail(path, f"part {entry['name']!r}: {len(side) + len(header)} side values (limit {MAX_SIDE})")
    if not all(_float32(v) for v in side) or not all(is_int(v) and -2**31 <= v < 2**31 for v in header):
        raise _fail(path, f"part {entry['name']!r}: side values must be finite float32 numbers, header values int32")
    try:
        codec = codec_cls(**params)
        codec.check_payload(entry.get("length") if is_int(entry.get("length")) else -1, shapes)
    except (TypeError, ValueError, OverflowError) as err:
        raise _fail(path, f"part {entry['name']!r}: {err}") from None
    return codec


def _float32(value: object) -> bool:
    """A number a float32 side value can hold (an int of 400 digits is not)."""
    return (is_int(value) or isinstance(value, float)) and abs(value) < 3.5e38


def default_budget() -> int:
    """The default decode budget of ``load_compressed``: half the available host memory (1 GiB
    where that cannot be read)."""
    available = available_host_memory()
    return available // 2 if available else 2**30


def decode_bytes(config, codecs: dict[str, Codec], payload_bytes: int = 0) -> dict[str, int]:
    """Host bytes decoding a model of ``config`` stored with ``codecs`` (one per part) needs, from
    shapes alone: per part, its values as float32 and its codec's working memory (``decode_work``);
    ``total``: every part's values and the model built from them, the ``payload_bytes`` held, and
    the largest part's working memory (parts decode one at a time)."""
    shapes = {part: part_shapes(config, part) for part in PARTS}
    values = {part: sum(math.prod(s) for s in shapes[part]) for part in PARTS}
    work = {part: codecs[part].decode_work(shapes[part]) for part in PARTS}
    need = {part: FLOAT32 * values[part] + work[part] for part in PARTS}
    need["total"] = EVAL_BYTES * sum(values.values()) + payload_bytes + max(work.values())
    return need


def load_compressed(path: str | Path, device: str = "cpu", *, max_bytes: int | None = None
                    ) -> tuple[NVP, Compressed]:
    """Read an artifact: the model holding the decoded values (it evaluates exactly like the
    in-memory round trip) and the ``Compressed`` record (sizes, encodings). A file whose decoding
    would need more than ``max_bytes`` (default ``default_budget()``) is refused before anything
    is decoded (see the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"load_compressed: no file {str(path)!r}")
    budget = default_budget() if max_bytes is None else max_bytes
    size = path.stat().st_size
    with open(path, "rb") as file:
        manifest, offset = _read_manifest(path, file, size)
        if not isinstance(manifest.get("config"), dict):  # a string would be read as a path: no paths in a file
            raise _fail(path, "the model config must be a JSON object")
        try:
            config = load_config(manifest["config"])
            if num_values(config) > MAX_VALUES:
                raise ValueError("it describes more values than any real model")
        except (ValueError, TypeError, OverflowError) as err:
            raise _fail(path, f"bad model config ({err})") from None
        entries = manifest["parts"]
        codecs = {e["name"]: _codec(path, e, part_shapes(config, e["name"])) for e in entries}
        payloads = sum(e["length"] for e in entries)
        if offset + payloads < size:
            raise _fail(path, f"{size - offset - payloads:,} trailing bytes after the payloads")
        if offset + payloads > size:
            raise _fail(path, f"the file ends {offset + payloads - size:,} bytes before its payloads do "
                              f"({payloads:,} bytes by the manifest)")
        need = decode_bytes(config, codecs, payloads)
        for part in (*PARTS, "total"):
            if need[part] > budget:
                raise _fail(path, f"decoding {'the whole model' if part == 'total' else f'part {part!r}'} needs "
                                  f"{need[part]:,} bytes, over the decode budget of {budget:,} bytes "
                                  f"(max_bytes; the parts need {', '.join(f'{p} {need[p]:,}' for p in PARTS)})")
        encoded, decoded = {}, {}
        for entry in entries:
            part, codec = entry["name"], codecs[entry["name"]]
            e = Encoded(codec.name, entry["params"], file.read(entry["length"]), [float(v) for v in entry["side"]],
                        list(entry["header"]), codec.descriptor())
            try:
                decoded[part] = codec.decode(e, part_shapes(config, part), device)
            except (ValueError, RuntimeError) as err:
                raise _fail(path, f"part {part!r} does not decode ({err})") from None
            encoded[part] = e
    result = Compressed(config, encoded, decoded)
    return result.to_model(device), result
