import numpy as np
import pytest
import torch

import nvpkit
from nvpkit.experiments import PullToInit, tucker_init


def smooth_video(t=12, h=24, w=32) -> nvpkit.Video:
    """A smooth synthetic clip whose colours vary along one axis (a rank-1 colour structure)."""
    tt, yy, xx = np.meshgrid(np.linspace(0, 1, t), np.linspace(0, 1, h), np.linspace(0, 1, w), indexing="ij")
    base = 0.5 + 0.3 * np.sin(2 * np.pi * (xx + 0.3 * tt)) * np.cos(np.pi * yy)
    rgb = np.stack([base, 0.8 * base + 0.1, 0.6 * base + 0.2], -1)
    return nvpkit.load_video((rgb * 255).round().astype(np.uint8))


def model_for(video, sparse=None):
    config = nvpkit.size_sparse_grid(nvpkit.load_config("cpu_s"), video.num_frames, video.height, video.width)
    if sparse is not None:
        from dataclasses import replace
        config = replace(config, sparse=replace(config.sparse, x_resolution=sparse[0], y_resolution=sparse[1]))
    return nvpkit.NVP(config)


@pytest.mark.parametrize("mapping", ["sparse", "all"])
def test_init_has_the_grid_shapes_and_finite_values(mapping):
    video = smooth_video()
    model = model_for(video)
    before = model.xy.levels[0].detach().clone()
    init = tucker_init(model, video, mapping=mapping, scale=0.1)
    for name, grid in model.grids().items():
        values = [grid.embeddings] if name == "sparse" else list(grid.levels)
        assert init[name].shape == (sum(v.numel() for v in values),) and torch.isfinite(init[name]).all()
        assert torch.equal(init[name], torch.cat([v.detach().flatten() for v in values]))
    assert model.sparse.embeddings.std().item() == pytest.approx(0.1, rel=0.05)
    assert torch.equal(model.xy.levels[0], before) == (mapping == "sparse")


def test_full_rank_init_reconstructs_the_video_through_the_sparse_grid():
    video = smooth_video()
    model = model_for(video, sparse=(video.height, video.width))  # one cell per pixel
    tucker_init(model, video, ranks=(1.0, 1.0, 1.0), mapping="sparse", scale=1.0)
    luma_like = torch.from_numpy(video.frames).float().mean(-1)  # the first colour axis of this clip
    first = model.sparse.embeddings[..., 0].detach()
    corr = torch.corrcoef(torch.stack([first.flatten(), luma_like.flatten()]))[0, 1]
    assert corr > 0.999


def test_pull_is_zero_at_init_and_has_the_expected_gradient():
    video = smooth_video()
    model = model_for(video)
    init = tucker_init(model, video)
    pull = PullToInit(init, lam=0.5, grids=("sparse", "xy"))
    assert pull(model, 0).item() == 0.0
    with torch.no_grad():
        model.sparse.embeddings.add_(0.01)
    model.zero_grad()
    pull(model, 0).backward()
    n = model.sparse.embeddings.numel()
    expected = torch.full_like(model.sparse.embeddings, 2 * 0.5 * 0.01 / n)
    torch.testing.assert_close(model.sparse.embeddings.grad, expected)
    assert all(level.grad.abs().max() == 0 for level in model.xy.levels)
    assert all(level.grad is None for level in model.xt.levels)
    decaying = PullToInit(init, lam=0.5, decay_steps=100)
    assert decaying.weight(0) == 0.5 and decaying.weight(50) == pytest.approx(0.25) and decaying.weight(100) == 0


def test_regulariser_enters_training_but_not_the_logged_loss(tiny_video):
    plain = nvpkit.Trainer.from_config(tiny_video, "cpu_s", steps=5, batch=512, device="cpu")
    pulled = nvpkit.Trainer.from_config(tiny_video, "cpu_s", steps=5, batch=512, device="cpu")
    pulled.regularizer = lambda model, step: 100 * model.sparse.embeddings.square().sum()
    plain.train(progress=False)
    pulled.train(progress=False)
    assert pulled.model.sparse.embeddings.abs().max() < plain.model.sparse.embeddings.abs().max()
    assert pulled.history["loss"][0] < 1  # the MSE, not the objective


def test_bad_init_arguments():
    video = smooth_video()
    with pytest.raises(ValueError, match="mapping='core'"):
        tucker_init(model_for(video), video, mapping="core")
    with pytest.raises(ValueError, match=r"unknown parts \[.zz.\]"):
        PullToInit({"sparse": torch.zeros(1)}, lam=1.0, grids=("zz",))
    with pytest.raises(ValueError, match="mapping"):
        nvpkit.InitConfig(mapping="core")
    with pytest.raises(ValueError, match="ranks"):
        nvpkit.InitConfig(ranks=(0, 1, 1))


def test_steps_to_reach():
    history = {"step": [10, 20, 30], "psnr": [20.0, 29.9, 31.0]}
    assert nvpkit.steps_to_reach(history, 30) == 30 and nvpkit.steps_to_reach(history, 40) is None


@pytest.mark.parametrize("frames,size", [(5, (3, 6, 10)), (6, (6, 7, 9))])
def test_colour_axes_streamed_frame_by_frame_equal_the_whole_clip_computation(frames, size):
    from nvpkit.experiments.initialize import _resampled_colour_axes
    video = nvpkit.load_video("sample", frames, downscale=8)
    whole = torch.from_numpy(video.frames).double() / 255  # [T, H, W, 3]: the clip at once, as a reference
    pixels = whole.reshape(-1, 3)
    centred = pixels - pixels.mean(0)
    _, _, basis = torch.linalg.svd(centred[:: max(1, len(centred) // 500)], full_matrices=False)
    axes = basis * torch.where(basis[0].sum() < 0, -1.0, 1.0).double()
    projected = (centred @ axes.T).T.reshape(3, *whole.shape[:3])  # [3, T, H, W]
    expected = torch.nn.functional.interpolate(projected[None], size=size, mode="area")[0]
    got = _resampled_colour_axes(video, 3, size, samples=500)
    assert got.shape == (3, *size)
    torch.testing.assert_close(got.double(), expected, atol=2e-5, rtol=1e-4)
