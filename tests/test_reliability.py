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


def test_a_run_resumes_after_a_code_change_only_when_asked_and_records_it(tmp_path, monkeypatch):
    common = dict(num_frames=4, downscale=8, steps=40, period=15, batch=512, log_every=5, device="cpu",
                  anchor_crfs=(), compressor="quantize", settings={"bits": 4}, checkpoint_every=10,
                  cache_dir=str(tmp_path / "cache"), out_dir=str(tmp_path / "run"))
    cfg = nvpkit.GuideConfig(**common)
    with pytest.raises(_Crash):
        nvpkit.run_experiment(cfg, _CrashingPlot(arm=1, step=25))  # the baseline is cached, the guided arm at 20
    before = nvpkit.provenance.numeric_code()
    monkeypatch.setattr(nvpkit.provenance, "numeric_hash", lambda: "0123456789abcdef")  # a fix in the model, say
    after = nvpkit.provenance.numeric_code()
    with pytest.raises(FileExistsError, match="guided.pt' was trained by other code .*numeric_sha256_16 .* -> "
                                              "0123456789abcdef.*allow_code_change=True"):
        nvpkit.run_experiment(cfg)  # before anything trains: the cached arm is still the old code's
    with pytest.warns(UserWarning, match="resuming at step 20 a run trained by other code"):
        results = nvpkit.run_experiment(nvpkit.GuideConfig(**common, allow_code_change=True))
    changes = results.provenance["code_changes"]
    assert changes == {"quantize guidance": [{"step": 20, "from": before, "to": after}],
                       "no guidance": [{"step": 40, "from": before, "to": after}]}  # the cached arm
    assert nvpkit.experiments.Results.load(tmp_path / "run" / "results.json").provenance["code_changes"] == changes
    assert results.config["allow_code_change"] and [e["step"] for e in results.events] == [15, 30]


def test_only_the_modules_on_the_training_path_decide_the_code_version(tmp_path, monkeypatch):
    from nvpkit import provenance
    copy = tmp_path / "nvpkit"
    shutil.copytree(Path(provenance.__file__).parent, copy, ignore=shutil.ignore_patterns("__pycache__", "shipped"))
    monkeypatch.setattr(provenance, "_PACKAGE", copy)

    def hashes() -> tuple[str, str]:
        provenance.numeric_hash.cache_clear()
        provenance.source_hash.cache_clear()
        return provenance.numeric_hash(), provenance.source_hash()

    numeric, source = hashes()
    with open(copy / "viz" / "figures.py", "a") as f:
        f.write("\n# a fix to a figure\n")
    assert hashes() == (numeric, hashes()[1]) and hashes()[1] != source
    for module in ("model.py", "compress/codecs.py", "experiments/guidance.py"):
        with open(copy / module, "a") as f:
            f.write("\n# a change of the numbers\n")
        assert hashes()[0] != numeric
        numeric = hashes()[0]
    provenance.numeric_hash.cache_clear()
    provenance.source_hash.cache_clear()


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

_PEAK = textwrap.dedent("""
    import sys, nvpkit
    from nvpkit._device import host_memory, host_peak_memory, reset_host_peak
    warm, path, budget = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if warm:
        nvpkit.load_compressed(warm)  # imports and first-use buffers, before measuring
    assert reset_host_peak()
    before = host_memory()
    try:
        nvpkit.load_compressed(path, max_bytes=budget)
        print("loaded")
    except nvpkit.ArtifactError as err:
        print(str(err).replace(chr(10), " "))
    print(host_peak_memory() - before)
""")


def _peak_load(path: Path, budget: int, warm: Path | str = "") -> tuple[str, int]:
    """Load ``path`` in a fresh process under ``budget``: its message and peak resident memory
    growth in bytes (VmHWM after a reset: ``ru_maxrss`` would start from the parent's at the fork)."""
    run = subprocess.run([sys.executable, "-c", _PEAK, str(warm), str(path), str(budget)], capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    message, grown = run.stdout.strip().splitlines()
    return message, int(grown)


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
    warm = tmp_path / "warm.nvp"
    nvpkit.save_compressed(nvpkit.make_compressor("tucker", ranks=(1, 1, 1)).roundtrip(
        nvpkit.NVP(nvpkit.size_sparse_grid(nvpkit.load_config("cpu_s"), 2, 16, 16))), warm)
    message, grown = _peak_load(bomb, nvpkit.compress.artifact.default_budget(), warm)
    values, factors = 1024 * 2048 * 2048, 1 + 1024 + 2048 + 2048
    # the float32 output, the decoded core and factors, a mode product and its unfolding
    assert f"part 'sparse' needs {4 * values + 4 * factors + 3 * 4 * values:,} bytes, over the decode budget" in message
    assert grown < 8 * 2**20
    with pytest.raises(nvpkit.ArtifactError, match="over the decode budget of 1,000 bytes"):
        nvpkit.load_compressed(bomb, max_bytes=1000)


def _grow(path: Path, part: str, extra: int) -> Path:
    """``path`` with ``part``'s payload grown by ``extra`` zero bytes and its length field updated."""
    blob = path.read_bytes()
    (length,) = struct.unpack("<I", blob[8:12])
    manifest = json.loads(blob[12:12 + length])
    names = [p["name"] for p in manifest["parts"]]
    at = names.index(part)
    end = 12 + length + sum(p["length"] for p in manifest["parts"][:at + 1])
    manifest["parts"][at]["length"] += extra
    text = json.dumps(manifest).encode()
    grown = path.with_name("grown-" + path.name)
    with open(grown, "wb") as f:
        f.write(blob[:8] + struct.pack("<I", len(text)) + text + blob[12 + length:end])
        f.truncate(f.tell() + extra)  # zeros, as a sparse file
        f.seek(0, 2)
        f.write(blob[end:])
    return grown


@pytest.mark.parametrize("name", ["quantize", "hevc"])
def test_a_payload_grown_with_its_length_is_refused_before_it_is_read(tmp_path, name):
    model = nvpkit.NVP(nvpkit.size_sparse_grid(nvpkit.load_config("cpu_s"), 4, 32, 48))
    path = tmp_path / "small.nvp"
    settings = {"bits": 4} if name == "quantize" else {"preset": "ultrafast"}
    nvpkit.save_compressed(nvpkit.make_compressor(name, **settings).roundtrip(model), path)
    grown = _grow(path, "sparse", 256 * 2**20)
    message, grown_bytes = _peak_load(grown, 512 * 2**20, warm=path)
    assert f"part 'sparse': {name}: the payload has" in message
    assert grown_bytes < 16 * 2**20


@pytest.mark.parametrize("name,settings", [("quantize", {"bits": 4}), ("quantize", {"bits": 12}),
                                           ("hevc", {"preset": "ultrafast"})])
def test_decoding_stays_within_the_memory_its_codecs_state(tmp_path, name, settings):
    """The reader's estimate (``decode_bytes``: values, model, payloads, the largest part's codec
    work) bounds the measured peak of a real decode, with the budget set to that estimate."""
    config = nvpkit.size_sparse_grid(nvpkit.load_config("nvp_s"), 24, 540, 960)
    model = nvpkit.NVP(config)
    compressor = nvpkit.make_compressor(name, **settings)
    path, warm = tmp_path / "model.nvp", tmp_path / "warm.nvp"
    nvpkit.save_compressed(compressor.roundtrip(model), path)
    nvpkit.save_compressed(compressor.roundtrip(nvpkit.NVP(nvpkit.size_sparse_grid(
        nvpkit.load_config("cpu_s"), 2, 16, 16))), warm)
    codecs = {part: compressor.codec(part) for part in nvpkit.parts.PARTS}
    payloads = path.stat().st_size - 12 - struct.unpack("<I", path.read_bytes()[8:12])[0]
    need = nvpkit.compress.artifact.decode_bytes(config, codecs, payloads)["total"]
    message, grown = _peak_load(path, need, warm)
    assert message == "loaded"
    values = nvpkit.parts.num_values(config)
    assert 8 * values < grown <= need  # at least the decoded values and the model, at most the estimate
    message, _ = _peak_load(path, need - 1, warm)
    assert f"over the decode budget of {need - 1:,} bytes" in message


def test_video_decoders_check_the_size_a_stream_declares_before_decoding():
    codec = nvpkit.compress.HEVC(preset="ultrafast")
    with pytest.raises(nvpkit.compress.CodecError, match="the stream is 32x48, expected 16x16"):
        codec.decode(codec.encode([torch.zeros(3, 48, 32)]), [(3, 16, 16)])  # flat: a stream short enough
    with pytest.raises(nvpkit.compress.CodecError, match="max pixel count"):  # ffmpeg refuses it itself
        codec.decode(codec.encode([torch.zeros(2, 640, 640)]), [(2, 16, 16)])


def test_ffmpeg_children_are_stopped_at_their_time_limit():
    started = time.perf_counter()
    endless = nvpkit.compress.codecs.ffmpeg_chunks(["-f", "lavfi", "-i", "nullsrc=s=16x16", "-f", "null", "-"], [b""], 64,
                                            "endless", timeout=1.0)
    with pytest.raises(nvpkit.compress.CodecError, match="stopped after 1 s"):
        list(endless)
    assert time.perf_counter() - started < 30


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


def _with_manifest(path: Path, change) -> Path:
    """``path`` with its manifest replaced by ``change(manifest_text)`` (JSON text in, bytes out)."""
    blob = path.read_bytes()
    (length,) = struct.unpack("<I", blob[8:12])
    text = change(blob[12:12 + length].decode())
    out = path.with_name("changed.nvp")
    out.write_bytes(blob[:8] + struct.pack("<I", len(text)) + text + blob[12 + length:])
    return out


def test_huge_integers_and_deep_nesting_fail_with_each_readers_error(tmp_path):
    model = nvpkit.NVP(nvpkit.size_sparse_grid(nvpkit.load_config("cpu_s"), 2, 20, 24))
    path = tmp_path / "model.nvp"
    nvpkit.save_compressed(nvpkit.make_compressor("quantize").roundtrip(model), path)
    manifest = json.loads(path.read_bytes()[12:12 + struct.unpack("<I", path.read_bytes()[8:12])[0]])
    side = json.dumps(manifest["parts"][0]["side"][0])
    scale = json.dumps(manifest["config"]["nvp"]["2d_encoding_xy"]["per_level_scale"])
    for change, match in [
            (lambda t: t.replace(side, "9" * 400, 1).encode(), "an integer of 400 digits"),  # a side value
            (lambda t: t.replace(f'"per_level_scale":{scale}', '"per_level_scale":' + "7" * 400, 1).encode(),
             "an integer of 400 digits"),  # in the model config
            (lambda t: t.replace('"format":1', '"format":' + "1" * 5000, 1).encode(), "an integer of 5,000 digits"),
            (lambda t: t.replace('"header":[]', '"header":' + "[" * 5000 + "]" * 5000, 1).encode(),
             "nested deeper than 64"),
            (lambda t: t.replace('"header":[]', '"header":' + "[" * 100 + "]" * 100, 1).encode(),
             "nested deeper than 64"),
            (lambda t: t.encode()[:-1] + b"\xff}", "not UTF-8")]:
        with pytest.raises(nvpkit.ArtifactError, match=match):
            nvpkit.load_compressed(_with_manifest(path, change))
    config = nvpkit.load_config("cpu_s").to_json()
    config["nvp"]["2d_encoding_xy"]["per_level_scale"] = 10**400  # as a dict, past JSON
    with pytest.raises(ValueError, match="per_level_scale: expected float, got <an int of about 401 digits>"):
        nvpkit.load_config(config)
    config["nvp"]["2d_encoding_xy"]["per_level_scale"] = 1.5
    config["nvp"]["network"]["n_neurons"] = 10**5000  # beyond Python's int-string limit
    with pytest.raises(ValueError, match="n_neurons: must be in .* got <an int of about 5,001 digits>"):
        nvpkit.load_config(config)
    file = tmp_path / "config.json"
    file.write_text('{"nvp": {"network": {"n_neurons": ' + "9" * 5000 + "}}}")
    with pytest.raises(ValueError, match="not a readable model config: an integer of 5,000 digits"):
        nvpkit.load_config(file)


def test_unreadable_results_are_named_and_collect_goes_on(tmp_path):
    from nvpkit.sweeps import collect
    good = {"kind": "train", "config": {}, "video": {"name": "clip"}, "arms": {}, "table": []}
    for name, results, record in [("a-good", json.dumps(good), '{"parameters": {"seed": 0}}'),
                                  ("b-deep-results", "[" * 100_000 + "]" * 100_000, '{"parameters": {}}'),
                                  ("c-deep-record", json.dumps(good), '{"parameters": ' + "[" * 3000 + "]" * 3000 + "}"),
                                  ("d-huge-record", json.dumps(good), '{"parameters": {"seed": ' + "9" * 5000 + "}}")]:
        (tmp_path / name).mkdir()
        (tmp_path / name / "results.json").write_text(results)
        (tmp_path / name / "sweep.json").write_text(record)
    with pytest.raises(ValueError, match="results.json.*nested deeper than 64 levels"):
        nvpkit.experiments.Results.load(tmp_path / "b-deep-results" / "results.json")
    with pytest.warns(UserWarning) as caught:
        records = collect(tmp_path)
    assert [r.name for r in records] == ["a-good"]
    assert sorted(str(w.message).split("'")[1] for w in caught) == ["b-deep-results", "c-deep-record",
                                                                     "d-huge-record"]
    assert any("an integer of 5,000 digits" in str(w.message) for w in caught)
