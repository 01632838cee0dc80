"""A raw .yuv source's own colour: training RGB made with it, YUV PSNR against its planes, as
x265 and ffmpeg's psnr filter measure it (nvpkit/colour.py)."""
import re
import subprocess

import imageio_ffmpeg
import numpy as np
import pytest
import torch

import nvpkit
from nvpkit.colour import Colour, to_planes
from nvpkit.metrics import rgb_to_yuv

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()
T, H, W = 6, 48, 64


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """A smooth, moving 4:2:0 8-bit raw clip, UVG-named (limited-range samples)."""
    yy, xx = np.mgrid[0:H, 0:W]
    frames = []
    for i in range(T):
        y = (120 + 80 * np.sin((xx + 3 * i) / 9) * np.cos(yy / 7)).clip(16, 235).astype(np.uint8)
        u = (128 + 40 * np.sin((xx[::2, ::2] - 2 * i) / 5)).astype(np.uint8)
        v = (128 + 30 * np.cos((yy[::2, ::2] + i) / 4)).astype(np.uint8)
        frames.append(y.tobytes() + u.tobytes() + v.tobytes())
    path = tmp_path_factory.mktemp("yuv") / f"clip_{W}x{H}_25fps_420_8bit_YUV.yuv"
    path.write_bytes(b"".join(frames))
    return path


def _psnr_filter(recon, source, tmp_path) -> np.ndarray:
    """Mean over frames of ffmpeg's psnr filter's per-frame Y, U, V PSNR (its stats file)."""
    stats = tmp_path / "stats.log"
    raw = ["-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", f"{W}x{H}"]
    subprocess.run([FFMPEG, "-loglevel", "error", *raw, "-i", str(recon), *raw, "-i", str(source), "-lavfi",
                    f"psnr=stats_file={stats}", "-f", "null", "-"], check=True)
    rows = [[float(re.search(rf"{k}:(\S+)", line)[1]) for k in ("psnr_y", "psnr_u", "psnr_v")]
            for line in stats.read_text().splitlines()]
    assert len(rows) == T
    return np.mean(rows, axis=0)


def test_bt709_coefficients_are_pinned():
    rgb = torch.eye(3)  # pure red, green, blue
    assert rgb_to_yuv(rgb)[:, 0].tolist() == pytest.approx([0.2126, 0.7152, 0.0722], abs=1e-7)  # BT.601: .299 .587 .114
    # BT.709 limited-range green (Y 16 + 219 x 0.7152, Cb and Cr from the same matrix) is RGB green;
    # ffmpeg's default for untagged input (BT.601) would give (19, 255, 8)
    green = Colour().pix_fmt
    run = subprocess.run([FFMPEG, "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", green, "-s", "2x2", "-i", "-",
                          *Colour().rgb_args(), "-f", "rawvideo", "-"], input=bytes([173] * 4 + [42, 26]),
                         capture_output=True, check=True)
    assert list(run.stdout[:3]) == [0, 254, 0]
    assert to_planes(np.array([[[0, 255, 0]] * 2] * 2, np.uint8), Colour())[0][0, 0] == 173


def test_a_yuv_clip_is_made_rgb_with_its_own_colour(clip):
    video = nvpkit.load_video(clip)
    assert video.colour == Colour("bt709", "tv", "420", 8) and video.yuv is not None
    other = nvpkit.load_video(clip, matrix="bt601")
    assert not np.array_equal(video.frames, other.frames)
    assert nvpkit.load_video(clip, downscale=2).yuv is None  # scaled: no longer the source's planes
    with pytest.raises(ValueError, match="matrix='bt2020' is not allowed"):
        nvpkit.load_video(clip, matrix="bt2020")
    with pytest.raises(ValueError, match="range='full' is not allowed"):
        nvpkit.load_video(clip, yuv_range="full")


def test_the_anchors_yuv_psnr_is_the_psnr_filters_on_the_same_stream(clip, tmp_path):
    video = nvpkit.load_video(clip)
    (row,) = nvpkit.video_anchor(video, "hevc", [32], preset="ultrafast", progress=False)
    stream = nvpkit.compress.rd.anchor_encode(video, "hevc", 32, "ultrafast", "420")
    assert row["bits"] == 8 * len(stream) and "-pix_fmt yuv420p -s 64x48" in row["command"]  # the planes, no RGB
    (tmp_path / "s.hevc").write_bytes(stream)
    decoded = tmp_path / "decoded.yuv"
    subprocess.run([FFMPEG, "-loglevel", "error", "-i", str(tmp_path / "s.hevc"), "-f", "rawvideo", "-pix_fmt",
                    "yuv420p", str(decoded)], check=True)
    assert row["yuv_psnr_planes"] == pytest.approx(_psnr_filter(decoded, clip, tmp_path), abs=0.01)
    assert row["yuv_psnr_definition"] == "source planes (BT709 limited range 4:2:0 8-bit)"
    assert abs(row["yuv_psnr"] - row["yuv_psnr_rgb"]) > 0.1  # the RGB definition is another number


def test_a_models_yuv_psnr_is_against_the_source_planes(clip, tmp_path):
    video = nvpkit.load_video(clip)
    torch.manual_seed(0)
    trainer = nvpkit.Trainer.from_config(video, "cpu_s", steps=30, batch=1024, device="cpu", log_every=10)
    trainer.train(progress=False)
    measured = nvpkit.evaluate(trainer.model, video, write=tmp_path / "frames", progress=False)
    rendered = nvpkit.load_video(tmp_path / "frames").frames  # the uint8 frames evaluate scored
    converted = tmp_path / "recon.yuv"
    subprocess.run([FFMPEG, "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{W}x{H}", "-i", "-",
                    "-vf", "scale=out_color_matrix=bt709:out_range=tv", "-pix_fmt", "yuv420p", "-f", "rawvideo",
                    str(converted)], input=rendered.tobytes(), check=True)
    assert measured.yuv_psnr_planes == pytest.approx(_psnr_filter(converted, clip, tmp_path), abs=0.01)
    weighted = (6 * measured.yuv_psnr_planes[0] + sum(measured.yuv_psnr_planes[1:])) / 8
    assert measured.yuv_psnr == pytest.approx(weighted, abs=0.01) and measured.yuv_psnr_rgb is not None


def test_a_video_files_colour_comes_from_its_tags(clip, tmp_path):
    """A BT.709-tagged file (lossless, the same planes) gives the .yuv's frames; an untagged one
    ffmpeg's default, BT.601, as every frame converter reading it would; each records which."""
    for tags, name in ((["-colorspace", "bt709", "-color_range", "tv"], "tagged.mkv"), ([], "untagged.mkv")):
        subprocess.run([FFMPEG, "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", f"{W}x{H}", *tags,
                        "-i", str(clip), "-c:v", "ffv1", *tags, str(tmp_path / name)], check=True)
    tagged, untagged = nvpkit.load_video(tmp_path / "tagged.mkv"), nvpkit.load_video(tmp_path / "untagged.mkv")
    assert tagged.colour == Colour("bt709", "tv", "420", 8) and untagged.colour == Colour("bt601", "tv", "420", 8)
    assert np.array_equal(tagged.frames, nvpkit.load_video(clip).frames)
    assert np.array_equal(untagged.frames, nvpkit.load_video(clip, matrix="bt601").frames)
    assert tagged.yuv is None and nvpkit.load_video(np.zeros((2, 4, 4, 3), np.uint8)).colour is None
