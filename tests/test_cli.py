"""The command line (nvpkit/cli.py): every command, its help, its errors."""
import argparse
import dataclasses
import json
import re
import subprocess
import sys

import papermill
import pytest
import torch

import nvpkit
from nvpkit import cli
from nvpkit.experiments import KINDS, Results, field_docs

TINY = ["--num-frames", "4", "--downscale", "8", "--device", "cpu"]


def run(*args):
    return subprocess.run([sys.executable, "-m", "nvpkit", *args], capture_output=True, text=True)


def call(capsys, *args) -> tuple[int, str, str]:
    """``nvpkit ARGS`` in this process: exit status, stdout, stderr."""
    try:
        cli.main(list(args))
        code = 0
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else 1
    out = capsys.readouterr()
    return code, out.out, out.err


def test_version():
    done = run("--version")
    assert done.returncode == 0 and done.stdout.strip() == f"nvpkit {nvpkit.__version__}"


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_config_field_is_an_option_with_its_help(kind, capsys):
    cls = KINDS[kind]
    for command in ([kind], ["plan", kind]):
        code, text, _ = call(capsys, *command, "--help")
        assert code == 0
        flat = " ".join(text.split())
        for field in dataclasses.fields(cls):
            if field.name in ("settings", "sweep"):  # given as compressor settings and sweeps
                continue
            option = "--" + field.name.replace("_", "-")
            assert option in text, option
            first_words = " ".join(field_docs(cls)[field.name].split()[:4])
            assert first_words in flat, (option, first_words)
    if kind == "guide":
        assert "--crf" in text and "--sweep-crfs" in text and "--ranks" in text and "--sweep-ranks" in text
        assert "--sweep-ladder" in text
        args = cli.build_parser().parse_args(["guide", "--sweep-ladder", "crf=15 qscale=1,2,2; crf=27 qscale=3,5,5"])
        assert KINDS["guide"].from_params(vars(args)).sweep == ({"crf": 15, "qscale": (1, 2, 2)},
                                                                 {"crf": 27, "qscale": (3, 5, 5)})


def _subparsers(parser):
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices


@pytest.mark.parametrize("command", ["compress", "decode", "sweep", "data", "notebooks"])
def test_every_other_command_has_help(command, capsys):
    code, text, _ = call(capsys, command, "--help")
    assert code == 0 and f"usage: nvpkit {command}" in text
    parser = _subparsers(cli.build_parser())[command]
    unexplained = [a.dest for a in parser._actions if not a.help]
    assert not unexplained and len(parser._actions) > 1


def test_train_writes_results_that_load_and_resumes(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", *TINY, "--steps", "20", "--batch", "1024", "--out-dir", str(out), "--checkpoint-every", "5"]
    code, text, err = call(capsys, *args)
    assert code == 0, err
    results = Results.load(out / "results.json")
    assert results.kind == "train" and results.config["steps"] == 20 and results.config["batch"] == 1024
    assert "| model |" in text and (out / "reconstruction.mp4").stat().st_size > 0
    psnr = results.table[0]["psnr"]
    assert abs(psnr - results.final["model"]["psnr"]) == 0 and psnr > 10
    # what a run killed after step 10 leaves: its checkpoint at step 10, no results
    video = nvpkit.load_video("sample", 4, downscale=8)
    saved = nvpkit.Trainer.load(out / "checkpoint.pt", video).extra
    killed = KINDS["train"](num_frames=4, downscale=8, device="cpu", steps=20, batch=1024).new_trainer(video)
    killed.extra.update(key=saved["key"], code=saved["code"])
    killed.train(10, progress=False)
    killed.save(out / "checkpoint.pt")
    for name in ("results.json", "reconstruction.mp4"):
        (out / name).unlink()
    code, text, err = call(capsys, *args)
    assert code == 0 and "resuming from step 10" in text
    assert Results.load(out / "results.json").table[0]["psnr"] == psnr  # exactly the uninterrupted run's
    code, _, err = call(capsys, *[a if a != "20" else "30" for a in args])  # other parameters, same folder
    assert code == 1 and "other parameters" in err and "overwrite" in err and len(err.strip().splitlines()) == 1


def test_compress_and_decode_a_run(tmp_path, capsys):
    out = tmp_path / "run"
    assert call(capsys, "train", *TINY, "--steps", "10", "--out-dir", str(out))[0] == 0
    code, text, err = call(capsys, "compress", str(out), "--compressor", "quantize", "--setting", "bits=8",
                           "--out", str(tmp_path / "model.nvp"))
    assert code == 0, err
    psnr = re.search(r"PSNR ([\d.]+) dB", text)[1]
    code, text, err = call(capsys, "decode", str(tmp_path / "model.nvp"), *TINY,
                           "--write", str(tmp_path / "decoded.mp4"))
    assert code == 0, err
    assert re.search(r"PSNR ([\d.]+) dB", text)[1] == psnr  # the artifact decodes to what compress measured
    assert (tmp_path / "decoded.mp4").stat().st_size > 0
    code, _, err = call(capsys, "compress", str(out), "--compressor", "quantize", "--out", str(tmp_path / "model.nvp"))
    assert code == 1 and "exists" in err


def _one_line_error(code, err, *words):
    assert code == 1, err
    assert err.startswith("nvpkit: error: ") and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    for word in words:
        assert word in err, (word, err)


def test_each_error_class_is_one_line(tmp_path, capsys, monkeypatch):
    # ValueError: a setting, named with its value
    _one_line_error(*call(capsys, "guide", *TINY, "--steps", "10", "--period", "20")[:3:2], "period=20")
    _one_line_error(*call(capsys, "guide", *TINY, "--compressor", "tucker", "--crf", "20")[:3:2], "--crf",
                    "compressor='tucker'")
    # FileNotFoundError: a clip that is not there
    _one_line_error(*call(capsys, "train", "--dataset", str(tmp_path / "missing.mp4"), "--device", "cpu")[:3:2],
                    "missing.mp4")
    # ArtifactError: a file that is not an artifact
    (tmp_path / "junk.nvp").write_bytes(b"not an artifact at all")
    _one_line_error(*call(capsys, "decode", str(tmp_path / "junk.nvp"), *TINY)[:3:2], "not a valid nvpkit artifact")
    # CodecError: an encoder that refuses its options
    out = tmp_path / "run"
    assert call(capsys, "train", *TINY, "--steps", "5", "--out-dir", str(out))[0] == 0
    _one_line_error(*call(capsys, "compress", str(out), "--setting", "x265_params=ctu=7",
                          "--out", str(tmp_path / "m.nvp"))[:3:2], "x265")
    # FetchError: a server that does not answer
    monkeypatch.setitem(nvpkit.datasets.DATASETS, "uvg/Nowhere",
                        nvpkit.datasets.RawClip("uvg/Nowhere", "x.7z", 10, 2, 2, 1, 1.0, url="http://127.0.0.1:9/"))
    monkeypatch.setenv("NVPKIT_DATA", str(tmp_path / "data"))
    _one_line_error(*call(capsys, "data", "fetch", "uvg/Nowhere")[:3:2], "cannot download")
    # FloatingPointError and out of memory, raised where a run would raise them
    for error, words in ((FloatingPointError("training loss became nan before step 7"), ["nan"]),
                         (torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
                          ["out of memory", "lower batch"])):
        def fail(*args, error=error, **kwargs):
            raise error
        monkeypatch.setattr(nvpkit.experiments, "run_experiment", fail)
        _one_line_error(*call(capsys, "train", *TINY, "--steps", "5", "--out-dir", str(tmp_path / "x"))[:3:2],
                        *words)


def _untimed(value):
    """``value`` without its wall-clock seconds (the only numbers two identical runs differ in)."""
    if isinstance(value, dict):
        return {k: _untimed(v) for k, v in value.items() if k != "seconds"}
    if isinstance(value, list):
        return [_untimed(v) for v in value]
    return value


def test_guide_command_is_the_notebook(tmp_path, capsys):
    """``nvpkit guide`` and codec_guide.ipynb with the same parameters: the same results.json numbers."""
    params = {"num_frames": 4, "downscale": 8, "steps": 40, "period": 20, "batch": 512, "device": "cpu",
              "log_every": 10, "sweep_crfs": "15,30,45", "anchor_crfs": "25,40", "preset": "fast"}
    args = [f"--{k.replace('_', '-')}={v}" for k, v in params.items()]
    code, _, err = call(capsys, "guide", *args, "--out-dir", str(tmp_path / "cli"), "--cache-dir",
                        str(tmp_path / "cli-cache"))
    assert code == 0, err
    papermill.execute_notebook(str(cli.NOTEBOOKS_DIR / "codec_guide.ipynb"), str(tmp_path / "out.ipynb"),
                               cwd=str(tmp_path), progress_bar=False,
                               parameters={**params, "out_dir": str(tmp_path / "nb"),
                                           "cache_dir": str(tmp_path / "nb-cache")})
    ours, theirs = (_untimed(json.loads((tmp_path / d / "results.json").read_text())) for d in ("cli", "nb"))
    assert ours["table"] == theirs["table"] and ours["rd"] == theirs["rd"] and ours["bd"] == theirs["bd"]
    assert ours["final"] == theirs["final"] and ours["events"] == theirs["events"]
    mask = ("out_dir", "cache_dir", "settings")  # the notebook spells out the preset's defaults (crf=21, ...)
    assert {k: v for k, v in ours["config"].items() if k not in mask} == \
        {k: v for k, v in theirs["config"].items() if k not in mask}
    assert sorted(p.name for p in (tmp_path / "cli").glob("*.png")) == \
        sorted(p.name for p in (tmp_path / "nb").glob("*.png"))


def test_notebooks_and_data_list(tmp_path, capsys, monkeypatch):
    code, text, _ = call(capsys, "notebooks", str(tmp_path / "nb"))
    assert code == 0
    shipped = sorted(p.name for p in cli.NOTEBOOKS_DIR.glob("*.ipynb"))
    assert sorted(p.name for p in (tmp_path / "nb").iterdir()) == shipped
    _one_line_error(*call(capsys, "notebooks", str(tmp_path / "nb"))[:3:2], "--overwrite")
    monkeypatch.setenv("NVPKIT_DATA", str(tmp_path / "data"))
    code, text, _ = call(capsys, "data", "list")
    assert code == 0 and text.count("not fetched") == 7 and "uvg/Jockey" in text and str(tmp_path / "data") in text
