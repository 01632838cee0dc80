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


def test_train_command_resumes_an_interrupted_run(tmp_path):
    import nvpkit

    out = tmp_path / "run"
    args = ["train", "--num-frames", "4", "--downscale", "8", "--steps", "20", "--batch", "1024",
            "--device", "cpu", "--out", str(out), "--checkpoint-every", "5"]
    assert run(*args).returncode == 0
    straight = json.loads((out / "results.json").read_text())
    # what a run killed after step 10 leaves: its checkpoint at step 10, no results
    video = nvpkit.load_video("sample", 4, downscale=8)
    key = nvpkit.Trainer.load(out / "checkpoint.pt", video).extra["key"]
    killed = nvpkit.Trainer.from_config(video, "cpu_s", steps=20, batch=1024, device="cpu")
    killed.extra["key"] = key
    killed.train(10, progress=False)
    killed.save(out / "checkpoint.pt")
    for name in ("results.json", "reconstruction.mp4"):
        (out / name).unlink()
    resumed = run(*args)
    assert resumed.returncode == 0 and "resuming from step 10" in resumed.stdout
    assert json.loads((out / "results.json").read_text())["evaluation"]["psnr"] == straight["evaluation"]["psnr"]
    (out / "results.json").unlink()
    other = run(*[a if a != "20" else "30" for a in args])
    assert other.returncode != 0 and "other parameters" in other.stderr
