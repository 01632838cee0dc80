"""Every notebook runs headless with papermill on tiny parameters."""
import ast
import dataclasses
import json
from pathlib import Path

import papermill
import pytest

from nvpkit.experiments import NOTEBOOK_CONFIGS, parse_fields
from nvpkit.sweeps import SWEEP_PARAMETERS

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
TINY = {
    "quickstart.ipynb": {"num_frames": 4, "downscale": 8, "steps": 20, "batch": 2048, "device": "cpu"},
    "compress.ipynb": {"num_frames": 4, "downscale": 8, "steps": 20, "batch": 2048, "device": "cpu",
                       "ranks": "2,6,6", "sweep_crfs": "20,40",
                       "anchor_crfs": "25,40", "preset": "fast"},
    "codec_guide.ipynb": {"num_frames": 4, "downscale": 8, "steps": 40, "period": 20, "batch": 512,
                          "device": "cpu", "log_every": 10, "anchor_crfs": "25,40", "preset": "fast", "seeds": "0,1",
                          "sweep_ladder": "crf=15 qscale=2,3,3; crf=30 qscale=3,5,5; crf=45 qscale=8,10,10"},
    "tucker_guide.ipynb": {"num_frames": 4, "downscale": 8, "steps": 40, "period": 20, "batch": 512,
                           "device": "cpu", "log_every": 10, "sweep_ranks": "0.5,0.8", "anchor_crfs": "25,40"},
    "tucker_init.ipynb": {"num_frames": 4, "downscale": 8, "steps": 40, "batch": 512, "device": "cpu",
                          "log_every": 10, "psnr_level": 20.0},
    # tucker_guide on Ray: sweep_ranks is not a parameter of the sweep notebook, the notebook forwards it
    "sweep.ipynb": {"notebook": "tucker_guide.ipynb", "num_frames": 4, "downscale": 8, "steps": 40,
                    "periods": "10,20", "compressors": "tucker", "batch": 512, "device": "cpu", "log_every": 10,
                    "sweep_ranks": "0.5,0.8", "anchor_crfs": "25,40", "num_cpus": 2, "compare": "period=10"},
}
OUTPUTS = {"quickstart.ipynb": "results.json", "compress.ipynb": "model.nvp",
           "codec_guide.ipynb": "results.json", "tucker_guide.ipynb": "results.json",
           "tucker_init.ipynb": "results.json", "sweep.ipynb": "bd_rate.png"}


def test_every_notebook_has_tiny_parameters():
    assert sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")) == sorted(TINY)


@pytest.mark.parametrize("name", sorted(TINY))
def test_papermill_reads_every_parameter(name):
    """``-p NAME VALUE`` and ``papermill --help-notebook`` know every name the parameters cell assigns:
    papermill reads one name per line, and skips a line with a second ``=`` (in a comment too)."""
    cells = json.loads((NOTEBOOKS / name).read_text())["cells"]
    source = "".join(next(c for c in cells if "parameters" in c["metadata"].get("tags", []))["source"])
    assigned = [n.id for node in ast.parse(source).body if isinstance(node, ast.Assign)
                for target in node.targets for n in ast.walk(target) if isinstance(n, ast.Name)]
    assert sorted(papermill.inspect_notebook(str(NOTEBOOKS / name))) == sorted(assigned)


def _parameters(name: str) -> dict:
    """The parameters cell of a notebook as papermill reads it: name -> default value."""
    return {k: ast.literal_eval(v["default"]) for k, v in papermill.inspect_notebook(str(NOTEBOOKS / name)).items()}


# parameters whose notebook default is the notebook's point, not the config's default
OWN_DEFAULTS = {"tucker_guide.ipynb": {"compressor"}}


@pytest.mark.parametrize("name", sorted(n for n in TINY if n.removesuffix(".ipynb") in NOTEBOOK_CONFIGS))
def test_notebook_defaults_are_the_configs(name):
    """One source of defaults: every parameter of an experiment notebook that is a field of its
    config has the field's default (the command line's default too)."""
    cls = NOTEBOOK_CONFIGS[name.removesuffix(".ipynb")]
    defaults = {f.name: f.default for f in dataclasses.fields(cls) if f.default is not dataclasses.MISSING}
    given = parse_fields(cls, _parameters(name))
    differ = {k: (v, defaults[k]) for k, v in given.items()
              if k in defaults and v != defaults[k] and k not in OWN_DEFAULTS.get(name, ())}
    assert not differ
    assert set(given) >= {"dataset", "num_frames", "steps", "batch", "seed", "device", "out_dir", "overwrite"}


@pytest.mark.parametrize("name", sorted(TINY))
def test_notebook_runs_headless(name, tmp_path):
    out = tmp_path / name
    papermill.execute_notebook(str(NOTEBOOKS / name), str(out), cwd=str(tmp_path), progress_bar=False,
                               parameters={**TINY[name], "out_dir": str(tmp_path / "run"),
                                           **({"cache_dir": str(tmp_path / "cache")} if "guide" in name else {})})
    assert out.exists()
    assert (tmp_path / "run" / OUTPUTS[name]).exists()
    if "seeds" in TINY[name]:  # the aggregated table over the seeds is what the notebook shows
        assert "mean ± standard deviation over 2 seeds" in out.read_text()
    if "compare" in TINY[name]:  # the settings against one another
        assert "setting minus the `against` setting" in out.read_text()
    if name == "sweep.ipynb":
        _check_forwarded(tmp_path / "run")
    if "sweep_ladder" in TINY[name]:  # every curve on the ladder's points, not on the default sweep_crfs
        runs = json.loads((tmp_path / "run" / "results.json").read_text())["runs"]  # one per seed
        curves = [curve for run in runs for curve in run["rd"].values()]
        points = [{"crf": 15, "qscale": [2, 3, 3]}, {"crf": 30, "qscale": [3, 5, 5]},
                  {"crf": 45, "qscale": [8, 10, 10]}]
        assert len(curves) == 4 and all([json.loads(p["label"]) for p in curve] == points for curve in curves)


def _check_forwarded(run):
    """Every job of the tucker_guide sweep got the parameters tucker_guide takes, and no others."""
    jobs = sorted(run.glob("*/sweep.json"))
    assert len(jobs) == 2
    for job in jobs:
        parameters = json.loads(job.read_text())["parameters"]
        assert parameters["sweep_ranks"] == "0.5,0.8" and parameters["compressor"] == "tucker"
        assert "crf" not in parameters and "sweep_crfs" not in parameters  # codec_guide's, not tucker_guide's
        results = json.loads((job.parent / "results.json").read_text())
        assert [p["label"] for p in results["rd"]["tucker guidance"]] == ['{"ranks": 0.5}', '{"ranks": 0.8}']


def test_the_sweep_notebooks_own_parameters_are_known():
    assert set(SWEEP_PARAMETERS) <= set(_parameters("sweep.ipynb"))
