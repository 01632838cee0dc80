"""Offline GPU nodes: the wheelhouse script and a CPU dry run of benchmarks/cuda_check.sh."""
import os
import re
import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_wheelhouse_installs_without_an_index(tmp_path):
    """The wheels for this machine's Python install every dependency but torch with --no-index, into
    an environment that has none of them (as cuda_check.sh installs: pip --python into a venv)."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    machine = sysconfig.get_platform().split("-")[-1]
    done = subprocess.run(["bash", "benchmarks/wheelhouse.sh", version, f"manylinux_2_28_{machine}",
                           str(tmp_path / "wheels")], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "PYTHON": sys.executable})
    assert done.returncode == 0, done.stderr[-2000:]
    names = {re.split(r"-\d", p.name)[0].lower() for p in (tmp_path / "wheels").iterdir()}
    assert not any(n.startswith(("torch", "nvidia", "triton")) for n in names)
    env = tmp_path / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True)
    install = [sys.executable, "-m", "pip", "--python", str(env / "bin" / "python"), "install", "-q", "--no-index",
               "--find-links", str(tmp_path / "wheels")]
    for packages in (["tensorly", "imageio-ffmpeg", "bjontegaard", "py7zr", "platformdirs", "scipy", "tqdm",
                      "pillow", "imageio", "pytest", "setuptools"],
                     ["--no-deps", "pytorch-msssim"]):  # its one dependency is torch, which the node has
        done = subprocess.run([*install, *packages], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-2000:]
    imported = subprocess.run([str(env / "bin" / "python"), "-c", "import tensorly, imageio_ffmpeg, bjontegaard, "
                               "py7zr, platformdirs, scipy, importlib.util as u; "
                               "print(u.find_spec('pytorch_msssim') is not None, u.find_spec('torch'))"],
                              capture_output=True, text=True)
    assert imported.returncode == 0 and imported.stdout.strip() == "True None", imported.stderr[-2000:]


def test_cuda_check_dry_run_on_the_cpu(tmp_path):
    """Every step of cuda_check.sh runs to its end at tiny sizes on the CPU, within 8 log files."""
    out = tmp_path / "check"
    done = subprocess.run(["bash", "benchmarks/cuda_check.sh"], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "OUT": str(out), "NVPKIT_CHECK_DEVICE": "cpu",
                               "PYTHON": sys.executable}, timeout=540)
    assert done.returncode == 0, done.stderr[-2000:]
    logs = sorted(p.name for p in out.iterdir() if p.is_file())
    assert len(logs) <= 8 and "env.txt" in logs
    steps = [(log, code) for log in logs for code in re.findall(r"\(exit (\d+),", (out / log).read_text())]
    assert len(steps) == 8 and all(code == "0" for _, code in steps), steps
    assert "Plan: GuideConfig" in (out / "plan.txt").read_text()
    assert "batch: 1,024 pixels per step (auto: 1,024 on the CPU)" in (out / "plan.txt").read_text()
