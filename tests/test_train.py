import math
import platform
import warnings

import pytest
import torch

import nvpkit
from nvpkit._device import keep_freed_memory
from nvpkit.train import PixelSampler


def make(video, **kw):
    settings = dict(steps=40, batch=4096, log_every=10, device="cpu")
    settings.update(kw)
    return nvpkit.Trainer.from_config(video, "cpu_s", **settings)


def test_short_training_raises_psnr_clearly(tiny_video):
    trainer = make(tiny_video, steps=150, batch=8192, log_every=50)
    before = nvpkit.evaluate(trainer.model, tiny_video, progress=False).psnr
    trainer.train(progress=False)
    after = nvpkit.evaluate(trainer.model, tiny_video, progress=False).psnr
    assert after > before + 12, (before, after)
    assert after > 24
    losses = trainer.history["loss"]
    assert losses[-1] < losses[0] / 4


def test_same_seed_same_numbers(tiny_video):
    a, b = make(tiny_video, steps=5), make(tiny_video, steps=5)
    a.train(progress=False)
    b.train(progress=False)
    assert a.history["loss"] == b.history["loss"]
    for pa, pb in zip(a.model.parameters(), b.model.parameters()):
        assert torch.equal(pa, pb)
    c = make(tiny_video, steps=5, seed=1)
    c.train(progress=False)
    assert c.history["loss"] != a.history["loss"]


def test_resume_gives_the_same_result_as_not_stopping(tiny_video, tmp_path):
    straight = make(tiny_video, steps=12, log_every=5)
    straight.train(progress=False)

    first = make(tiny_video, steps=12, log_every=5)
    first.train(7, progress=False)
    path = first.save(tmp_path / "ckpt.pt")
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]  # atomic: no temp file left
    resumed = nvpkit.Trainer.load(path, tiny_video)
    assert resumed.step_count == 7
    resumed.train(progress=False)

    assert resumed.step_count == straight.step_count == 12
    assert resumed.history["loss"] == straight.history["loss"]
    for (name, pa), pb in zip(straight.model.named_parameters(), resumed.model.parameters()):
        assert torch.equal(pa, pb), name
    assert resumed.scheduler.get_last_lr() == straight.scheduler.get_last_lr()


def test_checkpoint_refuses_another_video_and_garbage(tiny_video, tmp_path, frames):
    path = make(tiny_video, steps=2).save(tmp_path / "ckpt.pt")
    with pytest.raises(ValueError, match="trained on a \\[8, 90, 160, 3\\] video"):
        nvpkit.Trainer.load(path, nvpkit.load_video(frames))
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="junk.pt.*not a readable checkpoint"):
        nvpkit.Trainer.load(junk, tiny_video)
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        nvpkit.Trainer.load(tmp_path / "none.pt", tiny_video)
    state = torch.load(path, weights_only=True)
    torch.save({**state, "format": "nvpkit.trainer/1"}, tmp_path / "old.pt")
    with pytest.raises(ValueError, match="old.pt.*nvpkit.trainer/1 checkpoint of another nvpkit version"):
        nvpkit.Trainer.load(tmp_path / "old.pt", tiny_video)
    torch.save({"format": "something else"}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not an nvpkit trainer checkpoint"):
        nvpkit.Trainer.load(tmp_path / "other.pt", tiny_video)


def test_published_schedule_and_optimizer(tiny_video):
    trainer = make(tiny_video, steps=10)
    group = trainer.optimizer.param_groups[0]
    assert isinstance(trainer.optimizer, torch.optim.AdamW)
    assert group["lr"] == 1e-2 and group["weight_decay"] == 1e-3
    trainer.train(progress=False)
    assert trainer.scheduler.get_last_lr()[0] == pytest.approx(1e-5)
    assert nvpkit.TrainConfig().batch_for(torch.device("cuda")) == 1_245_184


def test_callbacks_run_between_steps(tiny_video):
    seen = []
    trainer = make(tiny_video, steps=6)
    trainer.train(callbacks=[lambda t: seen.append(t.step_count)], progress=False)
    assert seen == [1, 2, 3, 4, 5, 6]
    trainer.train(2, progress=False)
    assert trainer.step_count == 8


def test_non_finite_loss_stops_with_the_step(tiny_video):
    trainer = make(tiny_video, steps=20, log_every=5)

    def poison(t):
        if t.step_count == 3:
            with torch.no_grad():
                t.model.decoder.last.bias.fill_(float("nan"))

    with pytest.raises(FloatingPointError, match="by step 5"):
        trainer.train(callbacks=[poison], progress=False)


def test_sampler_coords_and_targets_agree(tiny_video):
    sampler = PixelSampler(tiny_video, torch.device("cpu"), seed=3)
    coords, steps, target = sampler(500)
    t_count, height, width = sampler.shape
    t = torch.round(coords[:, 0] * (t_count - 1)).long()
    x = torch.round(coords[:, 1] * (height - 1)).long()
    y = torch.round(coords[:, 2] * (width - 1)).long()
    pixels = torch.from_numpy(tiny_video.frames)[t, x, y].float() / 127.5 - 1
    torch.testing.assert_close(target, pixels)
    torch.testing.assert_close(steps, (t.float() + 0.5) / t_count)
    assert coords.min() >= 0 and coords.max() <= 1


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_pinned_sampler_reuses_its_buffers_and_draws_the_right_pixels(tiny_video):
    sampler = PixelSampler(tiny_video, torch.device("cuda"), seed=3, on_device=False)
    assert sampler.pinned and sampler.frames.is_pinned()
    pointers = []
    for _ in range(6):
        coords, steps, target = sampler(500)
        pointers.append(sampler._staging[sampler._slot][1].data_ptr())
        t, x, y = (torch.round(coords[:, i] * (n - 1)).long().cpu() for i, n in enumerate(sampler.shape))
        expected = torch.from_numpy(tiny_video.frames)[t, x, y].float() / 127.5 - 1
        torch.testing.assert_close(target.cpu(), expected)
    assert len(set(pointers)) == 2  # two buffers, alternating, never a fresh one


@pytest.mark.parametrize("field,value,match", [
    ("batch", 0, "batch=0 is not allowed"), ("steps", -1, "steps=-1 is not allowed"),
    ("lr", 0.0, "lr=0.0 is not allowed"), ("steps", 2.5, "steps=2.5 is not allowed"), ("device", "tpu", "device='tpu'"), ("lr_min", 1.0, "lr_min"),
])
def test_bad_train_config(field, value, match):
    with pytest.raises(ValueError, match=match):
        nvpkit.TrainConfig(**{field: value})


def test_cuda_request_without_cuda_is_clear():
    if torch.cuda.is_available():
        pytest.skip("CUDA present")
    with pytest.raises(ValueError, match="CUDA is not available"):
        nvpkit.TrainConfig(device="cuda")


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_training_matches_cpu_closely(tiny_video):
    cpu, gpu = make(tiny_video, steps=20), make(tiny_video, steps=20, device="cuda")
    cpu.train(progress=False)
    gpu.train(progress=False)
    assert gpu.sampler.frames.is_cuda and not gpu.sampler.pinned
    assert math.isclose(cpu.history["psnr"][-1], gpu.history["psnr"][-1], abs_tol=1.0)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("lookup,mode", [("gather", None), ("sample", None), ("gather", "straight_through"),
                                         ("gather", "codec_ste"), ("gather", "tv"), ("gather", "entropy")])
def test_cuda_steps_never_wait_for_the_host(tiny_video, lookup, mode):
    """Between logs a CUDA step queues work without a host sync (batches drawn on the device, the
    loss kept there, nothing read back), in every guidance mode between its events: any
    synchronising call raises in this mode; with either rate term (``tv``, ``entropy``) too."""
    trainer = make(tiny_video, steps=10, log_every=10, device="cuda")
    for plane in (trainer.model.xy, trainer.model.xt, trainer.model.yt):
        plane.lookup = lookup
    if mode is not None:
        quantize = nvpkit.make_compressor("quantize", bits=6)
        rate = nvpkit.RateTerm(mode, 1e-4) if mode in ("tv", "entropy") else None
        nvpkit.Guidance(quantize, 100, tiny_video, mode="none" if rate else mode, probe_pixels=1000,
                        rate=rate).attach(trainer)
    trainer.step()  # first-call set-up may sync
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(3):
            trainer.step()
    finally:
        torch.cuda.set_sync_debug_mode("default")


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_a_cuda_checkpoint_of_the_entropy_estimator_resumes_on_the_cpu(tiny_video, tmp_path):
    trainer = make(tiny_video, steps=10, device="cuda")
    rate = nvpkit.RateTerm("entropy", 1e-4)
    rate.attach(trainer)
    trainer.train(5, progress=False)
    trainer.save(tmp_path / "c.pt")
    resumed = nvpkit.Trainer.load(tmp_path / "c.pt", tiny_video, device="cpu")
    again = nvpkit.RateTerm("entropy", 1e-4)
    again.attach(resumed)
    for a, b in zip(rate.densities.parameters(), again.densities.parameters()):
        assert b.device.type == "cpu" and torch.equal(a.cpu(), b)
    resumed.train(progress=False)
    assert resumed.step_count == 10


def test_cpu_trainer_keeps_freed_memory_on_glibc(tiny_video):
    nvpkit.Trainer.from_config(tiny_video, "cpu_s", steps=2, batch=64, device="cpu")
    assert keep_freed_memory() == (platform.system() == "Linux" and platform.libc_ver()[0] == "glibc")


# torch's own warning, while tracing
@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")
def test_compiled_decoder_trains_like_eager(tiny_video):
    """With ``compile=True`` the decoder runs through torch.compile (or, where that cannot compile,
    eagerly after a warning): either way the same losses to float rounding."""
    eager, compiled = make(tiny_video, steps=3, batch=512), make(tiny_video, steps=3, batch=512, compile=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        losses = [(eager.step().item(), compiled.step().item()) for _ in range(3)]
    fell_back = any("torch.compile failed" in str(w.message) for w in caught)
    assert fell_back == (compiled._compiled is None)
    assert [c for _, c in losses] == pytest.approx([e for e, _ in losses], rel=1e-4)


def test_failed_compile_falls_back_to_eager_with_a_warning(tiny_video, monkeypatch):
    def broken(module):
        def call(*args):
            raise RuntimeError("no C++ compiler")
        return call

    monkeypatch.setattr(torch, "compile", broken)
    eager, fallback = make(tiny_video, steps=3, batch=512), make(tiny_video, steps=3, batch=512, compile=True)
    eager.train(progress=False)
    with pytest.warns(RuntimeWarning, match="torch.compile failed .*no C\\+\\+ compiler.*eagerly"):
        fallback.train(progress=False)
    assert fallback.history["loss"] == eager.history["loss"]
