"""Faults lose nothing, bad input is named, untrusted files are safe."""
import errno
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nvpkit
from nvpkit._files import Claim, publish

TRAIN = dict(steps=20, batch=1024, log_every=5, device="cpu")

SCRIPT = textwrap.dedent("""
    import os, signal, sys, torch, nvpkit
    from nvpkit.train import Checkpoint
    video = nvpkit.load_video("sample", num_frames=8, downscale=8)
    trainer = nvpkit.Trainer.from_config(video, "cpu_s", steps=20, batch=1024, log_every=5, device="cpu")
    mode, path = sys.argv[1], sys.argv[2]
    def kill(t):
        if mode == "train" and t.step_count == 13:
            os.kill(os.getpid(), signal.SIGKILL)
        if mode == "save" and t.step_count == 14:  # die half-way through writing the next checkpoint
            real = torch.save
            def half(obj, f):
                real(obj, f)
                with open(f, "r+b") as handle:
                    handle.truncate(os.path.getsize(f) // 2)
                os.kill(os.getpid(), signal.SIGKILL)
            torch.save = half
    trainer.train(callbacks=[kill, Checkpoint(path, 5)], progress=False)
""")


@pytest.mark.parametrize("mode", ["train", "save"])
def test_killed_run_resumes_to_the_same_numbers(tmp_path, mode, tiny_video):
    script, ckpt = tmp_path / "run.py", tmp_path / "ckpt.pt"
    script.write_text(SCRIPT)
    done = subprocess.run([sys.executable, str(script), mode, str(ckpt)], capture_output=True)
    assert done.returncode == -signal.SIGKILL
    resumed = nvpkit.Trainer.load(ckpt, tiny_video)  # the last good checkpoint: step 10 (or 15 in "save")
    assert resumed.step_count == (10 if mode == "train" else 15) - (mode == "save") * 5
    resumed.train(progress=False)
    straight = nvpkit.Trainer.from_config(tiny_video, "cpu_s", **TRAIN)
    straight.train(progress=False)
    assert resumed.history["loss"] == straight.history["loss"]
    for a, b in zip(straight.model.parameters(), resumed.model.parameters()):
        assert torch.equal(a, b)


class _Crash(RuntimeError):
    pass


class _CrashingPlot(nvpkit.LivePlot):
    """A live plot whose callback for one arm (0: no guidance, 1: guided) fails at one step, like a
    kill mid-run."""

    def __init__(self, arm: int, step: int):
        super().__init__(["no guidance", "quantize guidance"], widget=False)
        self.crash_arm, self.crash_step = self.arms[arm], step

    def callback(self, arm, events=()):
        redraw = super().callback(arm, events)

        def maybe_crash(trainer):
            if arm == self.crash_arm and trainer.step_count == self.crash_step:
                raise _Crash("simulated crash")
            redraw(trainer)
        return maybe_crash


def test_interrupted_experiment_resumes_to_the_same_results(tmp_path):
    common = dict(num_frames=4, downscale=8, steps=40, period=15, batch=512, log_every=5, device="cpu",
                  anchor_crfs=(), compressor="quantize", settings={"bits": 4}, checkpoint_every=10,
                  cache_dir=str(tmp_path / "cache"))
    straight = nvpkit.run_experiment(nvpkit.GuideConfig(out_dir=str(tmp_path / "a"), **common))
    cfg = nvpkit.GuideConfig(out_dir=str(tmp_path / "b"), **common)
    with pytest.raises(_Crash):
        nvpkit.run_experiment(cfg, _CrashingPlot(arm=1, step=25))
    assert nvpkit.Trainer.load(tmp_path / "b" / "guided.pt", nvpkit.load_video("sample", 4, downscale=8)
                               ).step_count == 20
    resumed = nvpkit.run_experiment(cfg)
    untimed = lambda events: [{k: v for k, v in e.items() if k != "seconds"} for e in events]  # noqa: E731
    assert untimed(resumed.events) == untimed(straight.events)
    assert [e["step"] for e in resumed.events] == [15, 30]
    assert resumed.final == straight.final


def test_half_trained_baseline_never_reaches_the_shared_cache(tmp_path, capsys):
    """Runs in parallel (a sweep) share the baseline cache: a baseline goes there only when finished,
    trains and resumes in its run's own folder, and a cached one that stopped early is retrained."""
    common = dict(num_frames=4, downscale=8, steps=40, period=15, batch=512, log_every=5, device="cpu",
                  anchor_crfs=(), compressor="quantize", settings={"bits": 4}, checkpoint_every=10,
                  cache_dir=str(tmp_path / "cache"))
    video = nvpkit.load_video("sample", 4, downscale=8)
    cfg = nvpkit.GuideConfig(out_dir=str(tmp_path / "a"), **common)
    with pytest.raises(_Crash):
        nvpkit.run_experiment(cfg, _CrashingPlot(arm=0, step=25))
    assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").iterdir())
    assert nvpkit.Trainer.load(tmp_path / "a" / "baseline.pt", video).step_count == 20
    shutil.copyfile(tmp_path / "a" / "baseline.pt", tmp_path / "half.pt")
    resumed = nvpkit.run_experiment(cfg)
    assert "resuming from step 20" in capsys.readouterr().out
    (cached,) = (tmp_path / "cache").iterdir()
    assert nvpkit.Trainer.load(cached, video).step_count == 40
    assert not (tmp_path / "a" / "baseline.pt").exists()  # moved to the cache

    shutil.copyfile(tmp_path / "half.pt", cached)  # as if a run had published a half-trained arm
    other = nvpkit.run_experiment(nvpkit.GuideConfig(out_dir=str(tmp_path / "b"), **common))
    assert "is unfinished; training it again" in capsys.readouterr().out
    assert nvpkit.Trainer.load(cached, video).step_count == 40
    assert other.final["no guidance"] == resumed.final["no guidance"]


def test_publish_to_another_filesystem_copies_atomically(tmp_path, monkeypatch):
    src, dst = tmp_path / "run" / "baseline.pt", tmp_path / "cache" / "baseline.pt"
    for path, data in ((src, b"finished"), (dst, b"older")):
        path.parent.mkdir()
        path.write_bytes(data)
    rename = os.replace

    def cross_device(a, b):
        if Path(a) == src:
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        return rename(a, b)

    monkeypatch.setattr(os, "replace", cross_device)
    assert publish(src, dst) == dst
    assert dst.read_bytes() == b"finished" and not src.exists()
    assert list(dst.parent.iterdir()) == [dst]  # no temporary file left


def test_claims_are_exclusive_and_abandoned_ones_are_taken_over(tmp_path):
    path = tmp_path / "cache" / "work.lock"
    mine, other = Claim(path), Claim(path, stale_after=60)
    assert mine.acquire() and not other.acquire()
    assert other.holder() == {"host": socket.gethostname(), "pid": os.getpid()}
    old = time.time() - 120
    os.utime(path, (old, old))
    mine.refresh()  # not due yet (every 30 s)
    assert path.stat().st_mtime == pytest.approx(old)
    mine.refresh_every = 0
    mine.refresh()
    assert path.stat().st_mtime > old + 60
    mine.release()
    assert other.acquire()
    other.release()
    path.write_text(json.dumps({"host": "elsewhere", "pid": 1}))  # a holder on another host
    assert not other.acquire()
    os.utime(path, (old, old))  # ... that stopped touching its claim two minutes ago
    assert other.acquire()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    path.write_text(json.dumps({"host": socket.gethostname(), "pid": dead.pid}))  # a dead process here
    assert Claim(path).acquire()


def test_parallel_runs_train_the_no_guidance_arm_once(tmp_path, capsys, monkeypatch):
    """A run that finds another, living run training the same no-guidance arm trains its guided arm
    first and then takes the other's arm from the cache; one whose holder died trains it itself."""
    monkeypatch.setattr(nvpkit.experiments.cache, "POLL_S", 0.05)
    common = dict(num_frames=4, downscale=8, steps=20, period=10, batch=512, log_every=5, device="cpu",
                  anchor_crfs=(), compressor="quantize", settings={"bits": 4}, cache_dir=str(tmp_path / "cache"))
    first = nvpkit.run_experiment(nvpkit.GuideConfig(out_dir=str(tmp_path / "a"), **common))
    (cached,) = (tmp_path / "cache").iterdir()
    finished = tmp_path / "finished.pt"
    cached.rename(finished)  # as if the arm were still training, in this process (a living holder)
    lock = cached.with_suffix(".lock")
    lock.write_text(json.dumps({"host": socket.gethostname(), "pid": os.getpid()}))

    def other_run_finishes():
        shutil.copyfile(finished, tmp_path / "copy.pt")
        os.replace(tmp_path / "copy.pt", cached)
        lock.unlink()

    timer = threading.Timer(0.5, other_run_finishes)
    capsys.readouterr()
    timer.start()
    try:
        second = nvpkit.run_experiment(nvpkit.GuideConfig(out_dir=str(tmp_path / "b"), **common))
    finally:
        timer.join()
    out = capsys.readouterr().out
    assert out.index("the guided arm goes first") < out.index("loaded from the cache")
    assert not (tmp_path / "b" / "baseline.pt").exists()
    assert second.final["no guidance"] == first.final["no guidance"]

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    cached.unlink()
    lock.write_text(json.dumps({"host": socket.gethostname(), "pid": dead.pid}))
    third = nvpkit.run_experiment(nvpkit.GuideConfig(out_dir=str(tmp_path / "c"), **common))
    assert "goes first" not in capsys.readouterr().out and not lock.exists()
    assert third.final["no guidance"] == first.final["no guidance"]


def test_non_finite_loss_never_overwrites_the_last_good_checkpoint(tiny_video, tmp_path):
    trainer = nvpkit.Trainer.from_config(tiny_video, "cpu_s", **{**TRAIN, "log_every": 100})

    def poison(t):
        if t.step_count == 12:
            with torch.no_grad():
                t.model.decoder.last.bias.fill_(float("nan"))

    with pytest.raises(FloatingPointError, match="not saving over"):
        trainer.train(callbacks=[poison, nvpkit.train.Checkpoint(tmp_path / "c.pt", 5)], progress=False)
    good = nvpkit.Trainer.load(tmp_path / "c.pt", tiny_video)
    assert good.step_count == 10 and all(torch.isfinite(p).all() for p in good.model.parameters())


def test_out_of_memory_names_the_setting(tiny_video, monkeypatch):
    trainer = nvpkit.Trainer.from_config(tiny_video, "cpu_s", **TRAIN)

    def boom(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(trainer.model, "forward", boom)
    with pytest.raises(torch.OutOfMemoryError, match="batch=1,024: lower TrainConfig.batch"):
        trainer.step()


def test_a_model_too_large_for_memory_says_how_large():
    config = nvpkit.load_config("nvp_s")
    huge = config.to_json()
    huge["nvp"]["3d_encoding"].update(t_resolution=60000, x_resolution=3000, y_resolution=3000)
    with pytest.raises(ValueError, match=r"GiB as float32\) but only .* GiB of memory is available"):
        nvpkit.NVP(huge)


# -- property-based fuzzing: only the documented error, never a crash --------------------------------------

@pytest.fixture(scope="module")
def artifact(tmp_path_factory):
    model = nvpkit.NVP(nvpkit.size_sparse_grid(nvpkit.load_config("cpu_s"), 2, 20, 24))
    path = tmp_path_factory.mktemp("artifact") / "model.nvp"
    nvpkit.save_compressed(nvpkit.make_compressor("quantize").roundtrip(model), path)
    return path.read_bytes()


@settings(max_examples=150, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzzed_artifacts_fail_only_with_artifact_error(artifact, tmp_path, data):
    blob = bytearray(artifact)
    for _ in range(data.draw(st.integers(1, 8))):
        kind = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        at = data.draw(st.integers(0, max(0, len(blob) - 1)))
        if kind == "flip" and blob:
            blob[at] ^= data.draw(st.integers(1, 255))
        elif kind == "cut":
            del blob[at:at + data.draw(st.integers(1, 64))]
        else:
            blob[at:at] = data.draw(st.binary(min_size=1, max_size=32))
    path = tmp_path / "fuzz.nvp"
    path.write_bytes(bytes(blob))
    try:
        nvpkit.load_compressed(path)
    except nvpkit.ArtifactError:
        pass


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**12, 10**12) | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=20)


@st.composite
def mutated_configs(draw):
    """A valid config with a few keys replaced by arbitrary JSON values or removed."""
    base = json.loads(json.dumps(nvpkit.load_config("cpu_s").to_json()))
    for _ in range(draw(st.integers(1, 4))):
        section = base["nvp"][draw(st.sampled_from(sorted(base["nvp"])))]
        key = draw(st.sampled_from(sorted(section) + ["extra"]))
        if draw(st.booleans()):
            section[key] = draw(json_values)
        else:
            section.pop(key, None)
    return base


@settings(max_examples=300, deadline=None, derandomize=True)
@given(config=st.one_of(json_values.map(lambda v: {"nvp": v}), mutated_configs()))
def test_fuzzed_configs_fail_only_with_value_error(config):
    try:
        result = nvpkit.load_config(config)
    except ValueError:
        return
    counts = nvpkit.count_parameters(result)
    assert counts["total"] > 0 and math.isfinite(result.xy.per_level_scale)
