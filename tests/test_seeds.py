"""Seeds as an axis (nvpkit/experiments/seeds.py and the runner, tables and figures over seeds)."""
import json
import math

import pytest

import nvpkit
from nvpkit.experiments import GuideConfig, Results, aggregate, interval, mean_curve, paired, summary

T_975_DF2 = 4.302652729749464
"""The 97.5% quantile of Student's t with 2 degrees of freedom (a table value)."""


def test_summary_and_interval_by_hand():
    s = interval([1.0, 2.0, 4.0])
    mean = 7 / 3
    std = math.sqrt(((1 - mean) ** 2 + (2 - mean) ** 2 + (4 - mean) ** 2) / 2)
    assert s["mean"] == pytest.approx(mean) and s["std"] == pytest.approx(std) and s["n"] == 3
    half = T_975_DF2 * std / math.sqrt(3)
    assert s["low"] == pytest.approx(mean - half) and s["high"] == pytest.approx(mean + half)
    assert summary([None, 5.0]) == {"mean": 5.0, "std": None, "n": 1}
    bpp = 26_891_136 / 921_600  # 29.17875: a naive sum / n gives 29.178749999999997, shown as 29.1787
    assert summary([bpp] * 3) == {"mean": bpp, "std": 0.0, "n": 3}
    assert interval([5.0])["low"] is None and summary([]) == {"mean": None, "std": None, "n": 0}


def test_paired_differences_of_identical_arms_are_zero_with_zero_spread():
    d = paired([30.1, 31.7, 29.9], [30.1, 31.7, 29.9])
    assert d["diffs"] == [0.0, 0.0, 0.0] and d["mean"] == 0.0 and d["std"] == 0.0
    assert d["low"] == d["high"] == 0.0
    assert paired([1.0, None], [2.0, 3.0])["diffs"] == [1.0]  # a pair with a missing value is left out
    with pytest.raises(ValueError, match="2 values against 1"):
        paired([1.0, 2.0], [1.0])


def test_aggregate_equals_a_hand_computation_on_a_fixed_table():
    rows = [{"arm": "a", "seed": 0, "psnr": 30.0, "bpp": 0.1}, {"arm": "b", "seed": 0, "psnr": 31.0, "bpp": 0.2},
            {"arm": "a", "seed": 1, "psnr": 32.0, "bpp": 0.3}, {"arm": "b", "seed": 1, "psnr": 31.0, "bpp": None}]
    out = aggregate(rows, ["arm"], ["psnr", "bpp"])
    assert [r["arm"] for r in out] == ["a", "b"] and [r["n"] for r in out] == [2, 2]
    assert out[0]["psnr"] == 31.0 and out[0]["psnr_std"] == pytest.approx(math.sqrt(2))
    assert out[0]["bpp"] == pytest.approx(0.2) and out[0]["bpp_std"] == pytest.approx(math.sqrt(0.02))
    assert out[1]["psnr_std"] == 0.0 and out[1]["bpp"] == 0.2 and out[1]["bpp_std"] is None
    assert [r["bpp_n"] for r in out] == [2, 1] and [r["psnr_n"] for r in out] == [2, 2]  # the value's own n


def test_a_seeds_table_shows_the_n_each_mean_comes_from(tmp_path):
    """A BD-rate missing for one seed (its curves overlapped too little) is left out of the mean, and
    the table says the mean is of 2 seeds while the arm has 3."""
    from nvpkit.viz.tables import _seeds_table
    rows = [{"method": "guided", "seed": s, "bpp": 0.1 * (s + 1), "bd_rate": bd} for s, bd in enumerate([-2.0, None, -4.0])]
    table = _seeds_table(rows, "method", {"bpp": "bpp", "bd_rate": "BD-rate (%)"})
    assert "| guided | 3 | 0.2000 ± 0.1000 | -3.00 ± 1.41 (n=2) |" in table


def test_mean_curve_per_setting_and_refuses_different_settings():
    a = [{"label": "crf 20", "bpp": 1.0, "psnr": 30.0}, {"label": "crf 30", "bpp": 0.5, "psnr": 27.0}]
    b = [{"label": "crf 20", "bpp": 1.2, "psnr": 32.0}, {"label": "crf 30", "bpp": 0.7, "psnr": 27.0}]
    curve = mean_curve([a, b])
    assert curve[0] == {"label": "crf 20", "bpp": pytest.approx(1.1), "psnr": 31.0,
                        "psnr_std": pytest.approx(math.sqrt(2)), "n": 2}
    assert curve[1]["psnr_std"] == 0.0
    with pytest.raises(ValueError, match="same settings"):
        mean_curve([a, b[:1]])


@pytest.mark.parametrize("seeds,match", [((0, 0), "distinct"), ((0, "a"), "seeds"), ([0, 1], "seeds")])
def test_bad_seeds_are_named(seeds, match):
    with pytest.raises(ValueError, match=match):
        GuideConfig(seeds=seeds)


def test_seeds_parameter_from_a_notebook():
    assert GuideConfig.from_params({"seeds": "0,1,2"}).seed_list() == (0, 1, 2)
    assert GuideConfig.from_params({"seeds": "", "seed": 3}).seed_list() == (3,)


def test_lossless_guidance_over_two_seeds(tmp_path):
    """Float32 guidance reloads exactly what it compressed: each seed's guided arm is its
    no-guidance arm, so every paired difference is zero with zero spread, while the seeds differ."""
    cfg = GuideConfig(num_frames=4, downscale=8, steps=20, period=10, batch=512, device="cpu", log_every=10,
                      compressor="float", sweep=({"dtype": "float16"}, {"dtype": "float32"}), anchor_crfs=(),
                      seeds=(0, 1), out_dir=str(tmp_path / "out"), cache_dir=str(tmp_path / "cache"))
    live = nvpkit.LivePlot(cfg.arm_names(), seeds=cfg.seeds, widget=False)
    results = nvpkit.run_experiment(cfg, live)
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    assert [r["config"]["seed"] for r in saved["runs"]] == [0, 1] and len(saved["table"]) == 4
    for seed in (0, 1):
        one = Results.load(tmp_path / "out" / f"seed-{seed}" / "results.json")
        assert one.config["seed"] == seed and one.table == saved["runs"][seed]["table"]
    assert set(results.arms) == {"no guidance · seed 0", "float guidance · seed 0", "no guidance · seed 1",
                                 "float guidance · seed 1"}
    psnr = {(r["seed"], r["method"]): r["psnr"] for r in results.table}
    assert psnr[0, "no guidance"] == psnr[0, "float guidance"] and psnr[1, "no guidance"] == psnr[1, "float guidance"]
    assert psnr[0, "no guidance"] != psnr[1, "no guidance"]
    table = nvpkit.format_table(results)
    assert "ΔPSNR +0.000 dB, 95% CI [+0.000, +0.000] dB: includes 0" in table and "| float guidance | 2 |" in table
    assert set(results.decoded) == set(cfg.arm_names()) and not results.trainers  # the first seed's models
    assert nvpkit.FrameViewer.for_experiment(results).models
    figures = nvpkit.save_experiment_figures(results, live)
    assert set(figures) == {"curves", "rd", "bits"}
    traces = live.figure().data
    assert len(traces) == 2 * 2 * 3 and len({t.line.color for t in traces if t.name == "no guidance"}) == 1
    assert sum(t.showlegend is not False for t in traces if t.name == "no guidance") == 1


def test_initialisation_study_over_two_seeds(tmp_path):
    cfg = nvpkit.InitConfig(num_frames=4, downscale=8, steps=20, batch=512, device="cpu", log_every=10,
                            compare_mappings=False, seeds=(0, 1), psnr_level=5.0, out_dir=str(tmp_path))
    results = nvpkit.run_experiment(cfg)
    assert [r["seed"] for r in results.table] == [0, 0, 0, 1, 1, 1] and len(results.runs) == 2
    table = nvpkit.format_init_table(results)
    assert "| random init | 2 |" in table and "Against random init, paired by seed:" in table
    assert table.count("ΔPSNR") == 2  # one line per Tucker arm
