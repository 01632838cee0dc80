import math
import shlex
import subprocess

import imageio_ffmpeg
import numpy as np
import pytest
import torch

import nvpkit


@pytest.fixture(scope="module")
def trained(tiny_video):
    trainer = nvpkit.Trainer.from_config(tiny_video, "cpu_s", steps=60, batch=4096, device="cpu")
    trainer.train(progress=False)
    return trainer.model


def test_evaluate_measures_every_frame(trained, tiny_video):
    result = nvpkit.evaluate(trained, tiny_video, progress=False)
    assert len(result.psnr_per_frame) == tiny_video.num_frames
    assert result.psnr == pytest.approx(np.mean(result.psnr_per_frame))
    assert result.ms_ssim is None and "MS-SSIM skipped" in result.note  # 90x160 is under 161 px
    # frame 3 by hand: the render rounded to uint8 against the frame; unrounded for the float PSNR
    frame = list(nvpkit.render(trained, tiny_video.num_frames, tiny_video.height, tiny_video.width))[3]
    target = torch.from_numpy(tiny_video.frames[3]).float()
    rounded = torch.floor(frame * 255 + 0.5)
    mse = ((rounded - target) ** 2).mean() / 255**2
    assert result.psnr_per_frame[3] == pytest.approx(10 * torch.log10(1 / mse).item(), abs=1e-4)
    mse_float = ((frame - target / 255) ** 2).mean()
    assert result.psnr_float_per_frame[3] == pytest.approx(10 * torch.log10(1 / mse_float).item(), abs=1e-4)
    assert len(result.yuv_psnr_per_frame) == tiny_video.num_frames and len(result.yuv_psnr_planes) == 3


def test_small_chunks_give_the_same_frames(trained, tiny_video):
    shape = (2, tiny_video.height, tiny_video.width)
    whole = torch.stack(list(nvpkit.render(trained, *shape)))
    pieces = torch.stack(list(nvpkit.render(trained, *shape, chunk=1000)))
    torch.testing.assert_close(whole, pieces)


def test_ms_ssim_on_large_enough_frames():
    video = nvpkit.load_video("sample", num_frames=2, downscale=4)  # 180x320
    model = nvpkit.NVP(nvpkit.size_sparse_grid(nvpkit.load_config("cpu_s"), 2, 180, 320))
    result = nvpkit.evaluate(model, video, progress=False)
    assert result.ms_ssim is not None and 0 < result.ms_ssim < 1
    assert len(result.ms_ssim_per_frame) == 2


def test_metrics_on_known_values():
    a = torch.rand(2, 170, 170, 3)
    assert torch.all(nvpkit.ms_ssim(a, a) > 0.9999)
    b = (a + 0.1).clamp(0, 1)
    expected = 10 * torch.log10(1 / ((b - a) ** 2).flatten(1).mean(1))
    torch.testing.assert_close(nvpkit.psnr(b, a), expected)
    with pytest.raises(ValueError, match="too small"):
        nvpkit.ms_ssim(a[:, :100], a[:, :100])


def test_yuv_psnr_by_hand():
    a = torch.rand(1, 8, 8, 3) * 0.9
    planes = nvpkit.metrics.yuv_psnr(a + 0.05, a)  # an equal step in R, G and B moves Y alone
    assert planes[0, 0] == pytest.approx(10 * math.log10(1 / 0.05**2), abs=1e-3)
    assert planes[0, 1] > 100 and planes[0, 2] > 100  # no chroma error
    yuv = nvpkit.metrics.rgb_to_yuv(torch.tensor([1.0, 1.0, 1.0]))
    torch.testing.assert_close(yuv, torch.tensor([1.0, 0.0, 0.0]), atol=1e-6, rtol=0)
    scores = nvpkit.metrics.FrameScores(ms_ssim=False)
    scores.add(torch.full((4, 4, 3), 100, dtype=torch.uint8), torch.full((4, 4, 3), 110, dtype=torch.uint8))
    summary = scores.summary()
    assert summary["yuv_psnr"] == pytest.approx((6 * summary["yuv_psnr_planes"][0] + summary["yuv_psnr_planes"][1]
                                                 + summary["yuv_psnr_planes"][2]) / 8)
    assert summary["psnr"] == pytest.approx(20 * math.log10(255 / 10))
    with pytest.raises(TypeError, match="must be uint8"):
        scores.add(torch.zeros(4, 4, 3), torch.zeros(4, 4, 3, dtype=torch.uint8))


def test_reported_psnr_is_that_of_the_frames_written_to_disk(trained, tiny_video, tmp_path):
    result = nvpkit.evaluate(trained, tiny_video, write=tmp_path / "frames", progress=False)
    written = torch.from_numpy(nvpkit.load_video(tmp_path / "frames").frames).float() / 255
    target = torch.from_numpy(tiny_video.frames).float() / 255
    assert result.psnr_per_frame == pytest.approx(nvpkit.psnr(written, target).tolist(), abs=1e-9)


class _Lookup(torch.nn.Module):
    """A 'model' that renders given uint8 frames exactly (each pixel looked up by its coordinates)."""

    def __init__(self, frames: torch.Tensor):
        super().__init__()
        self.frames = torch.nn.Parameter(frames.float() / 255 * 2 - 1, requires_grad=False)  # [T, H, W, 3]

    def forward(self, coords, steps, interpolate_time=False):
        t, h, w = self.frames.shape[:3]
        i = [(coords[:, k] * (n - 1)).round().long() for k, n in enumerate((t, h, w))]
        return self.frames[i[0], i[1], i[2]]


def test_a_model_and_the_anchor_decoding_to_the_same_frames_get_the_same_scores(tiny_video):
    stream = nvpkit.compress.rd.anchor_encode(tiny_video, "hevc", 30, "fast", "420")
    decoded = torch.stack(list(nvpkit.compress.rd.anchor_decode(stream, tiny_video, "hevc")))
    anchor = nvpkit.video_anchor(tiny_video, "hevc", [30], preset="fast", progress=False)[0]
    model = nvpkit.evaluate(_Lookup(decoded), tiny_video, progress=False)
    assert anchor["bits"] == 8 * len(stream)
    for key in ("psnr", "yuv_psnr", "yuv_psnr_planes"):
        assert model.to_dict()[key] == pytest.approx(anchor[key], abs=1e-9), key


def test_anchor_settings(tiny_video):
    fast = nvpkit.video_anchor(tiny_video, "hevc", [30], preset="fast", progress=False)[0]
    full = nvpkit.video_anchor(tiny_video, "hevc", [30], preset="fast", chroma="444", progress=False)[0]
    assert fast["bits"] != full["bits"] and fast["psnr_float"] is None
    assert nvpkit.compress.anchor_label("hevc", "fast", "444") == "x265 on the video (fast, 4:4:4)"
    assert nvpkit.compress.anchor_label("hevc", "fast", "420", "psnr") == ("x265 on the video (fast, 4:2:0, tuned "
                                                                           "for PSNR)")
    untuned = nvpkit.video_anchor(tiny_video, "hevc", [30], preset="fast", tune="none", progress=False)[0]
    assert "-tune psnr" in fast["command"] and "-tune" not in untuned["command"] and fast["bits"] != untuned["bits"]
    command = shlex.split(fast["command"])  # the recorded command, run as it stands, makes the same stream
    run = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", *command[1:]],
                         input=tiny_video.frames.tobytes(), capture_output=True)
    assert run.returncode == 0 and 8 * len(run.stdout) == fast["bits"]
    with pytest.raises(ValueError, match="tune='ssim' is not allowed"):
        nvpkit.video_anchor(tiny_video, "hevc", [30], tune="ssim")
    with pytest.raises(ValueError, match="chroma='422' is not allowed"):
        nvpkit.video_anchor(tiny_video, "hevc", [30], chroma="422")
    with pytest.raises(ValueError, match="preset='quick' is not allowed"):
        nvpkit.video_anchor(tiny_video, "hevc", [30], preset="quick")


def test_write_reconstruction(trained, tiny_video, tmp_path):
    result = nvpkit.evaluate(trained, tiny_video, write=tmp_path / "recon.mp4", progress=False)
    written = nvpkit.load_video(tmp_path / "recon.mp4")
    assert written.frames.shape == tiny_video.frames.shape
    with pytest.raises(FileExistsError):
        nvpkit.evaluate(trained, tiny_video, write=tmp_path / "recon.mp4", progress=False)
    folder = nvpkit.evaluate(trained, tiny_video, write=tmp_path / "frames", progress=False)
    frames = nvpkit.load_video(tmp_path / "frames").frames
    # png frames are the exact rounding of the rendered values, so PSNR matches the measured one
    err = ((frames.astype(float) - tiny_video.frames.astype(float)) / 255) ** 2
    assert 10 * np.log10(1 / err.mean((1, 2, 3))).mean() == pytest.approx(folder.psnr, abs=0.1)
    assert result.path.endswith("recon.mp4")


def test_super_resolution_and_frame_interpolation(trained, tiny_video, tmp_path):
    result = nvpkit.evaluate(trained, tiny_video, scale=2, time_scale=2, write=tmp_path / "up.mp4",
                             progress=False)
    assert result.shape == (16, 180, 320) and result.psnr is None and "no ground truth" in result.note
    up = nvpkit.load_video(tmp_path / "up.mp4")
    assert up.frames.shape == (16, 180, 320, 3)
    frames = list(nvpkit.render(trained, 15, 9, 16, video_frames=8))
    assert len(frames) == 15 and frames[0].shape == (9, 16, 3)


def test_bad_evaluate_arguments(trained, tiny_video):
    with pytest.raises(ValueError, match="time_scale=0 is not allowed"):
        nvpkit.evaluate(trained, tiny_video, time_scale=0)
    with pytest.raises(ValueError, match="scale=.* is not allowed; use a number > 0"):
        nvpkit.evaluate(trained, tiny_video, scale=-1)
