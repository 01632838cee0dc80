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
    # frame 3 by hand: clamp((out + 1) / 2) against frames / 255
    frame = list(nvpkit.render(trained, tiny_video.num_frames, tiny_video.height, tiny_video.width))[3]
    target = torch.from_numpy(tiny_video.frames[3]).float() / 255
    mse = ((frame - target) ** 2).mean()
    assert result.psnr_per_frame[3] == pytest.approx(10 * torch.log10(1 / mse).item(), abs=1e-4)


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
    with pytest.raises(ValueError, match="scale must be > 0"):
        nvpkit.evaluate(trained, tiny_video, scale=-1)
