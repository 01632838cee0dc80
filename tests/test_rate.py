from dataclasses import replace

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

import nvpkit
from nvpkit.compress import HEVC
from nvpkit.config import load_config
from nvpkit.model import NVP
from nvpkit.parts import GRIDS, channels, part_shapes
from nvpkit.quantization import in_steps, quantize
from nvpkit.train import Checkpoint
from nvpkit.rate import RateTerm, codec_views, total_variation


def synthetic_model(seed=0):
    """A small NVP whose grids hold noise over a smooth ramp (channels of distinct ranges)."""
    model = NVP.seeded(load_config("cpu_s"), seed)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in (p for name in GRIDS for p in getattr(model, name).parameters()):
            ramp = torch.linspace(-1, 1, p.shape[-1]).expand_as(p)
            p.copy_(ramp + 0.3 * torch.randn(p.shape, generator=generator))
    return model


def test_in_steps_rounds_to_the_codes():
    x = torch.randn(3, 17, 19, generator=torch.Generator().manual_seed(0))
    codes, _, _ = quantize(x, 8, dims=(1, 2))
    assert torch.equal(torch.floor(in_steps(x, 8, (1, 2)) + 0.5).to(torch.uint8), codes)


def test_codec_views_are_each_channel_in_quantization_steps():
    model = synthetic_model()
    views = codec_views(model)
    for part in GRIDS:
        # channels() is feature-major (every level of feature 0, then of feature 1); the views are per level
        seen = [v[f].detach() for f in range(len(views[part][0])) for v in views[part]]
        expected = [(c - c.min()) / (c.max() - c.min()) * 255 for c in channels(model, part)]
        assert [tuple(c.shape) for c in seen] == part_shapes(model.config, part)
        assert all(torch.allclose(a, b, atol=1e-3) for a, b in zip(seen, expected, strict=True))


def test_total_variation_is_the_mean_neighbour_difference_in_steps():
    model = synthetic_model()
    total, count = 0.0, 0
    for part in GRIDS:
        for c in channels(model, part):  # numpy, channel by channel
            a = c.double().numpy()
            a = (a - a.min()) / (a.max() - a.min()) * 255
            total += sum(np.abs(np.diff(a, axis=axis)).sum() for axis in range(a.ndim))
            count += a.size
    assert total_variation(model).item() == pytest.approx(total / count, rel=1e-5)


@pytest.mark.parametrize("estimator", ["tv", "entropy"])
def test_a_gradient_step_lowers_the_estimate(estimator):
    model = synthetic_model()
    trainer = nvpkit.Trainer(model, nvpkit.load_video("sample", 2, downscale=16), nvpkit.TrainConfig(steps=1))
    rate = RateTerm(estimator, 1.0, samples=4096)
    rate.attach(trainer)
    for step in range(200 if estimator == "entropy" else 0):  # the densities learn the values first
        rate.estimate(model, step)
    grids = [p for name in GRIDS for p in getattr(model, name).parameters()]
    before = rate.estimate(model, 1000, fit=False)
    gradients = torch.autograd.grad(before, grids)
    assert all(torch.isfinite(g).all() for g in gradients) and any(g.abs().sum() > 0 for g in gradients)
    with torch.no_grad():
        for p, g in zip(grids, gradients):
            p -= 1e-3 * g / g.abs().max()
    after = rate.estimate(model, 1000, fit=False)
    assert after < before


def test_total_variation_and_hevc_bits_fall_together_with_smoothing():
    """Noise smoothed more and more, as HEVC codes the sparse grid's volumes: the estimate and the
    codec's bits are ranked alike (Spearman's rho is printed)."""
    config = load_config("cpu_s")
    model = NVP.seeded(replace(config, sparse=replace(config.sparse, t_resolution=8, x_resolution=48,
                                                      y_resolution=48)), 0)
    noise = torch.randn(2, 1, 8, 48, 48, generator=torch.Generator().manual_seed(1))
    tv, bits = [], []
    for passes in range(7):
        volume = noise.clone()
        for _ in range(passes):
            volume = torch.nn.functional.avg_pool3d(volume, 3, stride=1, padding=1, count_include_pad=False)
        with torch.no_grad():
            model.sparse.embeddings.copy_(volume[:, 0].permute(1, 2, 3, 0))  # [C, T, X, Y] -> [T, X, Y, C]
        tv.append(sum(v.diff(dim=a).abs().sum().item() for v in codec_views(model)["sparse"] for a in (1, 2, 3)))
        bits.append(HEVC(crf=21).encode(channels(model, "sparse")).payload_bits)
    rho = spearmanr(tv, bits).statistic
    print(f"total variation {[round(t) for t in tv]}, HEVC bits {bits}, Spearman rho {rho:.3f}")
    assert rho >= 0.9 and bits[-1] < bits[0] / 2


def test_entropy_state_is_checkpointed_and_resumes_exactly(tmp_path, tiny_video):
    def run(trainer, steps):
        guidance = nvpkit.Guidance(nvpkit.Compressor(), 5, tiny_video, mode="none",
                                   rate=RateTerm("entropy", 1e-4, samples=2048, seed=3))
        guidance.attach(trainer)
        trainer.train(steps, callbacks=[guidance, Checkpoint(tmp_path / "arm.pt", 10)], progress=False)
        guidance.detach(trainer)
        return trainer, guidance.rate

    whole, whole_rate = run(nvpkit.Trainer.from_config(tiny_video, "cpu_s", steps=20, batch=512), 20)
    (tmp_path / "arm.pt").unlink()
    half = nvpkit.Trainer.from_config(tiny_video, "cpu_s", steps=20, batch=512)
    run(half, 10)
    resumed, resumed_rate = run(nvpkit.Trainer.load(tmp_path / "arm.pt", tiny_video), 10)
    assert resumed.step_count == 20 and resumed.regularizer is None
    for a, b in zip(whole.model.parameters(), resumed.model.parameters()):
        assert torch.equal(a, b)
    for a, b in zip(whole_rate.densities.parameters(), resumed_rate.densities.parameters()):
        assert torch.equal(a, b)
    plain = nvpkit.Trainer.from_config(tiny_video, "cpu_s", steps=20, batch=512)
    plain.train(progress=False)
    assert plain.history["loss"] != whole.history["loss"]  # the rate term did take part


def test_a_damaged_estimator_state_is_refused(tiny_video):
    trainer = nvpkit.Trainer.from_config(tiny_video, "cpu_s", steps=2, batch=64)
    trainer.extra["rate"] = {"densities": {"xy.matrices.0": torch.zeros(7)}, "optimizer": {}}
    with pytest.raises(ValueError, match="estimator does not fit"):
        RateTerm("entropy").attach(trainer)


@pytest.mark.parametrize("kwargs, message", [
    ({"estimator": "l1"}, "estimator"), ({"weight": 0}, "weight=0"), ({"weight": -1e-3}, "weight"),
    ({"weight": float("nan")}, "weight"), ({"weight": True}, "weight"), ({"bits": 0}, "bits"),
    ({"samples": 0}, "samples"), ({"lr": 0.0}, "lr"), ({"seed": 1.5}, "seed")])
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RateTerm(**kwargs)


def test_the_entropy_estimator_needs_a_trainer():
    with pytest.raises(RuntimeError, match="attach"):
        RateTerm("entropy").estimate(synthetic_model(), 0)
