"""Fuzz every reader of outside input with mutated valid inputs, and count what happens.

    python benchmarks/fuzz.py                           # 10,000 cases per reader
    python benchmarks/fuzz.py --cases 300 --readers artifact,params --seed 1

Readers and what each may raise (``ALLOWED``; anything else is a finding):
  artifact    ``load_compressed`` of mutated artifacts (bytes flipped, cut, inserted; manifest fields
              replaced by extreme values, integers of hundreds and thousands of digits, nesting
              100,000 deep; a payload grown or shrunk with its length field), with a 256 MiB decode
              budget: ``ArtifactError``;
  config      ``load_config`` of mutated published-schema configs, as dicts and as files: ``ValueError``;
  checkpoint  ``Trainer.load`` of mutated checkpoints (bytes, and saved states with fields replaced):
              ``ValueError``;
  yuv         ``load_video`` of raw .yuv files with random UVG-style names, sizes and arguments:
              ``ValueError``;
  params      ``GuideConfig.from_params`` / ``InitConfig.from_params`` of random parameter strings,
              as papermill passes them: ``ValueError``;
  results     ``Results.load`` and ``collect`` of mutated results.json and sweep.json files:
              ``ValueError`` from ``Results.load``; ``collect`` leaves an unreadable job out with a
              warning and returns the others.
Each case is deterministic in ``--seed``. The report gives, per reader, the count of each outcome
(``ok`` or the exception type), the seconds, and the growth of the process's peak RSS over the
reader's run (a bound on any one case's peak memory). Findings are printed with their case; the
exit code is 1 when there is one. ``tests/test_fuzz.py`` runs a few hundred of the same cases.
"""
from __future__ import annotations

import argparse
import collections
import contextlib
import io
import json
import random
import resource
import struct
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

import nvpkit
from nvpkit.compress import ArtifactError

ALLOWED: dict[str, tuple[type[BaseException], ...]] = {
    "artifact": (ArtifactError,), "config": (ValueError,), "checkpoint": (ValueError,), "yuv": (ValueError,),
    "params": (ValueError,), "results": (ValueError,),
}
"""The documented errors of each reader."""

BUDGET = 256 * 2**20
"""Decode budget of the artifact cases."""

DEEP = "\x00deep"
"""Stands for a list nested 100,000 deep, written into JSON text by ``to_text``."""
EXTREMES = [0, -1, 1, 2, 3, 255, 2**31 - 1, 2**31, 2**40, -2**63, 10**400, -10**5000, 1e308, float("inf"),
            float("nan"), -0.5, 0.5, True, None, "", "x", "nan", [], {}, [1, 2, 3], {"a": 1}, DEEP]
"""Values a mutation puts where a field was: among them integers of 400 and 5,000 digits (beyond
float range, and beyond Python's int-string limit) and deep nesting."""


@contextlib.contextmanager
def _any_digits():
    """Let json.dumps write integers beyond Python's int-string limit (the fuzzer's own writing only)."""
    limit = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(0)
    try:
        yield
    finally:
        sys.set_int_max_str_digits(limit)


def to_text(value: Any) -> bytes:
    """``value`` as JSON text, ``DEEP`` written as a list nested 100,000 deep."""
    with _any_digits():
        text = json.dumps(value)
    return text.replace(json.dumps(DEEP), "[" * 100_000 + "]" * 100_000).encode()


# -- mutations --------------------------------------------------------------------------------------------

def mutate_bytes(blob: bytes, rng: random.Random) -> bytes:
    """1-8 flips, cuts or insertions at random places."""
    data = bytearray(blob)
    for _ in range(rng.randint(1, 8)):
        at = rng.randrange(max(1, len(data)))
        kind = rng.choice(("flip", "cut", "insert"))
        if kind == "flip" and data:
            data[at] ^= rng.randint(1, 255)
        elif kind == "cut":
            del data[at:at + rng.randint(1, 64)]
        else:
            data[at:at] = rng.randbytes(rng.randint(1, 32))
    return bytes(data)


def mutate_json(value: Any, rng: random.Random) -> Any:
    """``value`` with one leaf (or one container) replaced by an extreme value, or one key removed."""
    if isinstance(value, dict) and value and rng.random() < 0.8:
        key = rng.choice(sorted(value, key=str))
        copy = dict(value)
        if rng.random() < 0.15:
            del copy[key]
        else:
            copy[key] = mutate_json(value[key], rng)
        return copy
    if isinstance(value, list) and value and rng.random() < 0.8:
        copy = list(value)
        at = rng.randrange(len(copy))
        copy[at] = mutate_json(copy[at], rng)
        return copy
    return rng.choice(EXTREMES)


# -- readers: each builds its valid inputs once and returns a case function ---------------------------------

def _tiny_model(frames: int = 2, height: int = 20, width: int = 24) -> nvpkit.NVP:
    torch.manual_seed(0)
    return nvpkit.NVP(nvpkit.size_sparse_grid(nvpkit.load_config("cpu_s"), frames, height, width))


def resize_payload(blob: bytes, rng: random.Random, target: Path) -> None:
    """Write to ``target`` ``blob`` with one part's payload grown (by up to 256 MiB, zeros written
    as a sparse file) or shrunk, its length field updated to match: a file whose manifest and
    payloads agree with each other, not with the model."""
    (length,) = struct.unpack("<I", blob[8:12])
    manifest = json.loads(blob[12:12 + length])
    at = rng.randrange(len(manifest["parts"]))
    start = 12 + length + sum(p["length"] for p in manifest["parts"][:at])
    old = manifest["parts"][at]["length"]
    new = rng.choice([0, 1, old // 2, max(0, old - 1), old + 1, 2 * old + 7, old + 2**rng.randint(10, 28)])
    manifest["parts"][at]["length"] = new
    text = json.dumps(manifest).encode()
    with open(target, "wb") as f:
        f.write(blob[:8] + struct.pack("<I", len(text)) + text + blob[12 + length:start] + blob[start:start + old][:new])
        f.truncate(f.tell() + max(0, new - old))
        f.seek(0, 2)
        f.write(blob[start + old:])


def artifact_reader(work: Path) -> Callable[[random.Random], Any]:
    model = _tiny_model()
    blobs = []
    for name, settings in (("quantize", {}), ("quantize", {"bits": 4}), ("float", {"dtype": "float16"}),
                           ("tucker", {"ranks": (2, 3, 3)}), ("hevc", {"preset": "ultrafast"})):
        path = work / f"{name}.nvp"
        nvpkit.save_compressed(nvpkit.make_compressor(name, **settings).roundtrip(model), path, overwrite=True)
        blobs.append(path.read_bytes())
    target = work / "case.nvp"

    def case(rng: random.Random) -> Any:
        blob = rng.choice(blobs)
        kind = rng.random()
        if kind < 0.45:
            target.write_bytes(mutate_bytes(blob, rng))
        elif kind < 0.9:  # a well-formed file whose manifest says something else
            (length,) = struct.unpack("<I", blob[8:12])
            manifest = to_text(mutate_json(json.loads(blob[12:12 + length]), rng))
            blob = blob[:8] + struct.pack("<I", len(manifest)) + manifest + blob[12 + length:]
            target.write_bytes(blob)
        else:
            resize_payload(blob, rng, target)
        return nvpkit.load_compressed(target, max_bytes=BUDGET)
    return case


def config_reader(work: Path) -> Callable[[random.Random], Any]:
    base = nvpkit.load_config("nvp_s").to_json()
    path = work / "config.json"

    def case(rng: random.Random) -> Any:
        config = base
        for _ in range(rng.randint(1, 4)):
            config = mutate_json(config, rng)
        if rng.random() < 0.5:  # as a file, the way a user's config arrives
            path.write_bytes(to_text(config))
            return nvpkit.load_config(path)
        if DEEP in json.dumps(config, default=str):
            config = {"nvp": config}
        return nvpkit.load_config(config if isinstance(config, dict) else {"nvp": config})
    return case


def checkpoint_reader(work: Path) -> Callable[[random.Random], Any]:
    video = nvpkit.load_video(np.random.default_rng(0).integers(0, 255, (2, 20, 24, 3), dtype=np.uint8))
    trainer = nvpkit.Trainer.from_config(video, "cpu_s", steps=3, batch=64, device="cpu", log_every=1)
    trainer.train(progress=False)
    path = work / "valid.pt"
    trainer.save(path)
    blob, state = path.read_bytes(), trainer.state_dict()
    plain = {k: v for k, v in state.items() if k not in ("model", "optimizer", "generator")}
    target = work / "case.pt"

    def case(rng: random.Random) -> Any:
        if rng.random() < 0.5:
            target.write_bytes(mutate_bytes(blob, rng))
        else:  # a readable checkpoint holding wrong values
            mutated = dict(state)
            if rng.random() < 0.7:
                changed = mutate_json(json.loads(json.dumps(plain, default=str)), rng)
                mutated.update(changed if isinstance(changed, dict) else {rng.choice(sorted(plain)): changed})
            else:
                key = rng.choice(("model", "optimizer", "generator"))
                mutated[key] = rng.choice([None, 0, {}, torch.zeros(3), {"x": torch.ones(2)}])
            buffer = io.BytesIO()
            torch.save(mutated, buffer)
            target.write_bytes(buffer.getvalue())
        return nvpkit.Trainer.load(target, video, device="cpu")
    return case


def yuv_reader(work: Path) -> Callable[[random.Random], Any]:
    def number(rng: random.Random, typical: list[int]) -> int:
        return rng.choice([*typical, 0, 1, 3, 17, 99999, 2**31])

    def case(rng: random.Random) -> Any:
        width, height = number(rng, [16, 24, 32]), number(rng, [8, 16, 18])
        name = (f"clip_{width}x{height}_{rng.choice(['25', '0', '120', '0.001', '1e9'])}fps_"
                f"{rng.choice(['420', '422', '444', '411'])}_{rng.choice(['8', '10', '12'])}bit_YUV.yuv")
        if rng.random() < 0.2:
            name = rng.choice(["clip.yuv", "x_0x0.yuv", f"{rng.randbytes(6).hex()}.yuv"])
        path = work / name
        frame = int(width * height * 1.5) if width * height < 10**6 else 1000
        path.write_bytes(rng.randbytes(min(rng.choice([frame, 2 * frame, frame + 1, 0, 7]), 65536)))
        try:
            kwargs = rng.choice([{}, {"num_frames": rng.choice([1, 0, 5])}, {"downscale": rng.choice([1, 2, 0])},
                                 {"size": rng.choice([(16, 8), (0, 8), (7, 9), (-4, 8)])},
                                 {"crop": rng.choice([(0, 0, 4, 4), (0, 0, 999, 4), (-1, 0, 4, 4)])}])
            return nvpkit.load_video(path, **kwargs)
        finally:
            path.unlink()
    return case


def params_reader(work: Path) -> Callable[[random.Random], Any]:
    guide = [f.name for f in nvpkit.experiments.GuideConfig.__dataclass_fields__.values()]
    init = [f.name for f in nvpkit.experiments.InitConfig.__dataclass_fields__.values()]
    settings = ["crf", "qscale", "preset", "framerate", "ranks", "storage", "bits", "sweep_crfs", "sweep_ranks",
                "sweep_qscales", "cpu_used", "bit_depth", "x265_params"]
    texts = ["2,3,3", "", ",", "nan", "inf", "1e309", "-5", "0", "abc", "1,2,x", "0.8,0.8,0.8", "True", "false",
             "hevc", "tucker", "quantize", "slow", "cuda", "cpu", "auto", "480,240,240", " 7 ", "9" * 40]

    def case(rng: random.Random) -> Any:
        cls, names = rng.choice([(nvpkit.experiments.GuideConfig, guide + settings),
                                 (nvpkit.experiments.InitConfig, init)])
        params = {name: rng.choice([*texts, rng.choice(EXTREMES), rng.randint(-10, 10**6)])
                  for name in rng.sample(names, rng.randint(1, 6))}
        return cls.from_params(params)
    return case


def results_reader(work: Path) -> Callable[[random.Random], Any]:
    """A finished one-job sweep folder (a results.json and its sweep.json), mutated: ``Results.load``
    raises ``ValueError``; ``collect`` warns and leaves the job out."""
    from nvpkit.sweeps import collect
    job = work / "sweep" / "job"
    job.mkdir(parents=True)
    results = {"kind": "guide", "config": {"seed": 0, "period": 10}, "video": {"name": "clip", "num_frames": 2},
               "arms": {"no guidance": {"bpp": 1.0, "psnr": 30.0}}, "table": [{"method": "no guidance", "bpp": 1.0}]}
    record = {"notebook": "codec_guide.ipynb", "parameters": {"period": 10}, "seconds": 1.0}

    def case(rng: random.Random) -> Any:
        data = [results, record]
        which = rng.randrange(2)
        text = to_text(mutate_json(data[which], rng)) if rng.random() < 0.7 else mutate_bytes(to_text(data[which]), rng)
        (job / "results.json").write_bytes(text if which == 0 else to_text(results))
        (job / "sweep.json").write_bytes(text if which == 1 else to_text(record))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            found = collect(work / "sweep")
        if which == 0:
            nvpkit.experiments.Results.load(job / "results.json")
        return found
    return case


READERS = {"artifact": artifact_reader, "config": config_reader, "checkpoint": checkpoint_reader,
           "yuv": yuv_reader, "params": params_reader, "results": results_reader}


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def fuzz(reader: str, cases: int, seed: int = 0, work: Path | None = None) -> dict[str, Any]:
    """Run ``cases`` cases of one reader: outcome counts, findings (undocumented errors with their
    case number and traceback), seconds and peak RSS growth."""
    with tempfile.TemporaryDirectory() as tmp:
        case = READERS[reader](Path(work or tmp))
        outcomes: collections.Counter[str] = collections.Counter()
        findings = []
        before, started = peak_rss_mib(), time.perf_counter()
        for i in range(cases):
            rng = random.Random(f"{reader}-{seed}-{i}")
            try:
                case(rng)
                outcomes["ok"] += 1
            except ALLOWED[reader] as err:
                outcomes[type(err).__name__] += 1
            except Exception as err:  # a finding: reported, not raised
                outcomes[f"UNDOCUMENTED {type(err).__name__}"] += 1
                findings.append({"case": i, "error": f"{type(err).__name__}: {err}"[:300],
                                 "traceback": traceback.format_exc(limit=4)})
        return {"reader": reader, "cases": cases, "outcomes": dict(outcomes), "findings": findings,
                "seconds": time.perf_counter() - started, "peak_rss_growth_mib": peak_rss_mib() - before}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=10_000, help="cases per reader (default 10,000)")
    parser.add_argument("--readers", default=",".join(READERS), help=f"comma-separated, of {list(READERS)}")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    found = 0
    print("| reader | cases | outcomes | seconds | peak RSS growth (MiB) |\n|---|---|---|---|---|")
    for reader in args.readers.split(","):
        report = fuzz(reader, args.cases, args.seed)
        counts = ", ".join(f"{k} {v:,}" for k, v in sorted(report["outcomes"].items(), key=lambda kv: -kv[1]))
        print(f"| {reader} | {report['cases']:,} | {counts} | {report['seconds']:.0f} | "
              f"{report['peak_rss_growth_mib']:.0f} |", flush=True)
        for finding in report["findings"][:5]:
            print(f"  case {finding['case']}: {finding['error']}\n{finding['traceback']}", file=sys.stderr)
        found += len(report["findings"])
    sys.exit(1 if found else 0)


if __name__ == "__main__":
    main()
