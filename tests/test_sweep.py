"""Sweeps on a local Ray cluster with 2 CPU workers, over a small notebook that runs in seconds."""
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import pytest
import ray

import nvpkit
from nvpkit.experiments import Results
from nvpkit.sweeps import Record, bd_by_video, collect, combinations, rd_along, rd_by_video

NOTEBOOK = [
    ("parameters", 'x = 1\ny = 1\nfail = ""\nout_dir = "out"'),
    ("", "import pathlib\nfrom nvpkit.experiments import Results\nout = pathlib.Path(out_dir)\n"
         "if fail == 'always' or (fail == 'once' and not (out / 'tried').exists()):\n"
         "    (out / 'tried').touch()\n"
         "    raise RuntimeError(f'asked to fail ({fail})')\n"
         "Results('toy', {'x': x, 'y': y, 'out_dir': out_dir}, {}, {}, [{'product': x * y}]).save()"),
]


@pytest.fixture(scope="module")
def cluster():
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield
    ray.shutdown()


@pytest.fixture
def notebook(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    for tag, source in NOTEBOOK:
        cell = nbformat.v4.new_code_cell(source)
        if tag:
            cell.metadata["tags"] = [tag]
        nb.cells.append(cell)
    path = tmp_path / "job.ipynb"
    nbformat.write(nb, path)
    return path


def products(out_dir):
    return sorted(r.results.table[0]["product"] for r in collect(out_dir))


def test_grid_completes_then_a_rerun_skips_it(cluster, notebook, tmp_path):
    out = tmp_path / "sweep"
    first = nvpkit.sweep(notebook, {"x": [2, 3], "y": [5, 7]}, out, progress=False)
    assert len(first["done"]) == 4 and not first["failed"] and not first["skipped"]
    assert products(out) == [10, 14, 15, 21]
    record = json.loads((out / first["done"][0] / "sweep.json").read_text())
    assert record["attempts"] == 1 and record["parameters"]["out_dir"] == str(out / first["done"][0])
    assert (out / first["done"][0] / "notebook.ipynb").exists()
    again = nvpkit.sweep(notebook, {"x": [2, 3], "y": [5, 7]}, out, progress=False)
    assert sorted(again["skipped"]) == sorted(first["done"]) and not again["done"]
    more = nvpkit.sweep(notebook, {"x": [2, 3], "y": [5, 11]}, out, progress=False)  # only the new values run
    assert len(more["done"]) == 2 and len(more["skipped"]) == 2
    assert products(out) == [10, 14, 15, 21, 22, 33]


def test_a_failing_job_is_retried_once_and_reported_while_the_others_finish(cluster, notebook, tmp_path):
    out = tmp_path / "sweep"
    result = nvpkit.sweep(notebook, [{"x": 1, "fail": "always"}, {"x": 2, "fail": "once"}, {"x": 3}], out,
                          progress=False)
    assert len(result["failed"]) == 1 and len(result["done"]) == 2
    failure = result["failed"][0]
    assert failure["attempts"] == 2 and failure["parameters"]["fail"] == "always"
    assert "asked to fail (always)" in failure["error"]
    flaky = [r for r in collect(out) if r.parameters.get("fail") == "once"]
    assert json.loads((out / flaky[0].name / "sweep.json").read_text())["attempts"] == 2
    assert products(out) == [2, 3]


def test_bad_arguments_are_named(notebook, tmp_path):
    with pytest.raises(ValueError, match="no parameter 'z'.*'fail', 'out_dir', 'x', 'y'"):
        nvpkit.sweep(notebook, {"z": [1]}, tmp_path)
    with pytest.raises(ValueError, match=r"grid\['x'\] is empty"):
        nvpkit.sweep(notebook, {"x": []}, tmp_path)
    with pytest.raises(ValueError, match="cpus_per_job=0 is not allowed; use an int >= 1"):
        nvpkit.sweep(notebook, {"x": [1]}, tmp_path, cpus_per_job=0)
    with pytest.raises(FileNotFoundError, match="no notebook"):
        nvpkit.sweep(tmp_path / "missing.ipynb", {"x": [1]}, tmp_path)


def test_combinations():
    assert combinations({"a": [1, 2], "b": "s"}) == [{"a": 1, "b": "s"}, {"a": 2, "b": "s"}]
    assert combinations([{"a": 1}]) == [{"a": 1}]
    with pytest.raises(ValueError, match="non-empty list of dicts"):
        combinations([])


def fake_record(name, codec, period, base_psnr, gain, bd_rate):
    curve = lambda shift: [{"bpp": b, "psnr": base_psnr + shift + b} for b in (1.0, 2.0, 3.0)]  # noqa: E731
    history = {"step": [10, 20], "psnr": [20.0, 25.0]}
    results = Results(
        "guide", {"out_dir": name}, {"name": "clip"},
        {"no guidance": {"history": history, "train_seconds": 5.0},
         f"{codec} guidance": {"history": history, "train_seconds": 6.0}},
        [{"method": "no guidance", "bpp": 2.0, "psnr": base_psnr, "delta_bpp": 0.0, "delta_psnr": 0.0},
         {"method": f"{codec} guidance", "bpp": 1.9, "psnr": base_psnr + gain, "delta_bpp": -0.1, "delta_psnr": gain}],
        bd={"bd_rate": bd_rate, "bd_psnr": gain}, rd={"no guidance": curve(0), f"{codec} guidance": curve(gain)})
    return Record(name, {"codec": codec, "period": period, "out_dir": name}, results)


def test_table_and_figures_from_guided_results(tmp_path):
    records = [fake_record("a", "hevc", 10, 30.0, 0.5, -4.0), fake_record("b", "hevc", 20, 30.0, 0.3, -2.0),
               fake_record("c", "av1", 10, 31.0, 0.1, -1.0)]
    rows = nvpkit.sweep_table(records)
    assert len(rows) == 6 and [r["arm"] for r in rows[:2]] == ["no guidance", "hevc guidance"]
    assert rows[1]["bd_rate"] == -4.0 and rows[0]["bd_rate"] is None and rows[1]["codec"] == "hevc"
    assert "| codec | period | video | arm |" in nvpkit.format_sweep_table(rows)
    rd = rd_by_video(records)["clip"]
    names = [t.name for t in rd.data]
    assert names.count("no guidance (codec=av1)") == 1 and names.count("no guidance (codec=hevc)") == 1
    assert "hevc guidance (codec=hevc, period=20)" in names and len(names) == 5
    bd = bd_by_video(records)
    mean = [t for t in bd.data if t.name == "mean over videos"][0]
    assert list(mean.y) == [-1.0, -4.0, -2.0]  # settings sorted: av1 p10, hevc p10, hevc p20
    written = nvpkit.save_figures(records, tmp_path)
    assert set(written) == {"rd_clip", "bd_rate", "psnr_by_step"}
    assert all((tmp_path / f).stat().st_size > 1000 for files in written.values() for f in files)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_same_call_runs_on_an_existing_cluster(notebook, tmp_path):
    port, env = free_port(), {**os.environ, "RAY_AUTH_MODE": "disabled"}  # a bare test cluster: no token
    temp = tempfile.mkdtemp(prefix="ray-", dir="/tmp")  # short: Ray's socket paths must fit 107 characters
    head = subprocess.Popen([str(Path(sys.executable).parent / "ray"), "start", "--head", "--block", f"--port={port}",
                             "--num-cpus=2", "--include-dashboard=false", f"--temp-dir={temp}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        driver = ("import json, sys, nvpkit\n"
                  "r = nvpkit.sweep(sys.argv[1], {'x': [2, 3]}, sys.argv[2], address=sys.argv[3], progress=False)\n"
                  "print(json.dumps([len(r['done']), len(r['failed'])]))")
        address = f"{ray.util.get_node_ip_address()}:{port}"
        deadline = time.time() + 60
        while True:  # the head takes a few seconds to accept drivers
            run = subprocess.run([sys.executable, "-c", driver, str(notebook), str(tmp_path / "out"), address],
                                 capture_output=True, text=True, timeout=180, env=env)
            if run.returncode == 0 or time.time() > deadline or "Failed to connect" not in run.stderr:
                break
            time.sleep(2)
        assert run.returncode == 0, run.stderr[-2000:]
        assert json.loads(run.stdout.strip().splitlines()[-1]) == [2, 0]
        assert products(tmp_path / "out") == [2, 3]
        assert head.poll() is None  # the sweep disconnected and left the cluster running
    finally:
        head.terminate()
        head.wait(timeout=60)
        shutil.rmtree(temp, ignore_errors=True)


def test_a_bad_combination_fails_before_any_job_is_submitted(tmp_path):
    small = dict(num_frames=4, downscale=8, steps=20, period=10)
    with pytest.raises(ValueError, match=r"ranks\[0\]=480 is larger than mode 0 of size 4"):
        nvpkit.sweep("tucker_guide.ipynb", {"ranks": ["2,2,2", "480,240,240"]}, tmp_path / "study", parameters=small,
                     progress=False)
    assert list((tmp_path / "study").iterdir()) == []  # no job ran, none was submitted


def seeded(record, seed, video):
    """``record`` as the run of one seed of one video."""
    record.results.config["seed"] = seed
    record.results.video["name"] = video
    record.parameters.update(seed=seed, dataset=video)
    return record


def test_a_seed_axis_is_aggregated_to_one_row_per_video_and_arm(tmp_path):
    records = [seeded(fake_record(f"{v}{s}", "hevc", 10, 30.0 + s, gain, bd), s, v)
               for v in ("jockey", "beauty") for s, gain, bd in ((0, 0.5, -4.0), (1, 0.3, -2.0))]
    rows = nvpkit.sweep_table(records)
    assert [(r["video"], r["arm"], r["n"]) for r in rows] == [
        ("jockey", "no guidance", 2), ("jockey", "hevc guidance", 2), ("beauty", "no guidance", 2),
        ("beauty", "hevc guidance", 2)]
    guided = rows[1]
    assert guided["psnr"] == pytest.approx((30.5 + 31.3) / 2) and guided["delta_psnr"] == pytest.approx(0.4)
    assert guided["delta_psnr_std"] == pytest.approx(0.2 / 2 ** 0.5)  # the sample std of 0.5 and 0.3
    assert guided["bd_rate"] == -3.0 and rows[0]["delta_psnr_low"] == rows[0]["delta_psnr_high"] == 0.0
    assert "seed" not in guided and "| seeds |" in nvpkit.format_sweep_table(rows)
    rd = rd_by_video(records)["jockey"]
    bands = [t for t in rd.data if t.fill == "toself"]
    assert len(bands) == 2 and {t.name.split(" (")[0] for t in rd.data if t.fill != "toself"} == {
        "no guidance", "hevc guidance"}
    mean = [t for t in bd_by_video(records).data if t.name == "jockey"][0]
    assert list(mean.y) == [-3.0] and list(mean.error_y.array) == pytest.approx([2 ** 0.5])
    assert set(nvpkit.save_figures(records, tmp_path)) == {"rd_jockey", "rd_beauty", "bd_rate", "psnr_by_step"}


def test_an_rd_curve_along_the_rate_weight_per_mode(tmp_path):
    def job(mode, weight, seed, gain):
        record = seeded(fake_record(f"{mode}{weight}{seed}", "hevc", 10, 30.0 + seed, gain, -1.0), seed, "jockey")
        record.parameters.update(mode=mode, rate_weight=weight)
        record.results.table[1]["bpp"] = 1.9 - weight * 1000  # a larger λ, fewer bits
        return record

    records = [job(mode, weight, seed, gain + seed / 10) for mode, weight, gain in (
        ("reload", 0, 0.5), ("reload", 1e-4, 0.2), ("reload", 3e-5, 0.4), ("none", 1e-4, -0.3)) for seed in (0, 1)]
    fig = rd_along(records, "rate_weight")["jockey"]
    curves = {t.name: t for t in fig.data if t.fill != "toself"}
    assert set(curves) == {"mode=reload", "mode=none", "no guidance (setting sweep)"}
    reload = curves["mode=reload"]
    assert list(reload.text) == ["0", "3e-05", "0.0001"]  # in the order of λ
    assert list(reload.x) == pytest.approx([1.9, 1.87, 1.8])
    assert list(reload.y) == pytest.approx([30.55 + 0.5, 30.55 + 0.4, 30.55 + 0.2])  # the seeds' means
    assert list(reload.error_y.array) == pytest.approx([1.1 / 2 ** 0.5] * 3)  # the std of 30 + g and 31.1 + g
    assert list(curves["no guidance (setting sweep)"].y) == pytest.approx([31.5, 32.5, 33.5])  # 30 + bpp and 31 + bpp
    assert "rd_along_rate_weight_jockey" in nvpkit.save_figures(records, tmp_path)


def test_a_combination_with_fewer_seeds_is_labelled_by_its_seeds(tmp_path):
    """A partly finished sweep: one setting has one seed where the others have two; and sweeps of
    different modes in one folder, where only some jobs have a parameter."""
    records = [seeded(fake_record(f"{mode}{seed}", "hevc", 10, 30.0 + seed, 0.5, -1.0), seed, "jockey")
               for mode, seeds in (("reload", (0, 1)), ("codec_ste", (0, 1)), ("none", (0,))) for seed in seeds]
    for record, mode in zip(records, ("reload", "reload", "codec_ste", "codec_ste", "none")):
        record.parameters["mode"] = mode
    names = {t.name for t in rd_by_video(records)["jockey"].data if t.fill != "toself"}
    assert names == {"no guidance (seeds=0,1)", "no guidance (seeds=0)", "hevc guidance (mode=reload, seeds=0,1)",
                     "hevc guidance (mode=codec_ste, seeds=0,1)", "hevc guidance (mode=none, seeds=0)"}
    assert set(bd_by_video(records).data[0].x) == {"mode=reload, seeds=0,1", "mode=codec_ste, seeds=0,1",
                                                  "mode=none, seeds=0"}
    assert "rd_jockey" in nvpkit.save_figures(records, tmp_path)
    records[2].parameters["drift"] = records[3].parameters["drift"] = 0.05  # codec_ste's option, from its own sweep
    names = {t.name for t in rd_by_video(records)["jockey"].data if t.fill != "toself"}
    assert {"hevc guidance (mode=reload, seeds=0,1)", "hevc guidance (drift=0.05, mode=codec_ste, seeds=0,1)"} <= names
    along = {t.name for t in rd_along(records, "mode")["jockey"].data}
    assert {"drift=0.05", "guided"} <= along  # reload and none have no drift: no "drift=None"
    assert "rd_jockey" in nvpkit.save_figures(records, tmp_path)


T_975_DF1 = 12.706204736174707
"""The 97.5% quantile of Student's t with 1 degree of freedom (from a table)."""


def test_settings_against_one_another_paired_by_seed():
    def job(mode, seed, gain, bd):
        record = seeded(fake_record(f"{mode}{seed}", "hevc", 10, 30.0 + seed, gain, bd), seed, "jockey")
        record.parameters["mode"] = mode
        return record

    records = [job("reload", 0, 0.5, -4.0), job("reload", 1, 0.3, -2.0), job("codec_ste", 0, 0.2, 1.0),
               job("codec_ste", 1, 0.4, 3.0), job("codec_ste", 2, 0.9, 9.0)]  # seed 2 has no reload to pair with
    rows = nvpkit.sweep_differences(records, "mode", "reload")
    assert len(rows) == 1
    row = rows[0]
    assert (row["video"], row["mode"], row["against"], row["n"]) == ("jockey", "codec_ste", "reload", 2)
    assert row["delta_psnr"] == pytest.approx(((0.2 - 0.5) + (0.4 - 0.3)) / 2)  # -0.3 and +0.1
    assert row["bd_rate"] == pytest.approx(5.0) and row["delta_bpp"] == 0.0  # +5 and +5: no spread
    assert row["bd_rate_low"] == row["bd_rate_high"] == 5.0
    half = T_975_DF1 * (0.4 / 2 ** 0.5) / 2 ** 0.5  # t(0.975, 1) x the differences' std / sqrt(n)
    assert row["delta_psnr_low"] == pytest.approx(-0.1 - half) and row["delta_psnr_high"] == pytest.approx(-0.1 + half)
    table = nvpkit.format_differences(rows)
    assert "| jockey | codec_ste | reload | 2 |" in table and "+5.00 [+5.00, +5.00] *" in table
    with pytest.raises(ValueError, match=r"key='period' is not a varying parameter.*\['mode'\]"):
        nvpkit.sweep_differences(records, "period", 10)
    with pytest.raises(ValueError, match=r"base='ste' is not a value of 'mode'"):
        nvpkit.sweep_differences(records, "mode", "ste")


def test_the_compare_parameter_is_checked_against_the_grid():
    grid = nvpkit.parse_grid(dataset="a,b", period="1000,2000", mode="reload", seed="0,1")
    assert nvpkit.parse_compare("period=1000", grid) == ("period", "1000") and nvpkit.parse_compare("", grid) is None
    for text, message in (("period", r"compare='period' is not allowed; give <parameter>=<value>.*\['period'\]"),
                          ("mode=reload", r"\['period'\]"), ("seed=0", r"\['period'\]"), ("dataset=a", r"\['period'\]"),
                          ("period=3000", r"period takes the values \[1000, 2000\]")):
        with pytest.raises(ValueError, match=message):
            nvpkit.parse_compare(text, grid)
