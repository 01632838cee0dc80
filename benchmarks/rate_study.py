"""The rate-term study: no guidance, reload and codec_ste (with CATRF's drift refresh), each without
and with the rate term at two weights, and the rate term alone, over seeds, on one clip; HEVC at the
published settings (JPEG 2/3/3 + HEVC crf 21 slow). Three runs of the sweep notebook into one folder
(codec_ste's ``drift`` is not an option of the other modes, and the rate term alone needs λ > 0),
then the table, the differences against λ = 0 within each mode and the figures.

    python benchmarks/rate_study.py                      # the sample clip, 3 seeds, 5,000 steps
    python benchmarks/rate_study.py --steps 200 --period 50 --seeds 0 --out-dir runs/rate_study_small

A re-run skips every finished job. Prints the tables (markdown); figures in ``--out-dir``.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import nvpkit

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "sweep.ipynb"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out-dir", default=str(nvpkit.runs_root() / "rate_study"))
    parser.add_argument("--steps", type=int, default=5000)
    parser.add_argument("--period", type=int, default=500)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--weights", default="3e-5,1e-4", help="the rate weights λ besides 0")
    parser.add_argument("--estimator", default="tv")
    parser.add_argument("--drift", default="0.05", help="codec_ste's drift refresh (CATRF's 0.05)")
    parser.add_argument("--num-cpus", default="2")
    args = parser.parse_args()
    out = Path(args.out_dir)
    (out / "notebooks").mkdir(parents=True, exist_ok=True)
    common = ["-p", "compressors", "hevc", "-p", "periods", str(args.period), "-p", "steps", str(args.steps),
              "-p", "seeds", args.seeds, "-p", "num_cpus", args.num_cpus, "-p", "rate_estimators", args.estimator,
              "-p", "out_dir", str(out)]
    runs = {"reload": ["-p", "modes", "reload", "-p", "rate_weights", f"0,{args.weights}"],
            "codec_ste": ["-p", "modes", "codec_ste", "-p", "drift", args.drift, "-p", "rate_weights", f"0,{args.weights}"],
            "none": ["-p", "modes", "none", "-p", "rate_weights", args.weights]}
    for name, axes in runs.items():
        subprocess.run([sys.executable, "-m", "papermill", str(NOTEBOOK), str(out / "notebooks" / f"{name}.ipynb"),
                        *common, *axes], check=True)
    records = nvpkit.collect(out)
    print(nvpkit.format_sweep_table(nvpkit.sweep_table(records)))
    print()
    print(nvpkit.format_differences(nvpkit.sweep_differences(records, "rate_weight", 0)))
    print({name: files for name, files in nvpkit.save_figures(records, out).items()})


if __name__ == "__main__":
    main()
