"""Before a long run: every setting checked against the model sized for the clip, and a plan.

``check(cfg, video)`` is what ``run_experiment`` does before the first training step: the memory the
run needs against what the machine has, Tucker ranks against the grid sized for the clip, then one
real round trip of the model's initial grids through every compressor the run will use (the final
one and each sweep setting) and the kind's own preparations (Tucker initialisation at its ranks), so
a rank larger than the sized grid or an option the encoder refuses fails in seconds, naming the
parameter; a check that passed is not repeated in the same process for the same config and clip
(``plan`` then ``run_experiment`` round-trips once). ``check_all`` is what ``sweep`` does for every
job before submitting any: the same on the first frames of each clip (ranks still against the full
length), without the memory check. ``plan(cfg)`` adds measured times (a few training steps, a
frame's evaluation, what the kind times: a few anchor frames) and the estimated wall-clock of every
stage of the experiment, which the kind estimates (``ExperimentConfig.stages``). ``choose_batch``
turns ``batch="auto"`` into a number: the published batch on a GPU whose memory holds its step, else
the largest that fits, the kind's CPU batch on the CPU.

Memory is estimated with ``nvpkit.memory``'s constants, per parameter P of the sized model and per
byte of the uint8 clip: ``TRAIN_BYTES`` for every arm held at once (value, gradient, two AdamW
moments), ``EVAL_BYTES`` for a compression (decoded tensors and the model built from them) plus the
final compressor's largest working memory (its codecs' ``decode_work``), ``DECODED_BYTES`` for every
decoded model kept (``decoded_models``: guided training keeps both arms' for the viewer), what the
kind holds besides (``training_memory``: codec_ste's residual), the clip (twice on CUDA when it stays
in pinned host memory, ``memory.clip_on_device``) and the activations of a training step (measured
by ``plan``). With several seeds the arms of one seed are held at a time.
"""
from __future__ import annotations

import gc
import json
import time
from dataclasses import dataclass, field
from typing import Any

import torch

from .._device import available_host_memory, host_peak_memory, reset_host_peak, resolve_device
from ..compress import CodecError
from ..data import Video, load_video
from ..memory import CHECKPOINT_BYTES, DECODED_BYTES, EVAL_BYTES, TRAIN_BYTES, clip_on_device
from ..model import NVP
from ..parts import PARTS, count_parameters, part_shapes
from ..train import Trainer
from ..rendering import evaluate
from ..train import PUBLISHED_BATCH, PUBLISHED_STEPS
from .cache import video_key
from .config import AUTO, ExperimentConfig, Timing

__all__ = ["Plan", "plan", "check", "check_all", "choose_batch", "fit_batch", "memory_needed", "memory_available",
           "pixels_note", "PUBLISHED_PIXELS"]

PUBLISHED_PIXELS = PUBLISHED_STEPS * PUBLISHED_BATCH
"""Pixels a published run's arm trains on (steps x batch)."""
BATCH_QUANTUM = 2**14
"""An ``"auto"`` batch smaller than the published one is a multiple of this."""
PROBE_BATCH = 2**16
"""The batch whose step's working memory ``choose_batch`` measures on CUDA."""
DEVICE_HEADROOM = 0.9
"""The share of free device memory an ``"auto"`` batch may plan to fill."""
GiB = 2**30
_PASSED: dict[tuple[str, str, int | None], dict[str, float]] = {}
"""The round-trip seconds of every ``check`` that passed in this process, by config, clip and num_frames."""


def memory_needed(cfg: ExperimentConfig, video: Video, activations: int = 0) -> dict[str, dict[str, int]]:
    """Bytes an experiment needs, per item, on the host and (on CUDA) on the device; see the module
    docstring for the model. ``activations``: a training step's working memory, where measured."""
    device = resolve_device(cfg.device)
    model_config = cfg.model_config(video)
    params = count_parameters(model_config)["total"]
    clip = video.frames.nbytes
    training = {"training state of the arms": cfg.held_arms() * TRAIN_BYTES * params, "step activations": activations,
                "decoded models": cfg.decoded_models() * DECODED_BYTES * params, **cfg.training_memory(model_config)}
    try:
        work = max(cfg.final()[1].codec(p).decode_work(part_shapes(model_config, p)) for p in PARTS)
    except (TypeError, ValueError):  # no final compressor, or one that does not fit (``check`` names it)
        work = 0
    host = {"uint8 clip": clip, "compression": EVAL_BYTES * params + work}
    if device.type == "cpu":
        return {"host": {**host, **training}}
    free, _ = torch.cuda.mem_get_info(device)
    on_device = clip_on_device(clip, free)
    host["pinned copy of the clip"] = 0 if on_device else clip
    return {"host": host, "device": {**training, "uint8 clip": clip if on_device else 0}}


def memory_available(device: torch.device) -> dict[str, int | None]:
    """Bytes available now: host (MemAvailable) and, on CUDA, free device memory."""
    out = {"host": available_host_memory()}
    if device.type == "cuda":
        out["device"] = torch.cuda.mem_get_info(device)[0]
    return out


def _check_memory(cfg: ExperimentConfig, video: Video, activations: int = 0) -> None:
    available = memory_available(resolve_device(cfg.device))
    for where, items in memory_needed(cfg, video, activations).items():
        need, have = sum(items.values()), available.get(where)
        if have is not None and need > have:
            raise ValueError(
                f"{type(cfg).__name__}: config={cfg.config!r} on {video} needs {need / GiB:.2f} GiB of {where} memory "
                f"({_items(items)}), {have / GiB:.2f} GiB available; use fewer frames (num_frames), a larger "
                "downscale or a smaller model config")


def check(cfg: ExperimentConfig, video: Video, *, memory: bool = True, model: NVP | None = None,
          num_frames: int | None = None) -> dict[str, float]:
    """Check ``cfg`` against the model sized for ``video`` before anything trains: memory (unless
    ``memory=False``); Tucker ranks against the sized grid, from shapes; then one round trip of the
    initial grids through each compressor the run uses and the kind's own preparations
    (``extra_checks``: the Tucker initialisation of ``InitConfig``). Raises ``ValueError`` naming
    the parameter; returns the seconds each round trip took (the first estimate of a guidance
    event's cost). The round trips of a check that passed
    before in this process, for the same config and clip, are not repeated: their seconds are returned.

    ``num_frames``: the clip's full length when ``video`` holds only its first frames (a sweep driver
    checking many jobs): ranks are checked against the grid sized for the full length, and only the
    compressors whose size depends on the content (those that run an encoder) are round-tripped, on
    the grids sized for ``video``."""
    if memory:
        _check_memory(cfg, video)
    name = type(cfg).__name__
    full = cfg.model_config(video, num_frames)
    cfg.check_model(full)
    encoders = {}
    for label, compressor in cfg.compressors().items():
        try:
            compressor.shape_bits(full)
            if num_frames is None:
                encoders[label] = compressor
        except TypeError:  # the size depends on the content: an encoder runs, the round trip checks it
            encoders[label] = compressor
        except ValueError as err:
            raise ValueError(f"{name}: {label} does not fit the model sized for the clip: {err}") from None
    key = (json.dumps(cfg.to_dict(), sort_keys=True), video_key(video), num_frames)
    if key in _PASSED:
        return dict(_PASSED[key])
    model = model if model is not None else NVP.seeded(cfg.model_config(video), cfg.seed)  # an arm's start
    seconds = cfg.extra_checks(model, video) if num_frames is None else {}
    for label, compressor in encoders.items():
        try:
            seconds[label] = compressor.roundtrip(model).seconds
        except (ValueError, CodecError) as err:
            raise ValueError(f"{name}: {label} fails on the model sized for {video}: {err}") from None
    _PASSED[key] = seconds
    return dict(seconds)


def check_all(configs: list[ExperimentConfig], frames: int = 8) -> None:
    """``check`` for many configs, as a sweep driver does before it submits any job: without the
    memory check (the workers' machines may differ), on the first ``frames`` frames of each clip
    (loaded once; see ``check``'s ``num_frames``), and once for configs that differ only in what a
    check does not see (steps, period, mode, ...). The ``ValueError`` names the config."""
    videos: dict[tuple, Video] = {}
    seen = set()
    for cfg in configs:
        clip = (cfg.dataset, cfg.num_frames, cfg.downscale)
        what = (clip, cfg.config, cfg.seed, cfg.check_signature())
        if what in seen:
            continue
        seen.add(what)
        if clip not in videos:
            videos[clip] = load_video(cfg.dataset, min(frames, cfg.num_frames), downscale=cfg.downscale)
        check(cfg, videos[clip], memory=False, num_frames=cfg.num_frames)


@dataclass
class Plan:
    """What a run will need and take, measured on this machine before it starts (``plan``)."""

    experiment: str
    video: str
    device: str
    parameters: dict[str, int]
    memory: dict[str, dict[str, int]]
    """Bytes needed per item, on the ``host`` and (CUDA) the ``device``."""
    available: dict[str, int | None]
    checkpoint_bytes: int
    """Disk for the run's checkpoints (every arm that checkpoints)."""
    bits: dict[str, int] | None
    """The final compressor's size from shapes, where it does not depend on the content."""
    compressor: str | None
    bpp: float | None
    measured: dict[str, float]
    """Seconds: ``step``, ``frame`` (evaluation of a frame), ``anchor frame``, and each check."""
    stages: list[tuple[str, float, str]] = field(default_factory=list)
    """Estimated (stage, seconds, what) of the whole experiment, in order."""
    batch: int = 0
    """Pixels per step of the run."""
    batch_reason: str = ""
    """Why this batch (given, or what ``"auto"`` chose and why)."""
    warnings: list[str] = field(default_factory=list)
    """What the run should know before it starts (e.g. far fewer pixels seen than published)."""

    @property
    def total_seconds(self) -> float:
        return sum(s for _, s, _ in self.stages)

    def to_dict(self) -> dict[str, Any]:
        return {"experiment": self.experiment, "video": self.video, "device": self.device,
                "parameters": self.parameters, "memory": self.memory, "available": self.available,
                "checkpoint_bytes": self.checkpoint_bytes, "bits": self.bits, "bpp": self.bpp,
                "compressor": self.compressor,
                "measured": self.measured, "stages": [list(s) for s in self.stages],
                "total_seconds": self.total_seconds, "batch": self.batch, "batch_reason": self.batch_reason,
                "warnings": self.warnings}

    def __repr__(self) -> str:
        counts = " · ".join(f"{k} {v:,}" for k, v in self.parameters.items())
        lines = [f"Plan: {self.experiment} on {self.video}, {self.device}", f"  parameters: {counts}"]
        for where, items in self.memory.items():
            have = self.available.get(where)
            lines.append(f"  {where} memory: {_size(sum(items.values()))} needed ({_items(items)}); "
                         + (f"{_size(have)} available" if have is not None else "available unknown"))
        lines.append(f"  disk: {_size(self.checkpoint_bytes)} of checkpoints")
        lines.append(f"  batch: {self.batch:,} pixels per step ({self.batch_reason})")
        if self.bits is not None:
            lines.append(f"  final size from shapes: {self.bits['total']:,} bits = {self.bpp:.4f} bpp")
        elif self.compressor is not None:
            lines.append(f"  final size: depends on the content ({self.compressor})")
        timed = " · ".join(f"{k} {_duration(v)}" for k, v in self.measured.items())
        lines.append(f"  measured: {timed}")
        width = max(len(s) for s, _, _ in self.stages)
        lines += [f"  {s:<{width}}  {_duration(sec):>9}  {what}" for s, sec, what in self.stages]
        lines.append(f"  {'total':<{width}}  {_duration(self.total_seconds):>9}")
        lines += [f"  WARNING: {w}" for w in self.warnings]
        return "\n".join(lines)


def _size(count: int) -> str:
    return f"{count / GiB:.2f} GiB" if count >= GiB / 2 else f"{count / 2**20:.1f} MiB"


def _items(items: dict[str, int]) -> str:
    """The nonzero items of a memory need, with their sizes."""
    return ", ".join(f"{k} {_size(v)}" for k, v in items.items() if v)


def _duration(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time_steps(cfg: ExperimentConfig, video: Video, steps: int, guided: bool = False
                ) -> tuple[float, int, Trainer | None]:
    """Seconds per training step (after two warm-up steps) of a plain trainer of ``cfg`` or, with
    ``guided``, of the kind's ``timed_trainer`` (guidance attached; None where the kind has none),
    the steps' working memory (the peak from before the trainer was built, less the training state
    and the clip it put on the device) and the trainer."""
    device = resolve_device(cfg.device)
    if device.type == "cuda":
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
    else:
        base = host_peak_memory() if reset_host_peak() else None
    trainer = cfg.timed_trainer(video) if guided else cfg.new_trainer(video)
    if trainer is None:
        return 0.0, 0, None
    for _ in range(2):
        trainer.step()
    _sync(device)
    started = time.perf_counter()
    for _ in range(steps):
        trainer.step()
    _sync(device)
    seconds = (time.perf_counter() - started) / max(steps, 1)
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else host_peak_memory()
    state = TRAIN_BYTES * count_parameters(trainer.model.config)["total"]
    if device.type == "cuda" and not trainer.sampler.pinned:
        state += video.frames.nbytes
    activations = 0 if base is None or peak is None else max(0, peak - base - state)  # 0: not measurable here
    return seconds, activations, trainer


def fit_batch(per_pixel: float, budget: int, published: int = PUBLISHED_BATCH) -> tuple[int, str]:
    """The batch ``"auto"`` chooses on a device with ``budget`` bytes for a step's working memory,
    ``per_pixel`` bytes per pixel of the batch: the published batch when it fits in
    ``DEVICE_HEADROOM`` of the budget, else the largest multiple of ``BATCH_QUANTUM`` that does
    (``ValueError`` when not even one does); and why, in words."""
    usable = DEVICE_HEADROOM * budget
    need = per_pixel * published
    if need <= usable:
        return published, f"auto: the published batch; a step needs {_size(int(need))} of {_size(budget)} free"
    fits = int(usable / per_pixel) // BATCH_QUANTUM * BATCH_QUANTUM if per_pixel > 0 else 0
    if fits < BATCH_QUANTUM:
        raise ValueError(f"batch='auto': a step of {BATCH_QUANTUM:,} pixels needs "
                         f"{_size(int(per_pixel * BATCH_QUANTUM))} of device memory, {_size(budget)} free after the "
                         "model and the clip; give a smaller batch, fewer frames (num_frames) or a smaller model config")
    return fits, (f"auto: the published {published:,} needs {_size(int(need))} of device memory for a step, "
                  f"{_size(budget)} free; the largest multiple of {BATCH_QUANTUM:,} that fits")


def choose_batch(cfg: ExperimentConfig, video: Video) -> tuple[ExperimentConfig, str]:
    """``cfg`` with its batch chosen, and why: a given batch is kept; ``"auto"`` is the kind's
    ``cpu_batch`` on the CPU and, on CUDA, ``fit_batch`` of a step's working memory per pixel
    (measured at ``PROBE_BATCH``) and the device memory left by the run's other needs."""
    if cfg.batch != AUTO:
        return cfg, "given"
    device = resolve_device(cfg.device)
    if device.type != "cuda":
        return cfg.with_batch(cfg.cpu_batch), f"auto: {cfg.cpu_batch:,} on the CPU"
    probe = cfg.with_batch(PROBE_BATCH)
    _, activations, _ = _time_steps(probe, video, 1)
    gc.collect()  # the probe's trainer
    others = sum(memory_needed(probe, video)["device"].values())  # the run's model, state, clip, decoded models
    free = torch.cuda.mem_get_info(device)[0] + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    budget = max(0, free - others)
    batch, reason = fit_batch(activations / PROBE_BATCH, budget)
    return cfg.with_batch(batch), reason


def pixels_note(steps: int, batch: int) -> str | None:
    """What to say of an arm that trains on ``steps x batch`` pixels: nothing within a factor of 10
    of the published run's ``PUBLISHED_PIXELS``, else how far it is."""
    seen = steps * batch
    if PUBLISHED_PIXELS / 10 <= seen <= PUBLISHED_PIXELS * 10:
        return None
    return (f"each arm trains on steps x batch = {steps:,} x {batch:,} = {seen:,} pixels, "
            f"{seen / PUBLISHED_PIXELS:.3g} times the published run's {PUBLISHED_STEPS:,} x {PUBLISHED_BATCH:,}: its numbers are "
            "not comparable with published ones (batch 'auto' takes the published batch where the GPU's memory allows)")


def _frame_seconds(model: NVP, video: Video, ms_ssim: bool) -> float:
    """Seconds to render and score one frame (two timed)."""
    clip = video.head(2)
    started = time.perf_counter()
    evaluate(model, clip, ms_ssim=ms_ssim, progress=False)
    return (time.perf_counter() - started) / clip.num_frames


def plan(cfg: ExperimentConfig, video: Video | None = None, *, steps: int = 5) -> Plan:
    """The plan of ``cfg`` on this machine: the batch chosen (``choose_batch``), ``check``
    (refusing what does not fit or fails), then ``steps`` timed training steps, a frame's
    evaluation and what the kind times itself (the anchor of guided training), and the estimated
    seconds of every stage. ``video`` defaults to ``cfg.load_video()``."""
    video = video if video is not None else cfg.load_video()
    device = resolve_device(cfg.device)
    cfg, reason = choose_batch(cfg, video)
    _check_memory(cfg, video)
    step, activations, trainer = _time_steps(cfg, video, steps)
    _check_memory(cfg, video, activations)
    guided_step, _, guided = _time_steps(cfg, video, steps, guided=True)
    model = trainer.model
    timing = Timing(step=step, frame=_frame_seconds(model, video, ms_ssim=False),
                    frame_ms_ssim=_frame_seconds(model, video, ms_ssim=True),
                    checks=check(cfg, video, memory=False, model=model), event=cfg.time_event(trainer, video),
                    guided_step=guided_step)
    stages, extra = cfg.stages(video, timing)
    measured = {"step": step, **({"guided step": guided_step} if guided else {}), "frame": timing.frame,
                "frame with MS-SSIM": timing.frame_ms_ssim, **extra}
    model_config = cfg.model_config(video)
    bits = bpp = name = None
    if cfg.final() is not None:
        name, compressor = cfg.final()
        try:
            bits = compressor.shape_bits(model_config)
            bpp = bits["total"] / video.num_pixels
        except TypeError:  # a codec whose size depends on the content
            pass
    far = pixels_note(cfg.steps, cfg.batch) if device.type == "cuda" else None  # a CPU run is small by design
    warnings = [far] if far else []
    params = count_parameters(model_config)
    return Plan(experiment=type(cfg).__name__, video=repr(video), device=str(device), parameters=params,
                memory=memory_needed(cfg, video, activations), available=memory_available(device),
                checkpoint_bytes=len(cfg.seed_list()) * cfg.checkpointed_arms() * CHECKPOINT_BYTES * params["total"],
                bits=bits, bpp=bpp, compressor=name, measured=measured, stages=stages, batch=cfg.batch,
                batch_reason=reason, warnings=warnings)
