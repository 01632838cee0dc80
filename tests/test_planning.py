"""Checks before training and the plan of a run (nvpkit/experiments/planning.py)."""
import json
import subprocess
import sys

import pytest

import nvpkit
from nvpkit.experiments import ExperimentConfig, GuideConfig, InitConfig, check, planning
from nvpkit import memory
from nvpkit.parts import count_parameters


def guide(tmp_path, **kw):
    settings = dict(num_frames=8, downscale=8, steps=20, period=10, batch=512, device="cpu", anchor_crfs=(),
                    out_dir=str(tmp_path / "out"), cache_dir=str(tmp_path / "cache"))
    return GuideConfig(**{**settings, **kw})


@pytest.fixture
def no_training(monkeypatch):
    """Training fails the test: what these tests refuse must be refused before the first step."""
    def train(*args, **kwargs):
        raise AssertionError("a training step ran")
    monkeypatch.setattr(nvpkit.Trainer, "train", train)
    monkeypatch.setattr(nvpkit.Trainer, "step", train)


def test_a_rank_larger_than_the_sized_grid_fails_before_training(tmp_path, no_training):
    cfg = guide(tmp_path, compressor="tucker", settings={"ranks": (480, 240, 240)})  # 8 frames: t has 8 cells
    with pytest.raises(ValueError, match=r"ranks\[0\]=480 is larger than mode 0 of size 8"):
        nvpkit.run_experiment(cfg)
    init = InitConfig(num_frames=8, downscale=8, steps=20, batch=512, device="cpu", ranks=(9, 4, 4),
                      out_dir=str(tmp_path / "init"))
    with pytest.raises(ValueError, match=r"InitConfig: ranks=\(9, 4, 4\) do not fit"):
        nvpkit.run_experiment(init)


def test_an_encoder_option_x265_refuses_fails_before_training(tmp_path, no_training):
    cfg = guide(tmp_path, settings={"x265_params": "ctu=7"})
    with pytest.raises(ValueError, match="compressor='hevc'.*ctu=7.*max cu size must be 16, 32, or 64"):
        nvpkit.run_experiment(cfg)
    swept = guide(tmp_path, sweep=({"crf": 30}, {"x265_params": "ctu=7"}))
    with pytest.raises(ValueError, match="sweep setting .*ctu=7"):
        nvpkit.run_experiment(swept)


def test_a_model_too_large_for_memory_is_refused_with_the_numbers(tmp_path, no_training, monkeypatch):
    monkeypatch.setattr(planning, "available_host_memory", lambda: 2**20)
    with pytest.raises(ValueError, match=r"needs [\d.]+ GiB of host memory \(uint8 clip .*\), 0.00 GiB available"):
        nvpkit.run_experiment(guide(tmp_path))
    with pytest.raises(ValueError, match="host memory"):
        nvpkit.plan(guide(tmp_path))


def test_memory_needed_follows_the_arms_the_seeds_and_the_mode(tiny_video):
    """How the estimate scales between kinds (the plan-against-run test checks it against a run)."""
    one = planning.memory_needed(ExperimentConfig(num_frames=8, downscale=8, device="cpu"), tiny_video, 123)["host"]
    assert one["uint8 clip"] == 8 * 90 * 160 * 3 and one["step activations"] == 123
    two = planning.memory_needed(GuideConfig(num_frames=8, downscale=8, device="cpu"), tiny_video)["host"]
    assert two["training state of the arms"] == 2 * one["training state of the arms"]
    assert two["decoded models"] == 2 * one["decoded models"]
    seeds = planning.memory_needed(GuideConfig(num_frames=8, downscale=8, device="cpu", seeds=(0, 1)), tiny_video)
    assert seeds["host"]["training state of the arms"] == two["training state of the arms"]  # a seed at a time
    assert seeds["host"]["decoded models"] == 2 * two["decoded models"]  # and the first seed's kept
    ste = planning.memory_needed(GuideConfig(num_frames=8, downscale=8, device="cpu", mode="codec_ste"), tiny_video)
    grids = sum(v for k, v in count_parameters(GuideConfig().model_config(tiny_video)).items() if k in nvpkit.parts.GRIDS)
    assert ste["host"]["codec residual"] == 8 * grids and "codec residual" not in two  # the residual and a copy
    tv = planning.memory_needed(GuideConfig(num_frames=8, downscale=8, device="cpu", rate_weight=1e-4), tiny_video)
    entropy = planning.memory_needed(GuideConfig(num_frames=8, downscale=8, device="cpu", rate_weight=1e-4,
                                                 rate_estimator="entropy"), tiny_video)
    assert tv["host"]["rate term (tv)"] == 32 * grids and not any(k.startswith("rate") for k in two)
    assert entropy["host"]["rate term (entropy)"] == 16 * grids + 4 * 2**14 * 512  # 4 grids' draws
    four = planning.memory_needed(GuideConfig(num_frames=8, downscale=8, device="cpu", compressor="quantize",
                                              settings={"bits": 4}), tiny_video)["host"]["compression"]
    eight = planning.memory_needed(GuideConfig(num_frames=8, downscale=8, device="cpu", compressor="quantize",
                                               settings={"bits": 12}), tiny_video)["host"]["compression"]
    assert eight > four  # 12-bit codes are held as int32 and dequantized in float64


def test_plan_of_a_guided_experiment(tmp_path, tiny_video):
    cfg = guide(tmp_path, compressor="quantize", sweep=({"bits": 6},))
    p = nvpkit.plan(cfg, tiny_video, steps=2)
    assert p.parameters == count_parameters(cfg.model_config(tiny_video))
    assert [s for s, _, _ in p.stages] == ["no guidance", "quantize guidance", "final compression and evaluation",
                                           "RD sweep"]
    assert p.measured["step"] > 0 and p.measured["guidance event"] > 0
    model = cfg.new_trainer(tiny_video).model
    assert p.bits["total"] == cfg.final_compressor().roundtrip(model).bits()["total"]  # shapes alone, exact
    assert p.bpp == p.bits["total"] / tiny_video.num_pixels
    text = repr(p)
    assert "host memory" in text and "total" in text and "quantize guidance" in text
    assert p.to_dict()["total_seconds"] == p.total_seconds


def test_plan_says_when_the_size_depends_on_the_content_and_times_the_anchor(tmp_path, tiny_video):
    p = nvpkit.plan(guide(tmp_path, anchor_crfs=(30, 40)), tiny_video, steps=1)
    assert p.bits is None and "depends on the content (hevc)" in repr(p)
    assert p.measured["anchor frame"] > 0 and p.stages[-1][0] == "anchor"


def test_plan_of_the_initialisation_study(tmp_path, tiny_video):
    cfg = InitConfig(num_frames=8, downscale=8, steps=20, batch=512, device="cpu", out_dir=str(tmp_path))
    p = nvpkit.plan(cfg, tiny_video, steps=1)
    assert p.memory["host"]["training state of the arms"] == len(cfg.arms()) * memory.TRAIN_BYTES * p.parameters["total"]
    assert p.checkpoint_bytes == len(cfg.arms()) * memory.CHECKPOINT_BYTES * p.parameters["total"]  # every arm
    assert p.measured["Tucker init"] > 0 and p.bits is not None


def test_check_returns_the_round_trip_times(tmp_path, tiny_video):
    seconds = check(guide(tmp_path, compressor="quantize"), tiny_video)
    assert list(seconds) == ["compressor='quantize', settings={}"] and all(s > 0 for s in seconds.values())


def test_a_check_that_passed_is_not_repeated_for_the_same_config_and_clip(tmp_path, tiny_video, monkeypatch):
    from nvpkit.compress import Compressor
    calls = []
    roundtrip = Compressor.roundtrip
    monkeypatch.setattr(Compressor, "roundtrip", lambda self, model: calls.append(1) or roundtrip(self, model))
    cfg = guide(tmp_path, compressor="quantize")
    first = check(cfg, tiny_video)
    assert check(cfg, tiny_video) == first and len(calls) == 1  # plan, then the run: one round trip
    check(guide(tmp_path, compressor="quantize", seed=1), tiny_video)
    changed = tiny_video.frames.copy()
    changed[0, 0, 0, 0] ^= 1
    check(cfg, nvpkit.Video(changed, name=tiny_video.name))
    assert len(calls) == 3  # another seed's initial grids, a clip with one other pixel: checked again


def test_plan_over_seeds_counts_every_seed(tmp_path, tiny_video):
    one = nvpkit.plan(guide(tmp_path, compressor="quantize"), tiny_video, steps=1)
    three = nvpkit.plan(guide(tmp_path, compressor="quantize", seeds=(0, 1, 2)), tiny_video, steps=1)
    assert three.checkpoint_bytes == 3 * one.checkpoint_bytes
    assert [s for s, _, _ in three.stages] == [s for s, _, _ in one.stages]
    assert all(what.endswith("x 3 seeds") for _, _, what in three.stages)


def test_check_all_reads_the_first_frames_but_checks_ranks_against_the_whole_clip(tmp_path, no_training):
    from nvpkit.experiments import check_all
    fits = guide(tmp_path, num_frames=16, compressor="tucker", settings={"ranks": (12, 4, 4)})  # t = 16 > 12 > 8
    check_all([fits], frames=8)
    with pytest.raises(ValueError, match=r"ranks\[0\]=20 is larger than mode 0 of size 16"):
        check_all([guide(tmp_path, num_frames=16, compressor="tucker", settings={"ranks": (20, 4, 4)})], frames=8)
    with pytest.raises(ValueError, match="max cu size"):
        check_all([fits, guide(tmp_path, num_frames=16, settings={"x265_params": "ctu=7"})], frames=8)


@pytest.mark.parametrize("cls, batch", [(ExperimentConfig, 16_384), (GuideConfig, 1024), (InitConfig, 1024)])
def test_auto_batch_on_the_cpu_is_the_kinds(cls, batch, tmp_path, tiny_video):
    cfg = cls(num_frames=8, downscale=8, device="cpu", out_dir=str(tmp_path))
    assert cfg.batch == "auto" and cfg.train_config().batch == batch
    chosen, why = planning.choose_batch(cfg, tiny_video)
    assert chosen.batch == batch and why == f"auto: {batch:,} on the CPU"
    assert planning.choose_batch(chosen, tiny_video) == (chosen, "given")
    assert nvpkit.GuideConfig.from_params({"batch": "4096"}, device="cpu").batch == 4096  # papermill's text
    with pytest.raises(ValueError, match="batch='big' is not allowed; use an int >= 1 or 'auto'"):
        cls(batch="big", device="cpu")


def test_fit_batch_takes_the_published_batch_when_it_fits():
    published = 1_245_184
    assert planning.fit_batch(per_pixel=1000, budget=2 * published * 1000)[0] == published
    batch, why = planning.fit_batch(per_pixel=1000, budget=published * 1000)  # 90% of it usable: less
    assert batch == int(0.9 * published) // 16_384 * 16_384 == 1_114_112
    assert batch % 16_384 == 0 and "the largest multiple of 16,384 that fits" in why and "1,245,184" in why
    with pytest.raises(ValueError, match="batch='auto'.*16,384 pixels.*smaller batch"):
        planning.fit_batch(per_pixel=1000, budget=10_000_000)


def test_the_plan_notes_runs_far_from_the_published_pixels():
    assert planning.pixels_note(144_700, 1_245_184) is None
    assert planning.pixels_note(144_700 // 5, 1_245_184) is None  # within a factor of 10
    note = planning.pixels_note(25_000, 1024)
    assert "25,000 x 1,024 = 25,600,000 pixels" in note and "0.000142 times" in note


def test_a_cgroup_limit_counts_beside_memavailable(tmp_path, tiny_video, no_training, monkeypatch):
    """A container's or job's memory limit (cgroup v2 or v1, files given by path) is what a run may
    use when it is less than the machine's MemAvailable; a run over it is refused before training."""
    from nvpkit import _device

    job = tmp_path / "v2" / "slurm" / "job_7"
    job.mkdir(parents=True)
    (job / "memory.max").write_text("1073741824\n")
    (job / "memory.current").write_text("268435456\n")
    assert _device.cgroup_available(tmp_path / "v2", "/slurm/job_7") == 805_306_368
    (job / "memory.max").write_text("max\n")
    assert _device.cgroup_available(tmp_path / "v2", "/slurm/job_7") is None
    v1 = tmp_path / "v1" / "memory"
    v1.mkdir(parents=True)
    (v1 / "memory.limit_in_bytes").write_text(str(2 * 2**30))
    (v1 / "memory.usage_in_bytes").write_text(str(2**29))
    assert _device.cgroup_available(tmp_path / "v1", "/") == 3 * 2**29
    (v1 / "memory.limit_in_bytes").write_text("9223372036854771712")  # v1's "no limit"
    assert _device.cgroup_available(tmp_path / "v1", "/") is None

    monkeypatch.setattr(_device, "cgroup_available", lambda *args, **kwargs: 2**20)
    assert _device.available_host_memory() == 2**20
    with pytest.raises(ValueError, match=r"needs .* GiB of host memory .* 0\.00 GiB available"):
        check(guide(tmp_path), tiny_video)


_RUN = """
import ctypes, gc, json, sys, nvpkit
from nvpkit._device import host_memory, host_peak_memory, reset_host_peak
cfg = nvpkit.GuideConfig(**json.loads(sys.argv[1]))
video = cfg.load_video()
plan = nvpkit.plan(cfg, video, steps=10)
gc.collect()
ctypes.CDLL(None).malloc_trim(0)  # the plan's freed heap back to the system: the run starts from the same place
assert reset_host_peak()
before = host_memory()
nvpkit.run_experiment(cfg, video=video)
print(json.dumps({"plan": plan.to_dict(), "grown": host_peak_memory() - before}))
"""


def test_a_plan_is_within_a_factor_of_two_of_the_run_it_plans(tmp_path):
    """Each stage's time, a guidance event's and the host memory, planned and then measured on the run
    itself, in one fresh process (codec_ste: its steps carry the residual, its events the round trip
    and the probe passes)."""
    settings = dict(num_frames=8, downscale=4, steps=60, period=20, batch=4096, mode="codec_ste",
                    compressor="quantize", settings={"bits": 6}, anchor_crfs=(), log_every=20, device="cpu",
                    checkpoint_every=1000, probe_pixels=2**16, out_dir=str(tmp_path / "run"),
                    cache_dir=str(tmp_path / "cache"))
    run = subprocess.run([sys.executable, "-c", _RUN, json.dumps(settings)], capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    p, grown = out["plan"], out["grown"]
    results = nvpkit.experiments.Results.load(tmp_path / "run" / "results.json")
    planned = {stage: seconds for stage, seconds, _ in p["stages"]}
    trained = {arm: a["train_seconds"] for arm, a in results.arms.items()}
    measured = {"no guidance": trained["no guidance"], "quantize guidance": trained["quantize guidance"],
                "final compression and evaluation": results.seconds - sum(trained.values())}
    for stage, seconds in measured.items():
        assert 0.5 <= planned[stage] / seconds <= 2, (stage, planned[stage], seconds)
    events = [e["seconds"] for e in results.events]
    assert len(events) == 3 and 0.5 <= p["measured"]["guidance event"] / (sum(events) / len(events)) <= 2
    needed = sum(p["memory"]["host"].values()) - p["memory"]["host"]["uint8 clip"]  # the clip was loaded before
    assert 0.5 <= needed / grown <= 2, (p["memory"]["host"], grown)
