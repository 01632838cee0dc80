import csv
import importlib.metadata
import json

import numpy as np
import pytest
import torch

import nvpkit
from nvpkit.compress import Compressor, Quantize
from nvpkit.experiments import Results
from nvpkit.experiments.cache import GUIDED_KEYS, arm_key
from nvpkit.quantization import fake_quantize


def trainer_for(video, steps=30, **kw):
    return nvpkit.Trainer.from_config(video, "cpu_s", steps=steps, batch=1024, device="cpu", log_every=10, **kw)


def coarse():
    """Quantize the grids to 3 bits: easy to see in the parameters."""
    return Compressor(planes=Quantize(3), sparse=Quantize(3))


def test_guidance_reloads_every_period_and_keeps_the_optimizer(tiny_video):
    trainer = trainer_for(tiny_video)
    guidance = nvpkit.Guidance(coarse(), period=10, video=tiny_video, probe_pixels=5000)
    params = [id(p) for p in trainer.model.parameters()]
    seen = {}

    def check(t):
        if t.step_count == 20:  # right after the second event: every sparse channel sits on 8 levels
            seen["levels"] = [len(torch.unique(c)) for c in t.model.sparse.embeddings.unbind(-1)]
            seen["state"] = len(t.optimizer.state)

    trainer.train(callbacks=[guidance, check], progress=False)
    assert [e["step"] for e in guidance.events] == [10, 20]  # none at the last step (30)
    assert all(n <= 8 for n in seen["levels"]) and seen["state"] > 0
    assert [id(p) for p in trainer.model.parameters()] == params
    event = guidance.events[0]
    assert set(event) == {"step", "bits", "bpp", "psnr_before", "psnr_after", "reason", "seconds"}
    assert [e["reason"] for e in guidance.events] == ["period", "period"]
    assert event["bpp"] == event["bits"] / tiny_video.num_pixels
    assert all(e["psnr_after"] != e["psnr_before"] for e in guidance.events)


def test_reset_optimizer_clears_the_moments(tiny_video):
    trainer = trainer_for(tiny_video, steps=11)
    seen = []
    guidance = nvpkit.Guidance(coarse(), period=10, video=tiny_video, reset_optimizer=True, probe_pixels=1000)
    trainer.train(callbacks=[guidance, lambda t: seen.append(len(t.optimizer.state))], progress=False)
    assert seen[9] == 0 and seen[8] > 0 and seen[10] > 0  # cleared at the event, rebuilt by the next step


def test_float32_guidance_changes_nothing(tiny_video):
    plain, guided = trainer_for(tiny_video, steps=20), trainer_for(tiny_video, steps=20)
    plain.train(progress=False)
    lossless = Compressor()  # everything float32
    guided.train(callbacks=[nvpkit.Guidance(lossless, 5, tiny_video, probe_pixels=1000)], progress=False)
    for a, b in zip(plain.model.parameters(), guided.model.parameters()):
        assert torch.equal(a, b)


def test_straight_through_mode(tiny_video):
    trainer = trainer_for(tiny_video, steps=10)
    guidance = nvpkit.Guidance(Compressor(), 5, tiny_video, mode="straight_through", probe_pixels=1000)
    guidance.attach(trainer)
    assert trainer.model.sparse.fake_quant_bits == 8 and trainer.model.xy.fake_quant_bits == 8
    coords, steps, target = trainer.sampler(256)
    trainer.model.zero_grad()
    torch.nn.functional.mse_loss(trainer.model(coords, steps), target).backward()
    assert all(level.grad.abs().sum() > 0 for level in trainer.model.xy.levels)
    level0 = trainer.model.xy.lookup_levels()[0]  # [F, R, R]
    assert len(torch.unique(level0[0])) <= 256
    guidance.detach(trainer)
    assert trainer.model.xy.lookup_levels()[0] is trainer.model.xy.levels[0]


def test_fake_quantize_levels_and_straight_through_gradient():
    x = torch.randn(50, 3, requires_grad=True)
    q = fake_quantize(x, 2, dims=(0,))
    assert all(len(torch.unique(q[:, c].detach().round(decimals=4))) <= 4 for c in range(3))
    assert (q - x).abs().max() <= (x.max(0).values - x.min(0).values).max() / 6 + 1e-6
    q.sum().backward()
    assert torch.equal(x.grad, torch.ones_like(x))


def test_probe_over_all_pixels_is_the_mse_psnr(tiny_video):
    model = trainer_for(tiny_video).model
    probe = nvpkit.PixelProbe(tiny_video, pixels=10**9)
    frames = torch.stack(list(nvpkit.render(model, tiny_video.num_frames, tiny_video.height, tiny_video.width)))
    mse = (frames - torch.from_numpy(tiny_video.frames).float() / 255).square().mean()
    assert probe.psnr(model) == pytest.approx(10 * torch.log10(1 / mse).item(), abs=1e-3)


@pytest.mark.parametrize("kwargs,match", [
    ({"period": 0}, "period=0 is not allowed"), ({"period": 50, "steps": 50}, "smaller than steps"),
    ({"compressor": "gzip"}, "compressor='gzip'"), ({"settings": {"crf": 99}}, "crf=99"),
    ({"mode": "always"}, "mode='always'"), ({"batch": -1}, "batch=-1 is not allowed"),
    ({"rate_weight": -1e-4}, "rate_weight=-0.0001"), ({"rate_weight": float("inf")}, "rate_weight=inf"),
    ({"rate_weight": True}, "rate_weight=True"), ({"rate_estimator": "l1"}, "rate_estimator='l1'"),
    ({"mode": "none"}, "mode='none' with rate_weight=0"),
])
def test_bad_guide_config(kwargs, match):
    with pytest.raises(ValueError, match=match):
        nvpkit.GuideConfig(**kwargs)


def test_from_params_turns_a_parameters_cell_into_a_config():
    cell = {"compressor": "h264", "crf": 25, "qscale": "2,4,4", "preset": "slow", "framerate": 25,
            "sweep_crfs": "20,30", "steps": "100", "period": 50, "anchor_crfs": "20,30", "overwrite": "False",
            "In": [], "unrelated": object()}
    cfg = nvpkit.GuideConfig.from_params(cell)
    assert cfg.settings == {"crf": 25, "qscale": (2, 4, 4), "framerate": 25, "preset": "slow"}
    assert cfg.sweep == ({"crf": 20}, {"crf": 30}) and cfg.steps == 100 and cfg.anchor_crfs == (20, 30)
    assert cfg.overwrite is False and cfg.arm_names() == ["no guidance", "h264 guidance"]
    av1 = nvpkit.GuideConfig.from_params({**cell, "compressor": "av1", "crf": 40})
    assert "preset" not in av1.settings and av1.settings["crf"] == 40  # not a setting of the av1 preset
    tucker = nvpkit.GuideConfig.from_params({"compressor": "tucker", "ranks": "480,240,240", "sweep_ranks": "0.5",
                                             "steps": 100, "period": 50})
    assert tucker.settings["ranks"] == (480, 240, 240) and tucker.sweep == ({"ranks": 0.5},)
    init = nvpkit.InitConfig.from_params({"ranks": "4,8,8", "pull_grids": "sparse,xy", "decay": "true"})
    assert init.ranks == (4, 8, 8) and init.pull_grids == ("sparse", "xy") and init.decay is True
    with pytest.raises(ValueError, match="qscale"):
        nvpkit.GuideConfig.from_params({**cell, "qscale": "a,b"})
    with pytest.raises(ValueError, match="GuideConfig.steps='many' is not allowed"):
        nvpkit.GuideConfig.from_params({**cell, "steps": "many"})
    with pytest.raises(ValueError, match="sweep one setting at a time"):
        nvpkit.GuideConfig.from_params({**cell, "sweep_qscales": "2,3"})


def test_sweep_ladder_moves_several_settings_per_point():
    ladder = "crf=15 qscale=1,2,2; crf=27  qscale=3,5,5 ;"
    expected = ({"crf": 15, "qscale": (1, 2, 2)}, {"crf": 27, "qscale": (3, 5, 5)})
    assert nvpkit.experiments.parse_ladder(ladder, "sweep_ladder") == expected
    assert nvpkit.experiments.parse_ladder(list(expected), "sweep_ladder") == expected
    assert nvpkit.experiments.parse_ladder("", "sweep_ladder") == ()
    cfg = nvpkit.GuideConfig.from_params({"sweep_crfs": "20,30", "sweep_ladder": ladder, "steps": 100, "period": 50})
    assert cfg.sweep == expected  # the ladder replaces the one-setting list
    point = cfg.compressors()["sweep setting {'crf': 27, 'qscale': (3, 5, 5)}"]
    assert point.sparse.crf == 27 and [c.qscale for c in point.planes.values()] == [3, 5, 5]
    empty = nvpkit.GuideConfig.from_params({"sweep_crfs": "20,30", "sweep_ladder": "", "steps": 100, "period": 50})
    assert empty.sweep == ({"crf": 20}, {"crf": 30})
    tucker = nvpkit.GuideConfig.from_params({"compressor": "tucker", "steps": 100, "period": 50,
                                             "sweep_ladder": "ranks=0.4 storage=uint8; ranks=0.8 storage=float16"})
    assert tucker.sweep == ({"ranks": 0.4, "storage": "uint8"}, {"ranks": 0.8, "storage": "float16"})


@pytest.mark.parametrize("ladder, match", [
    ("crf=15 crf=16", "'crf=15 crf=16' is not a list of distinct settings"),
    ("crf=15 qscale", "'crf=15 qscale' is not a list of distinct settings"),
    ("crf=15; =3", "'=3' is not a list"), (7, "sweep_ladder=7 is not allowed"),
    ("crf=15 ranks=0.5", "sweep_ladder sets ranks, not settings of compressor='hevc'"),
    ("crf=15 qscale=1,2,2; crf=27 qscale=0,5,5", "qscale"),  # checked by the compressor, before training
])
def test_bad_sweep_ladder(ladder, match):
    with pytest.raises(ValueError, match=match):
        nvpkit.GuideConfig.from_params({"sweep_ladder": ladder, "steps": 100, "period": 50})


def test_bd_metrics():
    anchor = [{"bpp": b, "psnr": p} for b, p in [(1, 30), (2, 33), (3, 35), (4, 36)]]
    same = nvpkit.bd_metrics(anchor, anchor)
    assert same["bd_rate"] == pytest.approx(0, abs=1e-6) and same["bd_psnr"] == pytest.approx(0, abs=1e-6)
    cheaper = [{"bpp": r["bpp"] * 0.9, "psnr": r["psnr"]} for r in anchor]
    assert nvpkit.bd_metrics(anchor, cheaper)["bd_rate"] == pytest.approx(-10, abs=0.5)
    apart = [{"bpp": r["bpp"], "psnr": r["psnr"] + 20} for r in anchor]
    result = nvpkit.bd_metrics(anchor, apart)
    assert result["bd_rate"] is None and "PSNR ranges overlap" in result["notes"][0]
    steep = [{"bpp": 10 + 0.01 * i, "psnr": 30 + 3 * i} for i in range(4)]  # the sweep barely moves the rate
    result = nvpkit.bd_metrics(steep, [{**r, "psnr": r["psnr"] + 1} for r in steep])
    assert result["bd_psnr"] is None and "span" in result["notes"][-1]
    shown = nvpkit.format_table(Results("guide", {}, {}, {}, [], bd=result))
    assert "BD-rate" in shown and "no BD-PSNR" in shown
    dips = [{"bpp": b, "psnr": p} for b, p in [(1, 30), (2, 29), (3, 35)]]  # a curve that falls with rate
    result = nvpkit.bd_metrics(anchor, dips)
    assert result["bd_rate"] is None and result["bd_psnr"] is None and "does not rise" in result["notes"][0]


def test_bd_metrics_by_pchip_as_the_common_test_conditions():
    """PCHIP BD-rate beside Akima's, checked against its definition computed here with scipy: the mean
    log-rate difference over the common PSNR range, each curve's log rate a PCHIP of its PSNR."""
    from scipy.integrate import quad
    from scipy.interpolate import PchipInterpolator
    anchor = [{"bpp": b, "psnr": p} for b, p in [(0.1, 30.0), (0.2, 33.1), (0.4, 35.9), (0.8, 38.2)]]
    test = [{"bpp": b, "psnr": p} for b, p in [(0.09, 30.4), (0.17, 33.3), (0.36, 36.4), (0.75, 38.5)]]
    result = nvpkit.bd_metrics(anchor, test)
    curve = {name: PchipInterpolator([r["psnr"] for r in rows], np.log([r["bpp"] for r in rows]))
             for name, rows in (("anchor", anchor), ("test", test))}
    lo, hi = 30.4, 38.2  # the common PSNR range
    mean = quad(lambda q: curve["test"](q) - curve["anchor"](q), lo, hi)[0] / (hi - lo)
    assert result["bd_rate_pchip"] == pytest.approx(100 * (np.exp(mean) - 1), abs=1e-3)
    assert result["method"] == "akima" and result["bd_rate"] != result["bd_rate_pchip"]
    cheaper = [{"bpp": r["bpp"] * 0.9, "psnr": r["psnr"]} for r in anchor]
    both = nvpkit.bd_metrics(anchor, cheaper)
    assert both["bd_rate"] == pytest.approx(-10, abs=1e-6) and both["bd_rate_pchip"] == pytest.approx(-10, abs=1e-6)
    shown = nvpkit.format_table(Results("guide", {}, {}, {}, [], bd=result))
    assert f"BD-rate {result['bd_rate']:+.2f} %" in shown and "(Akima)" in shown
    assert f"BD-rate {result['bd_rate_pchip']:+.2f} %" in shown and "(PCHIP)" in shown


def _compressai_curve(path, metric):
    """A results file read as CompressAI's plotting utility reads one (compressai.utils.plot:
    ``results`` with ``bpp`` and the metric; MS-SSIM turned into dB; the name from the file)."""
    data = json.loads(path.read_text())
    assert "results" in data and "bpp" in data["results"] and metric in data["results"]
    ys = data["results"][metric]
    if metric == "ms-ssim":
        ys = list(-10 * np.log10(1 - np.array(ys)))
    return {"name": data.get("name", path.name.split(".")[0]), "xs": data["results"]["bpp"], "ys": ys}


def test_experiment_caches_the_baseline_and_guards_out_dir(tmp_path, capsys):
    common = dict(num_frames=4, downscale=8, steps=20, batch=512, log_every=10, device="cpu", anchor_crfs=(30,),
                  cache_dir=str(tmp_path / "cache"), compressor="quantize", settings={"bits": 4},
                  sweep=({"bits": 3}, {"bits": 5}, {"bits": 8}))
    first = nvpkit.run_experiment(nvpkit.GuideConfig(period=10, out_dir=str(tmp_path / "a"), **common))
    saved = json.loads((tmp_path / "a" / "results.json").read_text())
    assert set(saved) == set(Results.load(tmp_path / "a" / "results.json").to_dict())
    for key in ("config", "video", "arms", "events", "final", "table", "rd", "anchor", "bd", "provenance"):
        assert saved[key] or key in ("anchor", "events")
    assert {"nvpkit", "source_sha256_16", "torch", "python", "device"} <= set(saved["provenance"])
    assert saved["provenance"]["libraries"]["tensorly"] == importlib.metadata.version("tensorly")
    codecs = saved["provenance"]["codecs"]
    assert codecs["ffmpeg"].startswith("ffmpeg version ") and saved["anchor"][0]["command"].startswith("ffmpeg ")
    stream = nvpkit.compress.HEVC(preset="ultrafast").encode([torch.rand(2, 16, 16)]).payload
    assert f" - {codecs['libx265']}:".encode() in stream  # the version x265 writes into its own stream
    assert [e["step"] for e in saved["events"]] == [10]
    assert [row["method"] for row in saved["table"]] == ["no guidance", "quantize guidance"]
    with open(tmp_path / "a" / "table.csv", newline="") as f:  # the table as CSV, every number as saved
        assert [{k: float(v) if k != "method" else v for k, v in r.items()} for r in csv.DictReader(f)] == saved["table"]
    curves = {p.stem: _compressai_curve(p, "psnr") for p in (tmp_path / "a" / "rd").glob("*.json")}
    assert sorted(c["name"] for c in curves.values()) == sorted([*saved["rd"], nvpkit.compress.anchor_label(
        **saved["anchor_settings"])])
    assert curves["no-guidance"]["xs"] == [r["bpp"] for r in saved["rd"]["no guidance"]]
    assert curves["no-guidance"]["ys"] == [r["psnr"] for r in saved["rd"]["no guidance"]]
    assert saved["table"][0]["delta_psnr"] == 0
    capsys.readouterr()
    second = nvpkit.run_experiment(nvpkit.GuideConfig(period=5, out_dir=str(tmp_path / "b"), **common))
    assert "loaded from the cache" in capsys.readouterr().out
    base = "no guidance"
    assert second.final[base]["psnr"] == first.final[base]["psnr"]
    assert len(list((tmp_path / "cache").iterdir())) == 1
    with pytest.raises(FileExistsError, match="other parameters"):
        nvpkit.run_experiment(nvpkit.GuideConfig(period=5, out_dir=str(tmp_path / "a"), **common))


def test_live_plot_throttles_and_saves(tmp_path, tiny_video):
    live = nvpkit.LivePlot(["a", "b"], min_interval=3600, widget=False)
    trainer = trainer_for(tiny_video, steps=30)
    events = []
    trainer.train(callbacks=[live.callback("a", events)], progress=False)
    loss, psnr, marks = live._traces("a")
    assert live.redraws == 2  # the first log point, then (throttled) only the last step
    assert list(loss.x) == [10, 20, 30]
    live.update("a", trainer.history, [{"step": 20, "psnr_before": 20.0, "psnr_after": 19.0, "bpp": 1.0}])
    assert list(psnr.x) == [10, 20, 30] and list(marks.y)[:2] == [20.0, 19.0]
    assert live.save(tmp_path, "c") == ["c.html", "c.png"]
    assert (tmp_path / "c.png").stat().st_size > 1000 and b"plotly" in (tmp_path / "c.html").read_bytes()[:5000]


# -- codec in the loop with a straight-through gradient ----------------------------------------------------

def test_codec_ste_between_refreshes_trains_theta_through_the_decoded_values(tiny_video):
    """Until its next refresh a codec_ste arm trains like a model whose grids read θ + r, with
    r = decode(encode(θ₀)) − θ₀ taken here from the round trip's decoded model, not from Guidance."""
    guided, reference = trainer_for(tiny_video, steps=12), trainer_for(tiny_video, steps=12)
    decoded = coarse().roundtrip(reference.model).to_model()
    for name, grid in reference.model.grids().items():
        grid.residual = [d.detach() - p.detach() for d, p in zip(decoded.grids()[name].parameters(), grid.parameters())]
    assert any(r.abs().max() > 0 for g in reference.model.grids().values() for r in g.residual)
    reference.train(progress=False)
    guidance = nvpkit.Guidance(coarse(), 100, tiny_video, mode="codec_ste", probe_pixels=1000)  # no refresh in 12
    guidance.attach(guided)
    guided.train(callbacks=[guidance], progress=False)
    assert [e["step"] for e in guidance.events] == [0]
    for a, b in zip(reference.model.parameters(), guided.model.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


def test_codec_ste_forward_sees_decoded_values_and_passes_the_gradient_straight(tiny_video):
    trainer = trainer_for(tiny_video, steps=10)
    trainer.train(progress=False)
    guidance = nvpkit.Guidance(coarse(), 5, tiny_video, mode="codec_ste", probe_pixels=1000)
    theta = [p.detach().clone() for p in trainer.model.parameters()]
    guidance.attach(trainer)
    assert all(torch.equal(a, b) for a, b in zip(theta, trainer.model.parameters()))  # stored values stay θ
    decoded = coarse().roundtrip(trainer.model).to_model()  # θ + r as a plain model
    coords, steps, target = trainer.sampler(512)
    torch.testing.assert_close(trainer.model(coords, steps), decoded(coords, steps), rtol=0, atol=1e-5)
    for model in (trainer.model, decoded):
        model.zero_grad()
        torch.nn.functional.mse_loss(model(coords, steps), target).backward()
    for a, b in zip(trainer.model.parameters(), decoded.parameters()):  # the gradient at θ + r, applied to θ
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-4, atol=1e-7)
    guidance.detach(trainer)
    assert all(g.residual is None for g in trainer.model.grids().values())


def test_codec_ste_refreshes_the_residual_every_period(tiny_video):
    trainer = trainer_for(tiny_video, steps=31)
    guidance = nvpkit.Guidance(coarse(), 10, tiny_video, mode="codec_ste", probe_pixels=1000)
    guidance.attach(trainer)
    seen = []
    trainer.train(callbacks=[guidance, lambda t: seen.append(t.model.sparse.residual[0].clone())], progress=False)
    assert [e["step"] for e in guidance.events] == [0, 10, 20, 30]
    changed = [i + 1 for i in range(1, len(seen)) if not torch.equal(seen[i], seen[i - 1])]
    assert changed == [10, 20, 30]
    assert all(e["psnr_after"] != e["psnr_before"] for e in guidance.events)
    assert "residual" in trainer.extra  # saved with every checkpoint: a resumed run goes on exactly


def test_codec_ste_refreshes_exactly_when_the_grids_have_drifted(tiny_video):
    """With ``drift``, a refresh follows every step after which the grids' relative L2 change since
    the last refresh exceeds it (tracked here from the parameters alone) and every ``period``."""
    trainer = trainer_for(tiny_video, steps=40, lr=3e-2)
    guidance = nvpkit.Guidance(coarse(), 25, tiny_video, mode="codec_ste", probe_pixels=1000, drift=0.5)
    guidance.attach(trainer)
    grids = lambda t: [p.detach().clone() for g in t.model.grids().values() for p in g.parameters()]  # noqa: E731
    reference, expected = grids(trainer), []

    def before(t):  # runs before guidance at each step: would this step refresh?
        now = grids(t)
        change = sum((a - b).square().sum() for a, b in zip(now, reference)) ** 0.5
        size = sum(b.square().sum() for b in reference) ** 0.5
        if t.step_count < 40 and (t.step_count == 25 or change / size > 0.5):
            expected.append(t.step_count)

    def after(t):  # a refresh at this step makes the current grids the reference
        nonlocal reference
        if guidance.events[-1]["step"] == t.step_count:
            reference = grids(t)

    trainer.train(callbacks=[before, guidance, after], progress=False)
    steps = [e["step"] for e in guidance.events]
    assert steps == [0, *expected] and len(expected) >= 3  # drift refreshes happened, and only those
    assert {e["reason"] for e in guidance.events[1:]} == {"drift", "period"}
    assert guidance.events[0]["reason"] == "start"


def test_codec_ste_from_a_later_step_trains_plainly_first(tiny_video):
    plain, later = trainer_for(tiny_video, steps=30), trainer_for(tiny_video, steps=30)
    plain.train(12, progress=False)
    guidance = nvpkit.Guidance(coarse(), 7, tiny_video, mode="codec_ste", probe_pixels=1000, codec_from=12)
    guidance.attach(later)
    assert "residual" not in later.extra and all(g.residual is None for g in later.model.grids().values())
    later.train(12, callbacks=[guidance], progress=False)
    assert later.history["loss"] == plain.history["loss"]  # no codec before step 12
    later.train(callbacks=[guidance], progress=False)
    assert [(e["step"], e["reason"]) for e in guidance.events] == [(12, "start"), (19, "period"), (26, "period")]
    with pytest.raises(ValueError, match="options of mode='codec_ste'"):
        nvpkit.Guidance(coarse(), 7, tiny_video, mode="reload", drift=0.05)
    with pytest.raises(ValueError, match="codec_from=1.0 is not allowed"):
        nvpkit.GuideConfig(mode="codec_ste", codec_from=1.0)


def test_codec_ste_with_drift_resumes_exactly(tiny_video, tmp_path):
    def run(trainer, steps=None):
        guidance = nvpkit.Guidance(coarse(), 9, tiny_video, mode="codec_ste", probe_pixels=1000, drift=0.3)
        guidance.attach(trainer)
        trainer.train(steps, callbacks=[guidance], progress=False)
        return guidance

    straight = trainer_for(tiny_video, steps=24, lr=3e-2)
    events = run(straight).events
    first = trainer_for(tiny_video, steps=24, lr=3e-2)
    run(first, 11)
    first.save(tmp_path / "c.pt")
    resumed = nvpkit.Trainer.load(tmp_path / "c.pt", tiny_video)
    assert "drift_reference" in resumed.extra
    later = run(resumed).events
    assert resumed.history["loss"] == straight.history["loss"]
    assert [e["step"] for e in later] == [e["step"] for e in events if e["step"] > 11]


def _codec_ste(trainer, steps=None):
    """Train ``trainer`` under codec_ste guidance (3-bit codes, refreshed every 7 steps): ``steps``
    more, or to its end."""
    guidance = nvpkit.Guidance(coarse(), 7, trainer.video, mode="codec_ste", probe_pixels=1000)
    guidance.attach(trainer)
    trainer.train(steps, callbacks=[guidance], progress=False)


@pytest.mark.parametrize("saved", [torch.float32, torch.float64])
def test_codec_ste_resumes_with_its_residual(saved, tiny_video, tmp_path):
    """A resumed run ends as an uninterrupted one; a residual saved in another dtype (float64 here,
    as a CUDA run's residual loads on the CPU) is moved to the grids' dtype and device first."""
    straight = trainer_for(tiny_video, steps=20)
    _codec_ste(straight)
    first = trainer_for(tiny_video, steps=20)
    _codec_ste(first, 10)
    first.extra["residual"] = {g: [r.to(saved) for r in rs] for g, rs in first.extra["residual"].items()}
    first.save(tmp_path / "c.pt")
    resumed = nvpkit.Trainer.load(tmp_path / "c.pt", tiny_video)
    _codec_ste(resumed)
    assert all(r.dtype == torch.float32 for rs in resumed.extra["residual"].values() for r in rs)
    assert resumed.history["loss"] == straight.history["loss"]


def test_codec_ste_refuses_a_saved_residual_that_does_not_fit(tiny_video):
    trainer = trainer_for(tiny_video, steps=20)
    _codec_ste(trainer, 3)
    trainer.extra["residual"]["sparse"] = [torch.zeros(1)]  # it would broadcast over the grid
    with pytest.raises(ValueError, match="residual of grid 'sparse' does not fit"):
        nvpkit.Guidance(coarse(), 7, tiny_video, mode="codec_ste", probe_pixels=1000).attach(trainer)


def test_tensorboard_logs_the_curves_events_and_final_numbers(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    results = nvpkit.run_experiment(nvpkit.GuideConfig(
        num_frames=4, downscale=8, steps=20, period=10, batch=512, log_every=5, device="cpu", anchor_crfs=(),
        compressor="quantize", settings={"bits": 4}, sweep=({"bits": 3}, {"bits": 5}, {"bits": 6}), log="tensorboard",
        out_dir=str(tmp_path / "run"), cache_dir=str(tmp_path / "cache")))
    board = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    board.Reload()
    guided = "quantize guidance"
    for arm in ("no guidance", guided):  # every logged point, as the history holds it
        points = board.Scalars(f"{arm}/psnr")
        assert [p.step for p in points] == results.arms[arm]["history"]["step"] == [5, 10, 15, 20]
        assert [p.value for p in points] == pytest.approx(results.arms[arm]["history"]["psnr"], rel=1e-6)
        assert board.Scalars(f"final/{arm}/bpp")[0].value == pytest.approx(results.final[arm]["bpp"], rel=1e-6)
    (event,) = board.Scalars(f"{guided}/event bpp")
    assert event.step == 10 and event.value == pytest.approx(results.events[0]["bpp"], rel=1e-6)
    assert sorted(board.Tags()["tensors"]) == sorted(f"rd/{name}/text_summary" for name in results.rd_curves())
    with pytest.raises(ValueError, match="log='json' is not allowed"):
        nvpkit.GuideConfig(log="json")


@pytest.mark.parametrize("mode", ["reload", "straight_through", "codec_ste"])
def test_rate_weight_zero_leaves_every_mode_as_it_was(mode, tiny_video):
    """λ = 0: no rate term, the guided arm's key and training as without the rate fields; λ > 0
    changes both (so the comparison can fail)."""
    def train(cfg):
        trainer = trainer_for(tiny_video, steps=16)
        guidance = cfg.guidance(tiny_video)
        guidance.compressor = coarse()
        guidance.attach(trainer)
        trainer.train(callbacks=[guidance], progress=False)
        return trainer

    common = dict(mode=mode, steps=16, period=6, probe_pixels=1000)
    off, on = nvpkit.GuideConfig(**common), nvpkit.GuideConfig(**common, rate_weight=1e-3)
    assert off.guided_keys() == GUIDED_KEYS and off.guidance(tiny_video).rate is None
    assert arm_key(off, tiny_video, off.guided_keys()) != arm_key(on, tiny_video, on.guided_keys())
    before = trainer_for(tiny_video, steps=16)
    guidance = nvpkit.Guidance(coarse(), 6, tiny_video, mode=mode, probe_pixels=1000)  # no rate argument at all
    guidance.attach(before)
    before.train(callbacks=[guidance], progress=False)
    assert train(off).history["loss"] == before.history["loss"]
    assert train(on).history["loss"] != before.history["loss"]


def test_mode_none_trains_with_the_rate_term_alone(tiny_video):
    cfg = nvpkit.GuideConfig(mode="none", rate_weight=1e-3, rate_estimator="entropy", steps=20, period=50)
    assert cfg.arm_names() == ["no guidance", "rate term (entropy, λ=0.001)"]
    assert nvpkit.GuideConfig(rate_weight=1e-3).arm_names()[1] == "hevc guidance + rate term (tv, λ=0.001)"
    plain, rated = trainer_for(tiny_video, steps=20), trainer_for(tiny_video, steps=20)
    plain.train(progress=False)
    guidance = cfg.guidance(tiny_video)
    guidance.attach(rated)
    seen = []
    rated.train(callbacks=[guidance, lambda t: seen.append(t.regularizer)], progress=False)
    guidance.detach(rated)
    assert guidance.events == [] and all(r is guidance.rate for r in seen) and rated.regularizer is None
    assert rated.history["loss"] != plain.history["loss"] and "rate" in rated.extra
    with pytest.raises(ValueError, match="mode='none' has no events"):
        guidance.event(rated)
    with pytest.raises(ValueError, match="without a rate term"):
        nvpkit.Guidance(coarse(), 5, tiny_video, mode="none")
