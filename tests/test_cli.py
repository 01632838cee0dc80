import json
import subprocess
import sys


def run(*args):
    return subprocess.run([sys.executable, "-m", "nvpkit", *args], capture_output=True, text=True)


def test_train_command_prints_psnr_and_writes_a_reconstruction(tmp_path):
    out = tmp_path / "run"
    args = ["train", "--num-frames", "4", "--downscale", "8", "--steps", "10", "--batch", "2048",
            "--device", "cpu", "--out", str(out)]
    done = run(*args)
    assert done.returncode == 0, done.stderr
    assert "PSNR" in done.stdout and "dB" in done.stdout
    results = json.loads((out / "results.json").read_text())
    assert results["evaluation"]["psnr"] > 5
    assert results["train_config"]["steps"] == 10
    assert (out / "reconstruction.mp4").stat().st_size > 0 and (out / "checkpoint.pt").exists()

    again = run(*args)
    assert again.returncode != 0 and "--overwrite" in again.stderr


def test_train_command_reports_bad_input_plainly(tmp_path):
    done = run("train", "--dataset", str(tmp_path / "missing.mp4"), "--out", str(tmp_path / "x"))
    assert done.returncode != 0
    assert "missing.mp4" in done.stderr and "Traceback" not in done.stderr
