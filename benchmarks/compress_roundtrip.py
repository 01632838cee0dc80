"""Time one compress+decompress round trip of NVP-S-sized latents, in process vs through files.

    python benchmarks/compress_roundtrip.py                # published size: sparse grid 600x300x300x2
    python benchmarks/compress_roundtrip.py --frames 60    # a quicker run

Routes, both with the same ffmpeg binary (imageio-ffmpeg's) and the same settings (JPEG qscale
2/3/3 for the 2D grids, HEVC crf 21 preset slow 25 fps bframes=0 for the sparse grid):
  in-process  nvpkit: quantize, pipe raw planes/volumes into ffmpeg, read the decoded bytes back;
  files       the published code's route: write 8-bit PNGs, run the ffmpeg CLI on them (an mp4 per
              channel, a jpg per plane), decode the outputs back to PNGs and read those;
  encoder     libx265 alone on the raw volumes, read from files (the floor for the HEVC part).
The routes run alternately, ``--repeat`` times each; the median is reported.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import imageio.v3 as iio
import imageio_ffmpeg
import numpy as np
import torch

import nvpkit
from nvpkit.compress import make_compressor
from nvpkit.parts import channels
from nvpkit.quantization import quantize

FF = imageio_ffmpeg.get_ffmpeg_exe()


def ffmpeg(*args: str) -> None:
    subprocess.run([FF, "-hide_banner", "-loglevel", "error", "-y", *args], check=True)


def files_route(model: nvpkit.NVP, folder: Path) -> None:
    """Dump PNGs, run the CLI, read back (as experiment_scripts/compression.py + compression.ipynb)."""
    for grid, q in zip(("xy", "xt", "yt"), (2, 3, 3)):
        for i, plane in enumerate(channels(model, grid)):
            codes = quantize(plane, 8)[0].numpy().astype(np.uint8)
            src, dst = folder / f"{grid}{i}.png", folder / f"{grid}{i}.jpg"
            iio.imwrite(src, codes)
            ffmpeg("-i", str(src), "-qscale:v", str(q), str(dst))
            iio.imread(dst)
    for c, volume in enumerate(channels(model, "sparse")):
        frames = folder / f"dim{c}"
        frames.mkdir(exist_ok=True)
        codes = quantize(volume, 8)[0].numpy().astype(np.uint8)
        for t, frame in enumerate(codes):
            iio.imwrite(frames / f"{t:05d}.png", frame)
        video = folder / f"dim{c}.mp4"
        ffmpeg("-framerate", "25", "-i", str(frames / "%05d.png"), "-c:v", "hevc", "-preset", "slow",
               "-x265-params", "bframes=0:log-level=error", "-crf", "21", str(video))
        decoded = folder / f"dec{c}"
        decoded.mkdir(exist_ok=True)
        ffmpeg("-i", str(video), "-pix_fmt", "gray", str(decoded / "%05d.png"))
        np.stack([iio.imread(p) for p in sorted(decoded.glob("*.png"))])


def encoder_only(model: nvpkit.NVP, folder: Path) -> float:
    for c, volume in enumerate(channels(model, "sparse")):
        raw = folder / f"raw{c}.gray"
        raw.write_bytes(quantize(volume, 8)[0].numpy().astype(np.uint8).tobytes())
    started = time.perf_counter()
    t, x, y = model.sparse.embeddings.shape[:3]
    procs = [subprocess.Popen([FF, "-hide_banner", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "gray",
                               "-s", f"{y}x{x}", "-framerate", "25", "-i", str(folder / f"raw{c}.gray"), "-c:v",
                               "libx265", "-preset", "slow", "-crf", "21", "-x265-params", "bframes=0:log-level=error",
                               "-pix_fmt", "gray", "-f", "hevc", str(folder / f"raw{c}.hevc")])
             for c in range(model.sparse.embeddings.shape[3])]
    for p in procs:
        p.wait()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=600, help="sparse grid t resolution (published 600)")
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    torch.manual_seed(0)
    config = nvpkit.size_sparse_grid(nvpkit.load_config("nvp_s"), args.frames, 1080, 1920)
    model = nvpkit.NVP(config)
    with torch.no_grad():  # smooth values, like trained grids, so the codecs do real work
        for p in model.parameters():
            p.normal_()
        emb = torch.randn(config.sparse.shape)
        emb = torch.nn.functional.avg_pool3d(emb.permute(3, 0, 1, 2)[None], 5, 1, 2)[0].permute(1, 2, 3, 0)
        model.sparse.embeddings.copy_(emb)
    compressor = make_compressor("hevc")
    times = {"in-process": [], "files": [], "encoder": []}
    for _ in range(args.repeat):
        started = time.perf_counter()
        result = compressor.roundtrip(model)
        times["in-process"].append(time.perf_counter() - started)
        with tempfile.TemporaryDirectory() as tmp:
            started = time.perf_counter()
            files_route(model, Path(tmp))
            times["files"].append(time.perf_counter() - started)
        with tempfile.TemporaryDirectory() as tmp:
            times["encoder"].append(encoder_only(model, Path(tmp)))
        started = time.perf_counter()
        make_compressor("hevc").sparse.encode(channels(model, "sparse"))
        times.setdefault("in-process HEVC encode", []).append(time.perf_counter() - started)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"sparse grid {tuple(config.sparse.shape)}, 2D grids of NVP-S; {torch.get_num_threads()} threads; "
          f"{result.summary()}")
    for name, value in med.items():
        print(f"  {name:24s} {value:8.2f} s")
    print(f"files / in-process: {med['files'] / med['in-process']:.2f}x; in-process HEVC encode / encoder alone: "
          f"{med['in-process HEVC encode'] / med['encoder']:.2f}x")


if __name__ == "__main__":
    main()
