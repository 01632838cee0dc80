"""YUV PSNR as a codec paper reports it, on a raw .yuv: the sample clip written as UVG-style raw
planes, one guided experiment on it, and its table with YUV PSNR against the source planes beside
the RGB definition (BT.709 full range of the RGB frames, what nvpkit reported for every source before).

    python benchmarks/yuv_psnr.py                                  # 16 frames of 160x90, 2,000 steps
    python benchmarks/yuv_psnr.py --frames 8 --steps 500 --out-dir runs/yuv_psnr_small

The clip's planes are the sample's decoded 4:2:0 planes scaled to 160x90 by ffmpeg (a raw .yuv
file, as UVG ships); ``load_video`` makes its RGB with BT.709 limited range, the x265 anchor encodes
the planes themselves. Prints the table (markdown) and writes the run into ``--out-dir``.
"""
from __future__ import annotations

import argparse
import subprocess
from pathlib import Path

import imageio_ffmpeg

import nvpkit


def write_yuv(folder: Path, frames: int) -> Path:
    """The sample clip's first ``frames`` frames as a 160x90 4:2:0 8-bit raw .yuv in ``folder``."""
    path = folder / "sample_160x90_25fps_420_8bit_YUV.yuv"
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-y", "-i", str(nvpkit.data.SAMPLES["sample"]),
                    "-frames:v", str(frames), "-vf", "scale=160:90", "-pix_fmt", "yuv420p", "-f", "rawvideo",
                    str(path)], check=True)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--out-dir", default="runs/yuv_psnr")
    args = parser.parse_args()
    out = Path(args.out_dir)
    clip = write_yuv(out / "clip", args.frames)
    cfg = nvpkit.GuideConfig(dataset=str(clip), num_frames=args.frames, downscale=1, steps=args.steps,
                             period=args.steps // 4, sweep=tuple({"crf": c} for c in (15, 21, 27, 33, 39)),
                             anchor_crfs=(20, 26, 32, 38, 44), device="cpu", out_dir=str(out / "run"),
                             cache_dir=str(out / "cache"), overwrite=True)
    results = nvpkit.run_experiment(cfg)
    rows = [{"curve": name, "setting": r["label"], "bpp": r["bpp"], "psnr": r["psnr"], "yuv_psnr": r["yuv_psnr"],
             "yuv_psnr_rgb": r["yuv_psnr_rgb"]} for name, rows in results.rd_curves().items() for r in rows]
    print(f"{results.video['name']}: {results.video['colour']}, YUV PSNR against the source planes: "
          f"{results.video['yuv_psnr_against_source_planes']}")
    print(nvpkit.viz.markdown_table(rows, {"curve": "curve", "setting": "setting", "bpp": "bpp", "psnr": "RGB PSNR",
                                           "yuv_psnr": "YUV PSNR, source planes", "yuv_psnr_rgb": "YUV PSNR, RGB (before)"},
                                    {"bpp": "{:.4f}", "psnr": "{:.2f}", "yuv_psnr": "{:.2f}", "yuv_psnr_rgb": "{:.2f}"}))
    print(nvpkit.viz.format_table(results))


if __name__ == "__main__":
    main()
