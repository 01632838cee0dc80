"""Before a long run: every setting checked against the model sized for the clip, and a plan.

``check(cfg, video)`` is what ``run_experiment`` and ``run_init_experiment`` do before the first
training step: the memory the run needs against what the machine has, Tucker ranks against the
grid sized for the clip, then one real round trip of the model's initial grids through every
compressor the run will use (the final one and each sweep setting; Tucker initialisation at its
ranks), so a rank larger than the sized grid or an option the encoder refuses fails in seconds,
naming the parameter; a check that passed is not repeated in the same process for the same config
and clip (``plan`` then ``run_experiment`` round-trips once). ``check_all`` is what ``sweep`` does
for every job before submitting any: the same on the first frames of each clip (ranks still against
the full length), without the memory check. ``plan(cfg)`` adds measured times (a few training
steps, a frame's evaluation, a few anchor frames) and the estimated wall-clock of every stage of the
experiment.

Memory is estimated per parameter P of the sized model and per byte of the uint8 clip:
``TRAIN_BYTES`` for every arm held at once (value, gradient, two AdamW moments), ``EVAL_BYTES`` for
a compression (decoded tensors and the model built from them), ``DECODED_BYTES`` for every decoded
model kept (guided training keeps both arms' for the viewer), the clip (twice on CUDA when it stays
in pinned host memory) and the activations of a training step (measured by ``plan``). With several
seeds the arms of one seed are held at a time.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import torch

from .._device import available_host_memory, host_peak_memory, reset_host_peak, resolve_device
from ..compress import CodecError, Compressor, Tucker, make_compressor
from ..compress.rd import anchor_decode, anchor_encode
from ..data import Video, load_video
from ..model import NVP
from ..parts import count_parameters
from ..rendering import evaluate
from .cache import baseline_path, video_key
from .config import ExperimentConfig, GuideConfig, InitConfig
from .guidance import Guidance
from .initialize import tucker_init

__all__ = ["Plan", "plan", "check", "check_all", "memory_needed", "memory_available", "TRAIN_BYTES", "EVAL_BYTES",
           "DECODED_BYTES", "CHECKPOINT_BYTES"]

TRAIN_BYTES = 16
"""Bytes per parameter of an arm in training: value, gradient and two AdamW moments, float32."""
EVAL_BYTES = 8
"""Bytes per parameter of a compression: the decoded tensors and the model built from them."""
DECODED_BYTES = 4
"""Bytes per parameter of a decoded model kept after the final compression (float32 values)."""
CHECKPOINT_BYTES = 12
"""Bytes per parameter of a checkpoint: the values and the two AdamW moments."""
GiB = 2**30
_PASSED: dict[tuple[str, str, int | None], dict[str, float]] = {}
"""The round-trip seconds of every ``check`` that passed in this process, by config, clip and num_frames."""


def _held_arms(cfg: ExperimentConfig) -> int:
    """Trainers an experiment holds at once (the results keep every arm for the notebook)."""
    if isinstance(cfg, GuideConfig):
        return 2
    if isinstance(cfg, InitConfig):
        return len(cfg.arms())
    return 1


def _checkpointed_arms(cfg: ExperimentConfig) -> int:
    """Arms whose checkpoints stay on disk (guided training: the guided one and the cached baseline)."""
    return 0 if isinstance(cfg, InitConfig) else _held_arms(cfg)


def memory_needed(cfg: ExperimentConfig, video: Video, activations: int = 0) -> dict[str, dict[str, int]]:
    """Bytes an experiment needs, per item, on the host and (on CUDA) on the device; see the module
    docstring for the model. ``activations``: a training step's working memory, where measured."""
    device = resolve_device(cfg.device)
    params = count_parameters(cfg.model_config(video))["total"]
    clip = video.frames.nbytes
    if isinstance(cfg, GuideConfig):  # both arms' decoded models (and the first seed's, with several seeds)
        decoded = (4 if len(cfg.seed_list()) > 1 else 2) * DECODED_BYTES * params
    else:
        decoded = DECODED_BYTES * params
    training = {"training state of the arms": _held_arms(cfg) * TRAIN_BYTES * params, "step activations": activations,
                "decoded models": decoded}
    host = {"uint8 clip": clip, "compression": EVAL_BYTES * params}
    if device.type == "cpu":
        return {"host": {**host, **training}}
    free, _ = torch.cuda.mem_get_info(device)
    on_device = clip <= free // 2  # as PixelSampler decides
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


def _compressors(cfg: ExperimentConfig) -> dict[str, Compressor]:
    """Every compressor a run uses, by the parameter that names it."""
    if isinstance(cfg, GuideConfig):
        found = {f"compressor={cfg.compressor!r}, settings={cfg.settings!r}": cfg.final_compressor()}
        for override in cfg.sweep:
            found[f"sweep setting {override!r}"] = cfg.final_compressor(**override)
        return found
    if isinstance(cfg, InitConfig):
        return {f"ranks={cfg.ranks!r} (the final Tucker compression)": make_compressor("tucker", ranks=tuple(cfg.ranks))}
    return {}


def check(cfg: ExperimentConfig, video: Video, *, memory: bool = True, model: NVP | None = None,
          num_frames: int | None = None) -> dict[str, float]:
    """Check ``cfg`` against the model sized for ``video`` before anything trains: memory (unless
    ``memory=False``); Tucker ranks against the sized grid, from shapes; then one round trip of the
    initial grids through each compressor the run uses and, for ``InitConfig``, the Tucker
    initialisation. Raises ``ValueError`` naming the parameter; returns the seconds each round trip
    took (the first estimate of a guidance event's cost). The round trips of a check that passed
    before in this process, for the same config and clip, are not repeated: their seconds are returned.

    ``num_frames``: the clip's full length when ``video`` holds only its first frames (a sweep driver
    checking many jobs): ranks are checked against the grid sized for the full length, and only the
    compressors whose size depends on the content (those that run an encoder) are round-tripped, on
    the grids sized for ``video``."""
    if memory:
        _check_memory(cfg, video)
    name = type(cfg).__name__
    full = cfg.model_config(video, num_frames)
    if isinstance(cfg, InitConfig):
        try:
            Tucker(ranks=tuple(cfg.ranks)).ranks_for(full.sparse.shape[:3])
        except ValueError as err:
            raise ValueError(f"{name}: ranks={cfg.ranks!r} do not fit the sparse grid sized for the clip "
                             f"({full.sparse.shape[:3]}): {err}") from None
    encoders = {}
    for label, compressor in _compressors(cfg).items():
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
    seconds = {}
    if isinstance(cfg, InitConfig) and num_frames is None:
        started = time.perf_counter()
        tucker_init(model, video, tuple(cfg.ranks), mapping=cfg.mapping, scale=cfg.scale)
        seconds["tucker_init"] = time.perf_counter() - started
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
        what = (clip, cfg.config, cfg.seed, tuple(_compressors(cfg)),
                (cfg.ranks, cfg.mapping, cfg.scale) if isinstance(cfg, InitConfig) else None)
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

    @property
    def total_seconds(self) -> float:
        return sum(s for _, s, _ in self.stages)

    def to_dict(self) -> dict[str, Any]:
        return {"experiment": self.experiment, "video": self.video, "device": self.device,
                "parameters": self.parameters, "memory": self.memory, "available": self.available,
                "checkpoint_bytes": self.checkpoint_bytes, "bits": self.bits, "bpp": self.bpp,
                "compressor": self.compressor,
                "measured": self.measured, "stages": [list(s) for s in self.stages],
                "total_seconds": self.total_seconds}

    def __repr__(self) -> str:
        counts = " · ".join(f"{k} {v:,}" for k, v in self.parameters.items())
        lines = [f"Plan: {self.experiment} on {self.video}, {self.device}", f"  parameters: {counts}"]
        for where, items in self.memory.items():
            have = self.available.get(where)
            lines.append(f"  {where} memory: {_size(sum(items.values()))} needed ({_items(items)}); "
                         + (f"{_size(have)} available" if have is not None else "available unknown"))
        lines.append(f"  disk: {_size(self.checkpoint_bytes)} of checkpoints")
        if self.bits is not None:
            lines.append(f"  final size from shapes: {self.bits['total']:,} bits = {self.bpp:.4f} bpp")
        elif self.compressor is not None:
            lines.append(f"  final size: depends on the content ({self.compressor})")
        timed = " · ".join(f"{k} {_duration(v)}" for k, v in self.measured.items())
        lines.append(f"  measured: {timed}")
        width = max(len(s) for s, _, _ in self.stages)
        lines += [f"  {s:<{width}}  {_duration(sec):>9}  {what}" for s, sec, what in self.stages]
        lines.append(f"  {'total':<{width}}  {_duration(self.total_seconds):>9}")
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


def _time_steps(cfg: ExperimentConfig, video: Video, steps: int) -> tuple[float, int, NVP]:
    """Seconds per training step (after two warm-up steps), the steps' working memory (the peak
    from before the trainer was built, less the training state and the clip it put on the device)
    and the trainer's model."""
    device = resolve_device(cfg.device)
    if device.type == "cuda":
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
    else:
        base = host_peak_memory() if reset_host_peak() else None
    trainer = cfg.new_trainer(video)
    if isinstance(cfg, GuideConfig) and cfg.mode == "straight_through":  # quantized grids in every step
        Guidance(cfg.final_compressor(), cfg.period, video, mode=cfg.mode).attach(trainer)
    for _ in range(2):
        trainer.step()
    _sync(device)
    started = time.perf_counter()
    for _ in range(steps):
        trainer.step()
    _sync(device)
    seconds = (time.perf_counter() - started) / steps
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else host_peak_memory()
    state = TRAIN_BYTES * count_parameters(trainer.model.config)["total"]
    if device.type == "cuda" and not trainer.sampler.pinned:
        state += video.frames.nbytes
    activations = 0 if base is None or peak is None else max(0, peak - base - state)  # 0: not measurable here
    return seconds, activations, trainer.model


def _clip(video: Video, frames: int) -> Video:
    return Video(video.frames[:frames], video.name, video.fps, video.source)


def _frame_seconds(model: NVP, video: Video, ms_ssim: bool) -> float:
    """Seconds to render and score one frame (two timed)."""
    clip = _clip(video, min(2, video.num_frames))
    started = time.perf_counter()
    evaluate(model, clip, ms_ssim=ms_ssim, progress=False)
    return (time.perf_counter() - started) / clip.num_frames


def _anchor_frame_seconds(cfg: GuideConfig, video: Video) -> float:
    """Seconds to encode and decode one frame with the anchor (a few frames timed)."""
    clip = _clip(video, min(3, video.num_frames))
    settings = cfg.anchor()
    started = time.perf_counter()
    stream = anchor_encode(clip, settings["codec"], sorted(cfg.anchor_crfs)[len(cfg.anchor_crfs) // 2],
                           settings["preset"], settings["chroma"])
    for _ in anchor_decode(stream, clip, settings["codec"]):
        pass
    return (time.perf_counter() - started) / clip.num_frames


def plan(cfg: ExperimentConfig, video: Video | None = None, *, steps: int = 5) -> Plan:
    """The plan of ``cfg`` on this machine: ``check`` (refusing what does not fit or fails), then
    ``steps`` timed training steps, a frame's evaluation and (guided training) a few anchor frames,
    and the estimated seconds of every stage. ``video`` defaults to ``cfg.load_video()``."""
    video = video if video is not None else cfg.load_video()
    device = resolve_device(cfg.device)
    _check_memory(cfg, video)
    step, activations, model = _time_steps(cfg, video, steps)
    _check_memory(cfg, video, activations)
    frame = _frame_seconds(model, video, ms_ssim=True)
    plain_frame = _frame_seconds(model, video, ms_ssim=False)
    checks = check(cfg, video, memory=False, model=model)
    measured = {"step": step, "frame": plain_frame, "frame with MS-SSIM": frame}
    frames = video.num_frames
    stages: list[tuple[str, float, str]] = []
    bits = bpp = None
    model_config = cfg.model_config(video)
    seeds = len(cfg.seed_list())
    per_seed = f" x {seeds} seeds" if cfg.seeds else ""
    if isinstance(cfg, GuideConfig):
        final = next(iter(checks.values()))
        events = cfg.steps // cfg.period
        base_name, guided_name = cfg.arm_names()
        cached = sum(baseline_path(cfg.for_seed(s) if cfg.seeds else cfg, video).exists() for s in cfg.seed_list())
        stages += [(base_name, (seeds - cached) * cfg.steps * step,
                    f"{cfg.steps:,} steps{per_seed}" + (f" ({cached} cached)" if cached else "")),
                   (guided_name, seeds * (cfg.steps * step + events * final),
                    f"{cfg.steps:,} steps, {events} events{per_seed}")]
        stages.append(("final compression and evaluation", seeds * 2 * (final + frames * (frame + plain_frame)),
                       f"2 arms x (round trip + {frames} frames twice){per_seed}"))
        if cfg.sweep:
            sweep = sum(list(checks.values())[1:]) + len(cfg.sweep) * frames * plain_frame
            stages.append(("RD sweep", seeds * 2 * sweep, f"2 arms x {len(cfg.sweep)} settings{per_seed}"))
        if cfg.anchor_crfs:
            anchor = _anchor_frame_seconds(cfg, video)
            measured["anchor frame"] = anchor
            stages.append(("anchor", len(cfg.anchor_crfs) * frames * anchor, f"{len(cfg.anchor_crfs)} crfs"))
        measured["guidance event"] = final
        compressor, name = cfg.final_compressor(), cfg.compressor
    elif isinstance(cfg, InitConfig):
        arms = len(cfg.arms())
        final = checks[next(k for k in checks if k.startswith("ranks"))]
        measured["Tucker init"], measured["Tucker compression"] = checks["tucker_init"], final
        stages.append(("arms", seeds * arms * (cfg.steps * step + checks["tucker_init"]),
                       f"{arms} arms x {cfg.steps:,} steps{per_seed}"))
        stages.append(("Tucker compression and evaluation", seeds * arms * (final + 2 * frames * plain_frame),
                       f"{arms} arms x (round trip + {frames} frames twice){per_seed}"))
        compressor, name = make_compressor("tucker", ranks=tuple(cfg.ranks)), "tucker"
    else:
        stages += [("training", cfg.steps * step, f"{cfg.steps:,} steps"),
                   ("evaluation", frames * frame, f"{frames} frames")]
        compressor = name = None
    if compressor is not None:
        try:
            bits = compressor.shape_bits(model_config)
            bpp = bits["total"] / video.num_pixels
        except TypeError:  # a codec whose size depends on the content
            pass
    params = count_parameters(model_config)
    return Plan(experiment=type(cfg).__name__, video=repr(video), device=str(device), parameters=params,
                memory=memory_needed(cfg, video, activations), available=memory_available(device),
                checkpoint_bytes=seeds * _checkpointed_arms(cfg) * CHECKPOINT_BYTES * params["total"],
                bits=bits, bpp=bpp, compressor=name, measured=measured, stages=stages)
