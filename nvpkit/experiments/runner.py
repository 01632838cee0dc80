"""The experiment runner: one path for every kind of experiment.

``run_experiment(cfg)`` loads the clip, chooses an ``"auto"`` batch, refuses an ``out_dir`` that
holds results of other parameters, checks every setting before the first training step
(``check``), then runs the kind (``cfg.run_seed``) once, or once per seed into
``out_dir/seed-<s>`` with the seeds' results combined, and writes ``results.json``. A ``Monitor``
(``nvpkit.viz.LivePlot``) follows the arms as they train.
"""
from __future__ import annotations

import time
from functools import partial
from pathlib import Path
from typing import Any

from .._files import check_out_dir
from ..data import Video
from ..metrics import METRICS
from .arms import Monitor, check_resumable
from .config import ExperimentConfig
from .planning import check, choose_batch
from .results import Results
from .tensorboard import Monitors, TensorBoardLog
from .seeds import seed_label

__all__ = ["run_experiment"]


def run_experiment(cfg: ExperimentConfig, live: Monitor | None = None, video: Video | None = None) -> Results:
    """Run the experiment ``cfg`` describes (any kind: ``ExperimentConfig``, ``GuideConfig``,
    ``InitConfig``) on ``video`` (default ``cfg.load_video()``; pass the clip ``plan`` was given to
    load it once) and write ``results.json`` into ``cfg.out_dir``. Everything is checked first
    (``check``). With several ``seeds`` each seed runs in ``out_dir/seed-<s>`` (its own
    results.json) and the results keep every seed's (``Results.runs``; ``table`` has a row per seed
    and arm). The results hold the arms' trainers and decoded models in memory (with several seeds:
    the first seed's decoded models only)."""
    video = video if video is not None else cfg.load_video()
    cfg = choose_batch(cfg, video)[0]
    check_out_dir(cfg.out_dir, cfg.to_dict(), cfg.overwrite, cfg.RUN_CONTROLS)
    check(cfg, video)  # memory, ranks, encoder options: before the first step, not at the first event
    check_resumable(cfg, [cfg.out_dir, *(cfg.for_seed(s).out_dir for s in cfg.seeds)])
    board = TensorBoardLog(Path(cfg.out_dir) / "tensorboard") if cfg.log == "tensorboard" else None
    live = Monitors(live, board) if board is not None else live
    started = time.perf_counter()
    shared = cfg.prepare(video)
    if cfg.seeds:
        runs = []
        for seed in cfg.seeds:
            one = cfg.for_seed(seed)
            check_out_dir(one.out_dir, one.to_dict(), cfg.overwrite, cfg.RUN_CONTROLS)
            runs.append(_provenance(one.run_seed(video, live, partial(seed_label, seed=seed), shared)))
            runs[-1].save()
            runs[-1].trainers = {}  # memory holds one seed's trainers at a time
            if len(runs) > 1:
                runs[-1].decoded = {}  # and the first seed's decoded models
        results = _combine(cfg, runs, **shared)
    else:
        results = _provenance(cfg.run_seed(video, live, _same, shared))
    results.seconds = time.perf_counter() - started
    results.save()
    if board is not None:
        board.results(results)
        board.close()
    return results


def _same(arm: str) -> str:
    return arm


def _provenance(results: Results) -> Results:
    """Complete ``provenance`` with ``code_changes``: per arm resumed (or taken from the cache) across
    a change of the code that trains it, each change's step and both code versions (empty: none)."""
    results.provenance["code_changes"] = {arm: t.extra["code_changes"] for arm, t in results.trainers.items()
                                          if t.extra.get("code_changes")}
    return results


def _combine(cfg: ExperimentConfig, runs: list[Results], **shared: Any) -> Results:
    """The results of every seed as one: their rows tagged with the seed, each seed's results kept
    whole in ``runs``, the first seed's decoded models in memory."""
    first = runs[0]
    return Results(
        kind=first.kind, config=cfg.to_dict(), video=first.video,
        arms={seed_label(arm, r.config["seed"]): a for r in runs for arm, a in r.arms.items()},
        table=[{"seed": r.config["seed"], **row} for r in runs for row in r.table],
        events=[{"seed": r.config["seed"], **e} for r in runs for e in r.events],
        metrics=dict(METRICS), runs=[r.to_dict() for r in runs], plot_seconds=runs[-1].plot_seconds,
        provenance={**first.provenance, "code_changes": {seed_label(arm, r.config["seed"]): c for r in runs
                                                         for arm, c in r.provenance.get("code_changes", {}).items()}},
        decoded=first.decoded, clip=first.clip, **shared)
