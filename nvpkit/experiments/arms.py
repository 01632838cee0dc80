"""What every kind of experiment uses to train and record its arms: ``train_arm`` (fresh or resumed
from its checkpoint, guidance and the live plot attached) and the ``Monitor`` that follows it."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ..data import Video
from ..provenance import code_change, numeric_code
from ..train import Checkpoint, Trainer, checkpoint_code, resume_or_start
from .cache import video_key
from .guidance import Guidance

if TYPE_CHECKING:
    from .config import ExperimentConfig

__all__ = ["Monitor", "train_arm", "video_record", "check_resumable"]


class Monitor(Protocol):
    """What follows training live (``nvpkit.viz.LivePlot`` is one)."""

    plot_seconds: float

    def update(self, arm: str, history: dict[str, list[float]], events: Sequence[dict] = ()) -> None: ...

    def callback(self, arm: str, events: Sequence[dict] = ()) -> Callable[[Trainer], None]: ...


def train_arm(cfg: "ExperimentConfig", video: Video, label: str, *, live: Monitor | None = None,
              guidance: Guidance | None = None, checkpoint: Checkpoint | None = None, key: str = "",
              prepare: Callable[[Trainer], None] | None = None, attach: Callable[[Trainer], None] | None = None,
              heartbeat: Callable[[Trainer], Any] | None = None) -> Trainer:
    """Train one arm of ``cfg``: a fresh trainer (``prepare`` applied to it before its first step),
    or, with a ``checkpoint``, the one checkpointed there under the same ``key``. ``attach`` is
    applied to the trainer either way (what a resumed run must set up again from ``trainer.extra``);
    ``guidance`` and ``heartbeat`` are called after every step, ``live`` follows the arm."""
    def start() -> Trainer:
        trainer = cfg.new_trainer(video)
        if prepare is not None:
            prepare(trainer)
        return trainer

    if checkpoint is None:
        trainer = start()
    else:
        trainer = resume_or_start(checkpoint.path, video, key, start, code=numeric_code(),
                                  allow_code_change=cfg.allow_code_change, device=cfg.device,
                                  overwrite=cfg.overwrite)
        if trainer.step_count:
            print(f"{label}: resuming from step {trainer.step_count} of {cfg.steps} ({checkpoint.path})")
    if attach is not None:
        attach(trainer)
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


def check_resumable(cfg: "ExperimentConfig", folders: Sequence[Path]) -> None:
    """Before anything trains: ``FileExistsError`` if a checkpoint in ``folders`` was trained by
    other code and ``cfg`` neither allows resuming it (``allow_code_change``) nor restarts it
    (``overwrite``), so a run stops at once, not after its first arm."""
    if cfg.allow_code_change or cfg.overwrite:
        return
    now = numeric_code()
    for folder in folders:
        for path in sorted(Path(folder).glob("*.pt")):
            saved = checkpoint_code(path)
            if saved is not None and saved != now:
                raise FileExistsError(f"{str(path)!r} was trained by other code ({code_change(saved, now)}); resume it "
                                      "with allow_code_change=True (--allow-code-change; the change is recorded) or "
                                      "start again with overwrite=True")


def video_record(video: Video) -> dict[str, Any]:
    """What results.json records of the clip: name, shape ``[T, H, W, 3]``, content hash, the source's
    colour (``"RGB"`` for an RGB source) and whether YUV PSNR is against its planes."""
    return {"name": video.name, "shape": list(video.frames.shape), "sha256_16": video_key(video),
            "colour": video.colour.describe() if video.colour is not None else "RGB",
            "yuv_psnr_against_source_planes": video.yuv is not None}
