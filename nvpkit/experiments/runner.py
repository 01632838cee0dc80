"""The experiment runner: trains the arms of an experiment the same way, measures them the same way,
and writes ``Results``.

``run_experiment`` (guided training) trains the no-guidance arm (cached, see ``cache``) and the
guided arm with the same seed, data, steps and schedule, both checkpointed and resumed when a run
is repeated with the same parameters; compresses both with the same final compressor, evaluates
every frame, sweeps both over a range of settings with the plain-x265 curve beside them, and
reports Bjøntegaard deltas. ``run_init_experiment`` trains random against Tucker initialisation.
A ``Monitor`` (``nvpkit.viz.LivePlot``) follows the arms as they train.
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any, Protocol

from .._files import check_out_dir
from ..compress import container_bits, make_compressor, rd_sweep, video_anchor
from ..data import Video
from ..metrics import METRICS
from ..provenance import provenance
from ..rendering import evaluate
from ..train import Checkpoint, Trainer, resume_or_start
from .bd import bd_metrics
from .cache import GUIDED_KEYS, arm_key, baseline, video_key
from .config import ExperimentConfig, GuideConfig, InitConfig
from .guidance import Guidance
from .initialize import PullToInit, steps_to_reach, tucker_init
from .planning import check
from .results import Results
from .seeds import seed_label

__all__ = ["Monitor", "train_arm", "run_experiment", "run_init_experiment"]


class Monitor(Protocol):
    """What follows training live (``nvpkit.viz.LivePlot`` is one)."""

    plot_seconds: float

    def update(self, arm: str, history: dict[str, list[float]], events: Sequence[dict] = ()) -> None: ...

    def callback(self, arm: str, events: Sequence[dict] = ()) -> Callable[[Trainer], None]: ...


def train_arm(cfg: ExperimentConfig, video: Video, label: str, *, live: Monitor | None = None,
              guidance: Guidance | None = None, checkpoint: Checkpoint | None = None, key: str = "",
              prepare: Callable[[Trainer], None] | None = None,
              heartbeat: Callable[[Trainer], Any] | None = None) -> Trainer:
    """Train one arm of ``cfg``: a fresh trainer (``prepare`` applied to it before its first step),
    or, with a ``checkpoint``, the one checkpointed there under the same ``key``. ``guidance`` and
    ``heartbeat`` are called after every step, ``live`` follows the arm."""
    def start() -> Trainer:
        trainer = cfg.new_trainer(video)
        if prepare is not None:
            prepare(trainer)
        return trainer

    if checkpoint is None:
        trainer = start()
    else:
        trainer = resume_or_start(checkpoint.path, video, key, start, device=cfg.device, overwrite=cfg.overwrite)
        if trainer.step_count:
            print(f"{label}: resuming from step {trainer.step_count} of {cfg.steps} ({checkpoint.path})")
    events: Sequence[dict] = ()
    callbacks: list[Callable[[Trainer], Any]] = []
    if guidance is not None:
        guidance.events = trainer.extra.setdefault("events", [])  # saved with every checkpoint
        guidance.attach(trainer)
        events = guidance.events
        callbacks.append(guidance)
    callbacks += [c for c in (checkpoint, heartbeat) if c is not None]
    if live is not None:
        live.update(label, trainer.history, events)
        callbacks.append(live.callback(label, events))
    trainer.train(callbacks=callbacks)
    if guidance is not None:
        guidance.detach(trainer)
    if live is not None:
        live.update(label, trainer.history, events)
    return trainer


def _video_record(video: Video) -> dict[str, Any]:
    return {"name": video.name, "shape": list(video.frames.shape), "sha256_16": video_key(video)}


def run_experiment(cfg: GuideConfig, live: Monitor | None = None) -> Results:
    """Train the no-guidance and guided arms, compress both with the final compressor, evaluate
    every frame, sweep both, and write ``results.json`` into ``cfg.out_dir``. Everything is checked
    first (``check``), the plain-codec anchor measured once. With several ``seeds`` each seed runs
    in ``out_dir/seed-<s>`` (its own results.json) and the results keep every seed's
    (``Results.runs``; ``table`` has a row per seed and arm). The results hold the arms' trainers and
    decoded models in memory (with several seeds: the first seed's decoded models only)."""
    check_out_dir(cfg.out_dir, cfg.to_dict(), cfg.overwrite)
    video = cfg.load_video()
    check(cfg, video)  # memory, ranks, encoder options: before the first step, not at the first event
    started = time.perf_counter()
    anchor_settings = cfg.anchor()
    anchor = video_anchor(video, **anchor_settings, crfs=cfg.anchor_crfs, progress=False) if cfg.anchor_crfs else []
    results = _over_seeds(cfg, lambda one, label: _guided(one, video, live, anchor, anchor_settings, label),
                          anchor=anchor, anchor_settings=anchor_settings)
    results.seconds = time.perf_counter() - started
    results.save()
    return results


def _guided(cfg: GuideConfig, video: Video, live: Monitor | None, anchor: list, anchor_settings: dict,
            label: Callable[[str], str]) -> Results:
    """One seed of ``run_experiment`` into ``cfg.out_dir``; ``label`` names an arm for ``live``."""
    out = Path(cfg.out_dir)
    base_name, guided_name = cfg.arm_names()
    started = time.perf_counter()

    def train_baseline(path: Path, key: str, heartbeat: Callable[[Trainer], Any]) -> Trainer:
        return train_arm(cfg, video, label(base_name), live=live,
                         checkpoint=Checkpoint(path, cfg.checkpoint_every), key=key, heartbeat=heartbeat)

    found = baseline(cfg, video, label(base_name), out, train_baseline, wait=False)  # None: another run trains it
    guidance = Guidance(cfg.final_compressor(), cfg.period, video, mode=cfg.mode,
                        reset_optimizer=cfg.reset_optimizer, probe_pixels=cfg.probe_pixels, seed=cfg.seed)
    guided = train_arm(cfg, video, label(guided_name), live=live, guidance=guidance,
                       checkpoint=Checkpoint(out / "guided.pt", cfg.checkpoint_every),
                       key=arm_key(cfg, video, GUIDED_KEYS))
    base, base_path = found or baseline(cfg, video, label(base_name), out, train_baseline, wait=True)
    if live is not None:
        live.update(label(base_name), base.history)

    arms = {base_name: base, guided_name: guided}
    final, curves, decoded = {}, {}, {}
    for name, trainer in arms.items():
        result = cfg.final_compressor().roundtrip(trainer.model)
        decoded[name] = result.to_model(trainer.device)
        measured = evaluate(decoded[name], video, progress=False).to_dict()
        raw = evaluate(trainer.model, video, ms_ssim=False, progress=False)
        final[name] = {"bits": {**result.bits(), "container": container_bits(result)}, "bpp": result.bpp(video),
                       **{k: v for k, v in measured.items() if k not in ("shape", "seconds", "path", "note")},
                       "uncompressed_psnr": raw.psnr, "uncompressed_psnr_float": raw.psnr_float}
        if cfg.sweep:
            settings = {json.dumps(o, sort_keys=True): cfg.final_compressor(**o) for o in cfg.sweep}
            curves[name] = rd_sweep(trainer.model, video, settings, progress=False)
    first = final[base_name]
    table = [{"method": name, "bpp": f["bpp"], "psnr": f["psnr"], "psnr_float": f["psnr_float"],
              "yuv_psnr": f["yuv_psnr"], "delta_bpp": f["bpp"] - first["bpp"], "delta_psnr": f["psnr"] - first["psnr"]}
             for name, f in final.items()]
    results = Results(
        kind="guide", config=cfg.to_dict(), video=_video_record(video),
        arms={name: {"history": t.history, "train_seconds": t.elapsed} for name, t in arms.items()},
        table=table, events=guidance.events, final=final, rd=curves, anchor=anchor, anchor_settings=anchor_settings,
        metrics=dict(METRICS),
        bd=bd_metrics(curves[base_name], curves[guided_name]) if cfg.sweep else {},
        checkpoints={base_name: str(base_path), guided_name: str(out / "guided.pt")},
        seconds=time.perf_counter() - started, plot_seconds=getattr(live, "plot_seconds", 0.0),
        provenance=provenance(guided.device), trainers=arms, decoded=decoded, clip=video)
    results.save()
    return results


def _over_seeds(cfg: ExperimentConfig, run: Callable[[Any, Callable[[str], str]], Results], **shared: Any) -> Results:
    """``run(cfg, label)`` once, or, with several ``seeds``, once per seed into ``out_dir/seed-<s>``
    (``label`` names an arm of that seed) and combined; memory holds one seed's trainers at a time
    and the first seed's decoded models."""
    if not cfg.seeds:
        return run(cfg, lambda arm: arm)
    runs = []
    for seed in cfg.seeds:
        one = cfg.for_seed(seed)
        check_out_dir(one.out_dir, one.to_dict(), cfg.overwrite)
        runs.append(run(one, partial(seed_label, seed=seed)))
        runs[-1].trainers = {}
        if len(runs) > 1:
            runs[-1].decoded = {}
    return _combine(cfg, runs, **shared)


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
        provenance=first.provenance, decoded=first.decoded, clip=first.clip, **shared)


def run_init_experiment(cfg: InitConfig, live: Monitor | None = None) -> Results:
    """Train the arms (``cfg.arms()``) with the same seed, steps and batch, evaluate every frame,
    compress each with Tucker at ``cfg.ranks``, and write ``results.json`` into ``cfg.out_dir``
    (with several ``seeds``: every seed's arms, each seed in ``out_dir/seed-<s>``, as in
    ``run_experiment``)."""
    check_out_dir(cfg.out_dir, cfg.to_dict(), cfg.overwrite)
    video = cfg.load_video()
    check(cfg, video)
    started = time.perf_counter()
    results = _over_seeds(cfg, lambda one, label: _init(one, video, live, label))
    results.seconds = time.perf_counter() - started
    results.save()
    return results


def _init(cfg: InitConfig, video: Video, live: Monitor | None, label: Callable[[str], str]) -> Results:
    """One seed of ``run_init_experiment`` into ``cfg.out_dir``."""
    started = time.perf_counter()
    arms, rows = {}, []
    for name, mapping, pull in cfg.arms():
        def prepare(trainer: Trainer, mapping: str | None = mapping, pull: bool = pull) -> None:
            if mapping is None:
                return
            init = tucker_init(trainer.model, video, tuple(cfg.ranks), mapping=mapping, scale=cfg.scale)
            if pull:
                trainer.regularizer = PullToInit(init, cfg.lam, tuple(cfg.pull_grids), cfg.steps if cfg.decay else None)

        trainer = train_arm(cfg, video, label(name), live=live, prepare=prepare)
        compressed = make_compressor("tucker", ranks=tuple(cfg.ranks)).roundtrip(trainer.model)
        rows.append({"arm": name, "steps_to_level": steps_to_reach(trainer.history, cfg.psnr_level),
                     "psnr": evaluate(trainer.model, video, ms_ssim=False, progress=False).psnr,
                     "tucker_bpp": compressed.bpp(video),
                     "tucker_psnr": evaluate(compressed.to_model(trainer.device), video, ms_ssim=False,
                                             progress=False).psnr,
                     "train_seconds": trainer.elapsed})
        arms[name] = trainer
    results = Results(
        kind="init", config=cfg.to_dict(), video=_video_record(video),
        arms={n: {"history": t.history, "train_seconds": t.elapsed} for n, t in arms.items()}, table=rows,
        metrics=dict(METRICS),
        seconds=time.perf_counter() - started, plot_seconds=getattr(live, "plot_seconds", 0.0),
        provenance=provenance(next(iter(arms.values())).device), trainers=arms)
    results.save()
    return results
