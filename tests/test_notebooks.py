"""Every notebook runs headless with papermill on tiny parameters."""
import ast
import json
from pathlib import Path

import papermill
import pytest

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
TINY = {
    "quickstart.ipynb": {"num_frames": 4, "downscale": 8, "steps": 20, "batch": 2048, "device": "cpu"},
    "compress.ipynb": {"num_frames": 4, "downscale": 8, "steps": 20, "batch": 2048, "device": "cpu",
                       "tucker_rank_t": 2, "tucker_rank_x": 6, "tucker_rank_y": 6, "sweep_crfs": "20,40",
                       "anchor_crfs": "25,40", "preset": "fast"},
    "codec_guide.ipynb": {"num_frames": 4, "downscale": 8, "steps": 40, "period": 20, "batch": 512,
                          "device": "cpu", "log_every": 10, "sweep_crfs": "15,30,45", "anchor_crfs": "25,40",
                          "preset": "fast", "seeds": "0,1"},
    "tucker_guide.ipynb": {"num_frames": 4, "downscale": 8, "steps": 40, "period": 20, "batch": 512,
                           "device": "cpu", "log_every": 10, "sweep_ranks": "0.5,0.8", "anchor_crfs": "25,40"},
    "tucker_init.ipynb": {"num_frames": 4, "downscale": 8, "steps": 40, "batch": 512, "device": "cpu",
                          "log_every": 10, "psnr_level": 20.0},
    "sweep.ipynb": {"num_frames": 4, "downscale": 8, "steps": 40, "periods": "10,20", "compressors": "hevc,h264",
                    "batch": 512, "device": "cpu", "log_every": 10, "sweep_crfs": "15,30,45", "anchor_crfs": "25,40",
                    "preset": "fast", "num_cpus": 2, "compare": "period=10"},
}
OUTPUTS = {"quickstart.ipynb": "reconstruction.mp4", "compress.ipynb": "model.nvp",
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
