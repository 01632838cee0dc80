"""Faults lose nothing, bad input is named, untrusted files are safe."""
import errno
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import nvpkit
from nvpkit._files import Claim, atomic_path, publish
from nvpkit.experiments import Guidance

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
    assert other.holder() == {"host": socket.gethostname(), "pid": os.getpid(), "token": mine.token}
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
    taker = Claim(path)
    assert taker.acquire()
    other.release()  # not its claim: nothing happens
    assert taker.holder()["token"] == taker.token
    assert sorted(p.name for p in path.parent.iterdir()) == ["work.lock"]  # no marker left


_RACE = """
import sys, time
import nvpkit._files as files
judge = files._dead
def slow(*args):  # widen the window between judging a claim dead and acting on it
    verdict = judge(*args)
    time.sleep(0.1)
    return verdict
files._dead = slow
claim = files.Claim(sys.argv[1])
while time.time() < float(sys.argv[2]):
    pass
print(int(claim.acquire()))
"""


def test_racing_processes_take_an_abandoned_claim_over_once(tmp_path):
    """Six processes find the same dead claim at the same moment: exactly one takes it over."""
    path = tmp_path / "work.lock"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    path.write_text(json.dumps({"host": socket.gethostname(), "pid": dead.pid, "token": "gone"}))
    start = str(time.time() + 3)
    racers = [subprocess.Popen([sys.executable, "-c", _RACE, str(path), start], stdout=subprocess.PIPE, text=True)
              for _ in range(6)]
    won = [int(r.communicate(timeout=60)[0]) for r in racers]
    assert sorted(won) == [0, 0, 0, 0, 0, 1]
    assert json.loads(path.read_text())["pid"] == racers[won.index(1)].pid


_EXPERIMENT = """
import sys, nvpkit
cfg = nvpkit.GuideConfig(num_frames=4, downscale=8, steps=20, period=10, batch=512, log_every=5, device="cpu",
                         anchor_crfs=(), compressor="quantize", settings={"bits": 4}, cache_dir=sys.argv[1],
                         out_dir=sys.argv[2])
nvpkit.run_experiment(cfg)
"""


def test_racing_experiments_train_an_abandoned_no_guidance_arm_once(tmp_path):
    """Three runs of one video start while a dead run's claim on its no-guidance arm lies in the
    cache: exactly one trains the arm, the others load it from the cache."""
    cache = tmp_path / "cache"
    probe = subprocess.run([sys.executable, "-c", "import sys, nvpkit\n"
                            "from nvpkit.experiments.cache import arm_key, BASELINE_KEYS\n"
                            "cfg = nvpkit.GuideConfig(num_frames=4, downscale=8, steps=20, period=10, batch=512,"
                            " log_every=5, device='cpu', anchor_crfs=(), compressor='quantize', settings={'bits': 4})\n"
                            "print(arm_key(cfg, cfg.load_video(), BASELINE_KEYS))"],
                           capture_output=True, text=True, check=True)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    cache.mkdir()
    (cache / f"baseline-{probe.stdout.strip()}.lock").write_text(
        json.dumps({"host": socket.gethostname(), "pid": dead.pid, "token": "gone"}))
    runs = [subprocess.Popen([sys.executable, "-c", _EXPERIMENT, str(cache), str(tmp_path / f"run{i}")],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for i in range(3)]
    outputs = [r.communicate(timeout=600)[0] for r in runs]
    assert all(r.returncode == 0 for r in runs), outputs
    assert sum("loaded from the cache" in out for out in outputs) == 2, outputs
    assert len(list(cache.glob("baseline-*.pt"))) == 1 and not list(cache.glob("*.lock*"))


def test_folder_replacement_keeps_the_old_folder_until_the_new_one_is_in(tmp_path, monkeypatch):
    """The three-step fallback of systems that cannot exchange two names: an interrupted swap puts
    the old folder back."""
    import nvpkit._files as files

    monkeypatch.setattr(files, "exchange", lambda first, second: False)
    folder = tmp_path / "frames"
    with atomic_path(folder) as tmp:
        tmp.mkdir()
        (tmp / "a").write_text("old")
    replace = os.replace

    def crash(src, dst):  # a kill right before the new folder is renamed in
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(folder) as tmp:
            tmp.mkdir()
            (tmp / "a").write_text("new")
    assert (folder / "a").read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["frames"]
    monkeypatch.setattr(os, "replace", replace)
    with atomic_path(folder) as tmp:
        tmp.mkdir()
        (tmp / "a").write_text("new")
    assert (folder / "a").read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["frames"]


SWAP = """
import os, sys, time
from pathlib import Path
import nvpkit._files as files

def slowed(call):  # every rename of the swap slowed down, so that kills land before, between and after them
    def slow(*args):
        time.sleep(0.15)
        done = call(*args)
        time.sleep(0.15)
        return done
    return slow

files.exchange = slowed(files.exchange)
os.rename, os.replace = slowed(os.rename), slowed(os.replace)
folder = Path(sys.argv[1])
print("ready", flush=True)
with files.atomic_path(folder) as tmp:
    tmp.mkdir()
    for name in "abc":
        (tmp / name).write_text("new")
    time.sleep(0.1)
print("done", flush=True)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RENAME_EXCHANGE is Linux's")
def test_a_folder_swap_killed_at_any_moment_leaves_the_old_or_the_new_folder_whole(tmp_path):
    """SIGKILL (no ``finally`` runs) at 12 moments of a folder replacement: the folder is there
    every time, all old or all new."""
    from nvpkit._files import exchange

    probe_a, probe_b = tmp_path / "probe_a", tmp_path / "probe_b"
    probe_a.mkdir(), probe_b.mkdir()
    if not exchange(probe_a, probe_b):
        pytest.skip("this filesystem cannot exchange two names")
    script = tmp_path / "swap.py"
    script.write_text(SWAP)
    seen = set()
    for i in range(12):
        folder = tmp_path / f"frames{i}"
        folder.mkdir()
        for name in "abc":
            (folder / name).write_text("old")
        child = subprocess.Popen([sys.executable, str(script), str(folder)], stdout=subprocess.PIPE, text=True,
                                 env={**os.environ, "PYTHONPATH": str(Path(nvpkit.__file__).parent.parent)})
        assert child.stdout.readline().strip() == "ready"
        time.sleep(0.04 * i)
        child.send_signal(signal.SIGKILL)
        child.wait()
        versions = {(folder / name).read_text() for name in "abc"}
        assert len(versions) == 1 and sorted(p.name for p in folder.iterdir()) == ["a", "b", "c"], (i, versions)
        seen |= versions
    assert seen == {"old", "new"}  # the kills landed on both sides of the swap


def test_outputs_are_checked_before_a_run(tmp_path):
    (tmp_path / "checkpoint.pt").write_bytes(b"x")
    with pytest.raises(FileExistsError, match=r"already holds \['checkpoint.pt'\]"):
        nvpkit.check_outputs(tmp_path, ["checkpoint.pt", "reconstruction.mp4"], overwrite=False)
    assert nvpkit.check_outputs(tmp_path, ["checkpoint.pt"], overwrite=True) == tmp_path


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

    attach, armed = Guidance.attach, [True]

    def other_run_finishes_while_the_guided_arm_starts(guidance, trainer):
        if armed:
            armed.clear()
            shutil.copyfile(finished, tmp_path / "copy.pt")
            os.replace(tmp_path / "copy.pt", cached)
            lock.unlink()
        attach(guidance, trainer)

    monkeypatch.setattr(Guidance, "attach", other_run_finishes_while_the_guided_arm_starts)
    capsys.readouterr()
    second = nvpkit.run_experiment(nvpkit.GuideConfig(out_dir=str(tmp_path / "b"), **common))
    out = capsys.readouterr().out
    assert not armed  # the other run finished only after this one had started its guided arm
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


# -- decode budget: what a file may ask a reader to allocate -----------------------------------------------

def _bomb(path: Path) -> Path:
    """A 22 kB artifact whose manifest describes a 1024x2048x2048 sparse grid (4.3e9 values) stored as
    Tucker ranks (1, 1, 1): a valid file that decodes to 16 GiB."""
    tiny_grid = {"otype": "DenseGrid", "n_levels": 1, "n_features_per_level": 1, "log2_hashmap_size": 32,
                 "base_resolution": 2, "per_level_scale": 1.5}
    config = nvpkit.load_config({"nvp": {
        "2d_encoding_xy": tiny_grid, "2d_encoding_xt": tiny_grid, "2d_encoding_yt": tiny_grid,
        "3d_encoding": {"otype": "SparseGrid", "n_features_per_level": 1, "x_resolution": 2048,
                        "y_resolution": 2048, "t_resolution": 1024},
        "network": {"n_neurons": 1, "n_hidden_layers": 1}}})
    float32 = nvpkit.compress.Float()
    tucker = nvpkit.compress.Tucker(ranks=(1, 1, 1))
    parts = {name: nvpkit.compress.Encoded("float", float32.params(), bytes(4 * sum(
        int(np.prod(s)) for s in nvpkit.parts.part_shapes(config, name))), descriptor=float32.descriptor())
        for name in ("xy", "xt", "yt", "decoder")}
    parts["sparse"] = nvpkit.compress.Encoded("tucker", tucker.params(), bytes(4 * (1 + 1024 + 2048 + 2048)),
                                              header=[1, 1, 1], descriptor=tucker.descriptor())
    nvpkit.save_compressed(nvpkit.compress.Compressed(config, parts, {}), path)
    return path


def test_a_decompression_bomb_fails_before_any_large_allocation(tmp_path):
    bomb = _bomb(tmp_path / "bomb.nvp")
    assert 20_000 < bomb.stat().st_size < 24_000
    code = ("import resource, sys, nvpkit, nvpkit.compress\n"
            "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
            "try:\n"
            "    nvpkit.load_compressed(sys.argv[1])\n"
            "except nvpkit.ArtifactError as err:\n"
            "    print(str(err))\n"
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)")
    run = subprocess.run([sys.executable, "-c", code, str(bomb)], capture_output=True, text=True, timeout=120)
    message, grown_kib = run.stdout.strip().splitlines()
    assert "part 'sparse' needs 34,359,738,368 bytes, over the decode budget" in message
    assert int(grown_kib) < 8 * 1024  # peak RSS grew by under 8 MiB
    with pytest.raises(nvpkit.ArtifactError, match="over the decode budget of 1,000 bytes"):
        nvpkit.load_compressed(bomb, max_bytes=1000)


def test_video_streams_decode_to_exactly_the_frames_the_manifest_says():
    volume = torch.rand(6, 16, 16)
    codec = nvpkit.compress.HEVC(preset="ultrafast")
    encoded = codec.encode([volume])
    assert codec.decode(encoded, [(6, 16, 16)])[0].shape == (6, 16, 16)
    with pytest.raises(nvpkit.compress.CodecError, match="more than the 3 frames"):
        codec.decode(encoded, [(3, 16, 16)])
    with pytest.raises(nvpkit.compress.CodecError, match="gave 6 frames, expected 9"):
        codec.decode(encoded, [(9, 16, 16)])
    png = nvpkit.compress.PNG()
    image = png.encode([torch.rand(64, 64)])
    with pytest.raises(nvpkit.compress.CodecError, match="the stream is 64x64, expected 8x8"):
        png.decode(image, [(8, 8)])


def test_files_from_others_never_name_a_path_to_read(tmp_path):
    """A config given as a string is read as a path: an artifact or checkpoint must not get to do that."""
    model = nvpkit.NVP(nvpkit.size_sparse_grid(nvpkit.load_config("cpu_s"), 2, 20, 24))
    path = tmp_path / "model.nvp"
    nvpkit.save_compressed(nvpkit.make_compressor("quantize").roundtrip(model), path)
    blob = path.read_bytes()
    (length,) = struct.unpack("<I", blob[8:12])
    manifest = json.loads(blob[12:12 + length])
    manifest["config"] = str(tmp_path / "elsewhere.json")
    (tmp_path / "elsewhere.json").write_text(json.dumps(nvpkit.load_config("cpu_s").to_json()))
    text = json.dumps(manifest).encode()
    path.write_bytes(blob[:8] + struct.pack("<I", len(text)) + text + blob[12 + length:])
    with pytest.raises(nvpkit.ArtifactError, match="must be a JSON object"):
        nvpkit.load_compressed(path)
