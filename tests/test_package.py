"""The package as a user installs it: a wheel, not the checkout."""
import json
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_wheel_works_outside_the_repository(tmp_path):
    """Built, installed non-editable into a fresh environment (its dependencies taken from this
    one's site-packages, without an index), and used from a folder outside the repository: the
    sample clip and the notebooks come from the wheel, and quickstart runs by papermill."""
    source = tmp_path / "source"  # a copy: building in place would leave build/ in the checkout
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".git", ".venv", "runs", "build", "dist", "docs",
                                                                ".cache", "*.egg-info", "__pycache__", "wheelhouse"))
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path / "dist"),
                           str(source)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("nvpkit-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "nvpkit/shipped/data/bigbuckbunny.mp4" in names
    assert {f"nvpkit/shipped/notebooks/{p.name}" for p in (ROOT / "notebooks").glob("*.ipynb")} <= set(names)
    assert {f"nvpkit/{p.relative_to(ROOT / 'nvpkit')}" for p in (ROOT / "nvpkit").rglob("*.py")} <= set(names)

    env = tmp_path / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True)
    python = str(env / "bin" / "python")
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    Path(site, "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")  # torch, papermill, ...
    done = subprocess.run([sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps", "--no-index",
                           str(wheel)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]

    outside = tmp_path / "elsewhere"
    outside.mkdir()
    where = subprocess.run([python, "-c", "import nvpkit, nvpkit._resources as r; v = nvpkit.load_video('sample', 2,"
                            " downscale=8); print(nvpkit.__file__); print(r.notebook_path('codec_guide')); "
                            "print(v.frames.shape)"], cwd=outside, capture_output=True, text=True)
    assert where.returncode == 0, where.stderr[-2000:]
    module, notebook, shape = where.stdout.split("\n")[:3]
    assert module.startswith(site) and notebook.startswith(site) and shape == "(2, 90, 160, 3)"

    done = subprocess.run([python, "-m", "nvpkit", "notebooks", "nbs"], cwd=outside, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    done = subprocess.run([python, "-m", "papermill", "nbs/quickstart.ipynb", "out.ipynb", "-p", "num_frames", "4",
                           "-p", "downscale", "8", "-p", "steps", "20", "-p", "device", "cpu", "-p", "out_dir", "run"],
                          cwd=outside, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((outside / "run" / "results.json").read_text())
    assert results["kind"] == "train" and results["config"]["steps"] == 20
    assert results["provenance"]["git_commit"] is None  # the kernel ran the wheel's nvpkit, not the checkout
