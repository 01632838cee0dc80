"""A rehearsal of the published experiment's stages at the published frame size, extrapolated to 600 frames.

    python benchmarks/scale_rehearsal.py                          # NVP-S, 1080x1920, 30 and 60 frames, CPU
    python benchmarks/scale_rehearsal.py --frames 8 16 --device cuda --json rehearsal.json

Runs every stage of ``benchmarks/stage_memory.py`` (load, training set-up and steps, a guidance
event, the final compression, evaluation, an RD sweep, the x265 anchor, Tucker initialisation and
compression; the RD sweep at one setting: its time is per setting) with NVP-S on a synthetic 1080x1920 clip at two frame counts, each in a fresh
process, one after the other with every core, and prints per stage the seconds and the peak
resident memory of the process (and of the device on CUDA), then both extrapolated linearly in
the frame count to ``--target`` frames (600: a UVG clip). The HEVC settings are the published
ones (crf 21, preset slow); the Tucker stage runs ``--tucker-iter`` HOOI iterations (the
compressor's default is 100) at ranks of half each mode.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
from pathlib import Path

import torch

from nvpkit.config import load_config, size_sparse_grid
from nvpkit.memory import CHECKPOINT_BYTES, TRAIN_BYTES
from nvpkit.parts import count_parameters

_SPEC = importlib.util.spec_from_file_location("stage_memory", Path(__file__).resolve().parent / "stage_memory.py")
stage_memory = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(stage_memory)

GiB = 2**30


def extrapolate(first: dict, last: dict, stage: str, key: str, target: int) -> float:
    """``key`` of a stage, linear in the frame count through two runs, at ``target`` frames."""
    a, b = first["stages"][stage][key], last["stages"][stage][key]
    return a + (b - a) / (last["frames"] - first["frames"]) * (target - first["frames"])


def report(reports: list[dict], args: argparse.Namespace) -> None:
    """The table: per stage, seconds and peak memory at each length, and at ``args.target`` frames."""
    height, width = (int(v) for v in args.size.split("x"))
    first, last = sorted(reports, key=lambda r: r["frames"])
    where = ["host"] + (["device"] if args.device.startswith("cuda") else [])
    print(f"{args.config} on {height}x{width} frames, {args.device}; {args.machine}")
    head = [f"{first['frames']} frames", f"{last['frames']} frames", f"{args.target} frames (extrapolated)"]
    print("| stage | " + " | ".join(f"{h}: s, peak GiB" for h in head) + " |")
    print("|---|" + "---|" * len(head))
    worst = {w: 0.0 for w in where}
    for stage in stage_memory.STAGES:
        cells = []
        for run in (first, last):
            row = run["stages"][stage]
            peak = [row["resident"] / GiB] + ([row["device"] / GiB] if "device" in row else [])
            cells.append(f"{row['seconds']:.1f}, " + " / ".join(f"{p:.2f}" for p in peak))
        seconds = "-" if stage == "setup" else f"{extrapolate(first, last, stage, 'seconds', args.target):.0f}"
        peaks = []
        for w, key in zip(where, ("resident", "device")):
            peaks.append(extrapolate(first, last, stage, key, args.target) / GiB)
            worst[w] = max(worst[w], peaks[-1])
        cells.append(f"{seconds}, " + " / ".join(f"{p:.2f}" for p in peaks))
        print(f"| {stage} | " + " | ".join(cells) + " |")
    model = count_parameters(size_sparse_grid(load_config(args.config), args.target, height, width))["total"]
    clip = args.target * height * width * 3
    print(f"\nAt {args.target} frames: the uint8 clip is {clip / GiB:.2f} GiB, {args.config} has {model:,} parameters "
          f"({TRAIN_BYTES * model / GiB:.2f} GiB with gradients and AdamW state); largest extrapolated peak: "
          + ", ".join(f"{w} {v:.2f} GiB" for w, v in worst.items())
          + f"; a checkpoint takes {CHECKPOINT_BYTES * model / GiB:.2f} GiB of disk (two arms keep one each). "
          "Setup runs two steps: its time does not grow with the clip.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, nargs=2, default=[30, 60])
    parser.add_argument("--size", default="1080x1920", help="HEIGHTxWIDTH")
    parser.add_argument("--config", default="nvp_s")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=16384, help="pixels per training step")
    parser.add_argument("--preset", default="slow", help="x265 preset (published: slow)")
    parser.add_argument("--tucker-iter", type=int, default=10)
    parser.add_argument("--target", type=int, default=600, help="frames to extrapolate to")
    parser.add_argument("--json", default=None, help="also write the reports here")
    parser.add_argument("--report", default=None, help="print the table of a --json file instead of measuring")
    args = parser.parse_args()
    if args.report:
        saved = json.loads(Path(args.report).read_text())
        report(saved["reports"], argparse.Namespace(**{**saved["arguments"], "target": args.target}))
        return
    args.machine = (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
                    f"torch {torch.__version__}")
    height, width = (int(v) for v in args.size.split("x"))
    reports = stage_memory.measure(args.frames, (height, width), config=args.config, device=args.device,
                                   batch=args.batch, preset=args.preset, tucker_iter=args.tucker_iter,
                                   sweep_crfs=(21,), parallel=False, threads=os.cpu_count() or 1)
    if args.json:
        Path(args.json).write_text(json.dumps({"arguments": vars(args), "reports": reports}, indent=1))
    report(reports, args)


if __name__ == "__main__":
    main()
