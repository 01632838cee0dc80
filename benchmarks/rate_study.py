"""The rate-term study: no guidance, reload and codec_ste (with CATRF's drift refresh), each without
and with the rate term at two weights, and the rate term alone, over seeds, on one clip; HEVC at the
published settings (JPEG 2/3/3 + HEVC crf 21 slow). Three runs of the sweep notebook into one folder
(codec_ste's ``drift`` is not an option of the other modes, and the rate term alone needs λ > 0),
then the table, the differences against λ = 0 within each mode and the figures; on the ladder
(below) also each mode against the rate term alone at the same λ.

    python benchmarks/rate_study.py                      # the sample clip, 3 seeds, 5,000 steps
    python benchmarks/rate_study.py --modes none,codec_ste     # some runs only, in this order
    python benchmarks/rate_study.py --steps 200 --period 50 --seeds 0 --out-dir runs/rate_study_small

A re-run skips every finished job. Prints the tables (markdown); figures in ``--out-dir``.

The experiments' own RD sweep moves the sparse grid's crf alone, while the JPEG-coded 2D grids hold
most of the bits of a model this size: each arm's curve then spans a few percent of rate, and a
rate term that moves the whole curve leaves too little overlap for a BD-PSNR. So both arms of every
job are also swept over a ladder that moves every codec's quality together (``--ladder``: crf and
the three JPEG qscales, the published setting in the middle), from the jobs' checkpoints; its table
and figures go into ``--out-dir/ladder``, with ``rd_at_largest_weight_<video>``: the RD curves of
each mode at the largest λ and of reload without the term. (A new study can give the ladder to the
jobs themselves, ``-p sweep_ladder "..."`` of the notebooks; this one re-sweeps so that its
finished jobs stand.)
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import nvpkit
from nvpkit.compress import rd_sweep
from nvpkit.experiments import GuideConfig, Results, bd_metrics, parse_ladder
from nvpkit.sweeps import Record, rd_by_video
from nvpkit.viz import save_figure

LADDER = "crf=15 qscale=1,2,2; crf=21 qscale=2,3,3; crf=27 qscale=3,5,5; crf=33 qscale=5,7,7; crf=39 qscale=8,10,10"
"""The joint ladder (``parse_ladder``): every codec's quality moved together."""

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
    parser.add_argument("--modes", default="reload,codec_ste,none",
                        help="which runs, in this order (reload, codec_ste, none)")
    parser.add_argument("--ladder", default=LADDER,
                        help=f"the points, as the notebooks' sweep_ladder (default {LADDER!r})")
    parser.add_argument("--collect-only", action="store_true", help="run no job: the tables and the ladder of "
                        "the jobs finished in --out-dir")
    args = parser.parse_args()
    runs = {"reload": ["-p", "modes", "reload", "-p", "rate_weights", f"0,{args.weights}"],
            "codec_ste": ["-p", "modes", "codec_ste", "-p", "drift", args.drift, "-p", "rate_weights", f"0,{args.weights}"],
            "none": ["-p", "modes", "none", "-p", "rate_weights", args.weights]}
    modes = args.modes.split(",")
    if not set(modes) <= set(runs):
        parser.error(f"--modes: {args.modes!r} names a run other than {', '.join(runs)}")
    try:
        ladder = parse_ladder(args.ladder, "--ladder")  # checked before any job
    except ValueError as error:
        parser.error(str(error))
    out = Path(args.out_dir)
    (out / "notebooks").mkdir(parents=True, exist_ok=True)
    common = ["-p", "compressors", "hevc", "-p", "periods", str(args.period), "-p", "steps", str(args.steps),
              "-p", "seeds", args.seeds, "-p", "num_cpus", args.num_cpus, "-p", "rate_estimators", args.estimator,
              "-p", "out_dir", str(out)]
    for name in ([] if args.collect_only else modes):
        subprocess.run([sys.executable, "-m", "papermill", str(NOTEBOOK), str(out / "notebooks" / f"{name}.ipynb"),
                        *common, *runs[name]], check=True)
    records = nvpkit.collect(out)
    print(nvpkit.format_sweep_table(nvpkit.sweep_table(records)))
    print()
    print(nvpkit.format_differences(nvpkit.sweep_differences(records, "rate_weight", 0)))
    print({name: files for name, files in nvpkit.save_figures(records, out).items()})
    swept = [on_ladder(record, ladder) for record in records]
    print()
    print(nvpkit.format_sweep_table(nvpkit.sweep_table(swept)))
    print()
    print(nvpkit.format_differences(nvpkit.sweep_differences(swept, "rate_weight", 0)))
    print()  # what reload's round trips add to the rate term at the same λ
    print(nvpkit.format_differences(nvpkit.sweep_differences(swept, "mode", "none")))
    print({name: files for name, files in nvpkit.save_figures(swept, out / "ladder").items()})
    weight = lambda record: float(record.parameters.get("rate_weight", 0))  # noqa: E731
    top = max(float(w) for w in args.weights.split(","))  # each mode at the largest λ, and reload without the term
    chosen = [r for r in swept if weight(r) == top or (r.parameters.get("mode") == "reload" and not weight(r))]
    for video, fig in rd_by_video(chosen).items():
        print(save_figure(fig, out / "ladder", f"rd_at_largest_weight_{video}"))


def on_ladder(record: Record, ladder: tuple[dict, ...]) -> Record:
    """``record`` with both arms' RD curves and BD metrics from ``ladder`` (each arm loaded from its
    checkpoint; the no-guidance arm's curve computed once per cached checkpoint), saved in the job's
    ``ladder`` folder."""
    saved = Path(record.results.config["out_dir"]) / "ladder" / "results.json"
    if saved.exists():
        results = Results.load(saved)
    else:
        cfg = GuideConfig.from_params({k: v for k, v in record.results.config.items() if k != "sweep"},
                                      sweep=ladder)
        video = cfg.load_video()
        curves = {arm: _curve(path, video, cfg.sweep_settings()) for arm, path in record.results.checkpoints.items()}
        base, guided = curves.values()
        results = Results(**{**record.results.to_dict(), "rd": curves, "bd": bd_metrics(base, guided)})
        results.save(saved)
    return Record(record.name, record.parameters, results)


_CURVES: dict[str, list] = {}


def _curve(path: str, video: nvpkit.Video, settings: dict) -> list:
    if path not in _CURVES:
        model = nvpkit.Trainer.load(path, video).model
        _CURVES[path] = rd_sweep(model, video, settings, progress=False)
    return _CURVES[path]


if __name__ == "__main__":
    main()
