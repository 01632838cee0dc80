"""Every notebook runs headless with papermill on tiny parameters."""
from pathlib import Path

import papermill
import pytest

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
TINY = {
    "quickstart.ipynb": {"num_frames": 4, "downscale": 8, "steps": 20, "batch": 2048, "device": "cpu"},
}


def test_every_notebook_has_tiny_parameters():
    assert sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")) == sorted(TINY)


@pytest.mark.parametrize("name", sorted(TINY))
def test_notebook_runs_headless(name, tmp_path):
    out = tmp_path / name
    papermill.execute_notebook(str(NOTEBOOKS / name), str(out), cwd=str(tmp_path), progress_bar=False,
                               parameters={**TINY[name], "out_dir": str(tmp_path / "run")})
    assert out.exists()
    assert (tmp_path / "run" / "reconstruction.mp4").exists()
