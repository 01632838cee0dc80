"""Peak memory and seconds of every stage of an experiment, at several clip lengths.

    python benchmarks/stage_memory.py                                   # 6 and 18 frames of 192x320, cpu_s
    python benchmarks/stage_memory.py --frames 8 24 --size 256x448 --json out.json
    python benchmarks/stage_memory.py --device cuda                     # also the device's peak per stage

Each clip length runs in a fresh process (``--child``) over the same synthetic clip (a moving
pattern with noise, written once as an mp4 and read back by ``load_video``). Before each stage the
process returns its freed heap to the system (``malloc_trim``) and restarts its peak counter; the
stage's memory is its peak resident memory above what was resident before it (on CUDA also
``torch.cuda.max_memory_allocated`` above the allocated memory before it). Stages, in order:

  load        ``load_video`` of the mp4 (the uint8 clip itself is part of this one)
  setup       the trainer (model, AdamW) and two training steps
  event       one HEVC guidance event (compress the grids, decode, reload, probe PSNR)
  compress    the final HEVC compression and the decoded model
  evaluate    ``evaluate`` of every frame, MS-SSIM included
  rd_sweep    ``rd_sweep`` over HEVC settings (``--sweep-crfs``; two by default)
  anchor      ``video_anchor`` (x265) at two crfs
  tucker_init ``tucker_init`` of a fresh model
  tucker      the Tucker compressor's round trip

``slopes`` (``--frames`` with two values) gives each stage's growth per added frame, the number
``tests/test_memory.py`` bounds: a small multiple of a uint8 frame plus the model's state per frame
(the sparse grid has one cell per frame). ``benchmarks/scale_rehearsal.py`` runs the same stages at
the published size.
"""
from __future__ import annotations

import argparse
import ctypes
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from nvpkit import write_video

STAGES = ("load", "setup", "event", "compress", "evaluate", "rd_sweep", "anchor", "tucker_init", "tucker")


def synthetic_clip(frames: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    """uint8 ``[T, H, W, 3]``: smooth colour gradients moving over time, plus mild noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    out = np.empty((frames, height, width, 3), np.uint8)
    for t in range(frames):
        phase = 0.15 * t
        rgb = np.stack([np.sin(x / 37 + phase), np.cos(y / 29 - phase), np.sin((x + y) / 53 + 2 * phase)], -1)
        noisy = 127.5 + 100 * rgb + rng.normal(0, 4, rgb.shape)
        out[t] = np.clip(noisy, 0, 255).astype(np.uint8)
    return out


def _child(args: argparse.Namespace) -> dict:
    """One clip length, every stage, in this process."""
    import torch

    import nvpkit
    from nvpkit._device import host_memory, host_peak_memory, reset_host_peak
    from nvpkit.compress import make_compressor, rd_sweep, video_anchor
    from nvpkit.experiments import Guidance, tucker_init

    libc = ctypes.CDLL(None)
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    out: dict = {"frames": args.num_frames, "stages": {}}
    hevc = dict(preset=args.preset)

    def measure(name: str, run):
        libc.malloc_trim(0)
        if cuda:
            torch.cuda.synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
            device_base = torch.cuda.memory_allocated(device)
        reset_host_peak()
        base = host_memory()
        started = time.perf_counter()
        value = run()
        if cuda:
            torch.cuda.synchronize(device)
        peak = host_peak_memory()
        row = {"seconds": time.perf_counter() - started, "host": peak - base, "resident": peak}
        if cuda:
            row["device"] = torch.cuda.max_memory_allocated(device) - device_base
        out["stages"][name] = row
        print(f"  {args.num_frames} frames, {name}: {row}", file=sys.stderr, flush=True)
        return value

    video = measure("load", lambda: nvpkit.load_video(args.clip, args.num_frames))
    model_config = nvpkit.size_sparse_grid(nvpkit.load_config(args.config), *video.frames.shape[:3])
    out["parameters"] = nvpkit.count_parameters(model_config)["total"]

    def setup():
        t = nvpkit.Trainer.from_config(video, model_config, steps=10, batch=args.batch, device=args.device)
        t.train(2, progress=False)
        return t

    def event(t):
        guidance = Guidance(compressor, period=1, video=video, probe_pixels=2**16)
        guidance.attach(t)
        t.train(1, callbacks=[guidance], progress=False)
        guidance.detach(t)

    trainer = measure("setup", setup)
    compressor = make_compressor("hevc", **hevc)
    measure("event", lambda: event(trainer))
    model = trainer.model
    measure("compress", lambda: compressor.roundtrip(model).to_model(device))
    measure("evaluate", lambda: nvpkit.evaluate(model, video, progress=False))
    settings = {f"crf {c}": make_compressor("hevc", crf=c, **hevc) for c in args.sweep_crfs}
    measure("rd_sweep", lambda: rd_sweep(model, video, settings, progress=False))
    measure("anchor", lambda: video_anchor(video, "hevc", (26, 38), preset=args.preset, progress=False))
    trainer = model = None  # freed: the Tucker stages start from a fresh model
    fresh = nvpkit.NVP.seeded(model_config, 0).to(device)
    measure("tucker_init", lambda: tucker_init(fresh, video, (0.5, 0.5, 0.5)))
    tucker = make_compressor("tucker", ranks=(0.5, 0.5, 0.5), n_iter=args.tucker_iter)
    measure("tucker", lambda: tucker.roundtrip(fresh))
    out["frame_bytes"] = video.frames[0].nbytes
    return out


def measure(frames: list[int], size: tuple[int, int], *, config: str = "cpu_s", device: str = "cpu",
            batch: int = 4096, preset: str = "ultrafast", tucker_iter: int = 5, sweep_crfs: tuple[int, ...] = (21, 33),
            parallel: bool = True, threads: int = 1) -> list[dict]:
    """Every stage at each clip length of ``frames`` (frames of ``size = (height, width)``), each
    length in a fresh process; returns one report per length."""
    height, width = size
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "clip.mp4"
        write_video(synthetic_clip(max(frames), height, width), clip)
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).resolve().parent.parent),
                                                                         os.environ.get("PYTHONPATH")]))}
        commands = [[sys.executable, __file__, "--child", "--clip", str(clip), "--num-frames", str(n),
                     "--config", config, "--device", device, "--batch", str(batch), "--preset", preset,
                     "--tucker-iter", str(tucker_iter), "--sweep-crfs", *map(str, sweep_crfs)] for n in frames]
        if parallel:
            running = [subprocess.Popen(c, stdout=subprocess.PIPE, env=env, text=True) for c in commands]
            outputs = [p.communicate()[0] for p in running]
            codes = [p.returncode for p in running]
        else:
            done = [subprocess.run(c, stdout=subprocess.PIPE, env=env, text=True) for c in commands]
            outputs, codes = [d.stdout for d in done], [d.returncode for d in done]
    for n, code in zip(frames, codes):
        if code:
            raise RuntimeError(f"stage_memory: the {n}-frame run failed (exit {code})")
    return [json.loads(text) for text in outputs]


def slopes(reports: list[dict]) -> dict[str, dict[str, float]]:
    """Per stage: host bytes per added frame between the shortest and the longest clip, and the
    model's parameters per added frame."""
    first, last = min(reports, key=lambda r: r["frames"]), max(reports, key=lambda r: r["frames"])
    span = last["frames"] - first["frames"]
    params = (last["parameters"] - first["parameters"]) / span
    return {stage: {"bytes_per_frame": (last["stages"][stage]["host"] - first["stages"][stage]["host"]) / span,
                    "parameters_per_frame": params} for stage in STAGES}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, nargs="+", default=[6, 18])
    parser.add_argument("--size", default="192x320", help="HEIGHTxWIDTH of the synthetic clip")
    parser.add_argument("--config", default="cpu_s")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=4096)
    parser.add_argument("--preset", default="ultrafast", help="x265 preset of the event, compression, sweep, anchor")
    parser.add_argument("--tucker-iter", type=int, default=5, help="HOOI iterations of the Tucker stage")
    parser.add_argument("--sweep-crfs", type=int, nargs="+", default=[21, 33], help="HEVC crfs of the RD sweep stage")
    parser.add_argument("--json", default=None, help="also write the reports here")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--clip", help=argparse.SUPPRESS)
    parser.add_argument("--num-frames", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child(args)))
        return
    height, width = (int(v) for v in args.size.split("x"))
    reports = measure(args.frames, (height, width), config=args.config, device=args.device, batch=args.batch,
                      preset=args.preset, tucker_iter=args.tucker_iter, sweep_crfs=tuple(args.sweep_crfs))
    frame = reports[0]["frame_bytes"]
    print(f"{args.config} on {height}x{width} frames ({frame:,} bytes each as uint8), {args.device}")
    print("| stage | " + " | ".join(f"{r['frames']} frames: MiB, s" for r in reports) + " | growth per frame |")
    print("|---|" + "---|" * (len(reports) + 1))
    per_frame = slopes(reports) if len(reports) > 1 else {}
    for stage in STAGES:
        cells = [f"{r['stages'][stage]['host'] / 2**20:.1f}, {r['stages'][stage]['seconds']:.2f}" for r in reports]
        growth = f"{per_frame[stage]['bytes_per_frame'] / frame:.2f} frames" if per_frame else ""
        print(f"| {stage} | " + " | ".join(cells) + f" | {growth} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"reports": reports, "slopes": per_frame}, indent=1))


if __name__ == "__main__":
    main()
