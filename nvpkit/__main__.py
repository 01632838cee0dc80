"""Command line: ``python -m nvpkit train`` prints the plan of a run, trains on a clip, prints PSNR and
writes a reconstruction."""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

from ._device import resolve_device
from ._files import write_json
from .data import load_video
from .provenance import provenance
from .rendering import evaluate
from .experiments import ExperimentConfig, plan
from .train import Checkpoint, TrainConfig, resume_or_start


def _train(args: argparse.Namespace) -> None:
    out = Path(args.out or time.strftime("runs/train-%Y%m%d-%H%M%S"))
    if (out / "results.json").exists() and not args.overwrite:
        sys.exit(f"nvpkit: {str(out)!r} already holds results; pass --overwrite or choose another --out")
    video = load_video(args.dataset, args.num_frames, downscale=args.downscale)
    device = resolve_device(args.device)
    cfg = ExperimentConfig(dataset=args.dataset, num_frames=args.num_frames, downscale=args.downscale,
                           config=args.config, steps=args.steps, batch=args.batch or TrainConfig().batch_for(device),
                           lr=args.lr, seed=args.seed, device=args.device, compile=args.compile, log_every=100)
    print(plan(cfg, video))  # refuses, with the numbers, what does not fit
    checkpoint = out / "checkpoint.pt"
    run = {k: v for k, v in vars(args).items() if k not in ("out", "overwrite", "checkpoint_every")}
    trainer = resume_or_start(
        checkpoint, video, json.dumps(run, sort_keys=True),
        lambda: cfg.new_trainer(video),
        device=args.device, overwrite=args.overwrite)
    if trainer.step_count:
        print(f"resuming from step {trainer.step_count} ({checkpoint})")
    counts = trainer.model.parameter_counts()
    print(f"{video}; model {args.config}: {counts['total']:,} parameters; {trainer.config.steps} steps of "
          f"{trainer.batch:,} pixels on {trainer.device}")
    trainer.train(callbacks=[Checkpoint(checkpoint, args.checkpoint_every)])
    result = evaluate(trainer.model, video, write=out / "reconstruction.mp4", overwrite=args.overwrite)
    write_json(out / "results.json", {
        "arguments": vars(args), "video": {"name": video.name, "shape": list(video.frames.shape)},
        "model_config": trainer.model.config.to_dict(), "train_config": asdict(trainer.config),
        "parameters": counts, "evaluation": result.to_dict(), "history": trainer.history,
        "provenance": provenance(trainer.device)})
    ssim = f", MS-SSIM {result.ms_ssim:.4f}" if result.ms_ssim is not None else ""
    print(f"PSNR {result.psnr:.2f} dB (float {result.psnr_float:.2f} dB), YUV PSNR {result.yuv_psnr:.2f} dB{ssim} "
          f"over {video.num_frames} frames "
          f"(training {trainer.elapsed:.0f} s); reconstruction: {out / 'reconstruction.mp4'}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="nvpkit", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="train NVP on a video, evaluate it, write a reconstruction")
    train.add_argument("--dataset", default="sample", help="'sample', a folder of frames, a video file, .yuv, .npy")
    train.add_argument("--num-frames", type=int, default=16, help="frames to use (default 16)")
    train.add_argument("--downscale", type=int, default=4, help="integer area downscale (default 4)")
    train.add_argument("--config", default="cpu_s", help="preset name or JSON path (default cpu_s)")
    train.add_argument("--steps", type=int, default=500, help="training steps (default 500)")
    train.add_argument("--batch", type=int, default=None, help="pixels per step (default by device)")
    train.add_argument("--lr", type=float, default=1e-2, help="peak learning rate (default 1e-2)")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    train.add_argument("--compile", action="store_true", help="torch.compile the decoder (for CUDA; slower on a CPU)")
    train.add_argument("--out", default=None, help="output folder (default runs/train-DATE-TIME)")
    train.add_argument("--overwrite", action="store_true", help="replace results already in --out")
    train.add_argument("--checkpoint-every", type=int, default=1000,
                       help="steps between checkpoints; re-running with the same --out resumes (default 1000)")
    args = parser.parse_args(argv)
    try:
        _train(args)
    except (ValueError, FileNotFoundError, FileExistsError, FloatingPointError) as err:
        sys.exit(f"nvpkit: {err}")


if __name__ == "__main__":
    main()
