"""The no-guidance arm cache: an arm trained once per set of parameters and video, shared by every run
that needs it (a sweep's jobs too, across processes and hosts on a shared filesystem). A cached arm
trained by other code (``provenance.numeric_code``) is trained again, or used with
``allow_code_change`` (the change recorded in it)."""
from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .._device import resolve_device
from .._files import Claim, publish
from ..data import Video
from ..provenance import code_change, numeric_code
from ..train import CHECKPOINT_FORMAT, Trainer

if TYPE_CHECKING:
    from .config import ExperimentConfig
    from .guide import GuideConfig

__all__ = ["video_key", "arm_key", "BASELINE_KEYS", "GUIDED_KEYS", "RATE_KEYS", "baseline", "baseline_path"]

BASELINE_KEYS = ("config", "steps", "batch", "lr", "seed", "log_every", "compile")
"""The config fields that determine the no-guidance arm (and the one arm of plain training)."""
GUIDED_KEYS = (*BASELINE_KEYS, "period", "compressor", "settings", "mode", "drift", "codec_from", "reset_optimizer",
               "probe_pixels")
"""The config fields that determine the guided arm."""
RATE_KEYS = ("rate_weight", "rate_estimator")
"""The fields of the rate term, which join the guided arm's key only when it has one (runs without
keep their keys)."""

POLL_S = 10.0
"""Seconds between looks at the cache while another run trains the no-guidance arm."""


def video_key(video: Video) -> str:
    """Hash of the clip's frames (16 hex digits)."""
    return hashlib.sha256(np.ascontiguousarray(video.frames).data).hexdigest()[:16]


def arm_key(cfg: "ExperimentConfig", video: Video, names: Iterable[str]) -> str:
    """Hash of the parameters that determine an arm's training: the named config fields, the video,
    the device type and the checkpoint format. The code that trains it is checked beside the key
    (``provenance.numeric_code``, kept in the checkpoint), so a change of code is told apart from a
    change of parameters."""
    keyed: dict[str, Any] = {k: v for k, v in cfg.to_dict().items() if k in set(names)}
    keyed.update(video=video_key(video), device=resolve_device(cfg.device).type, format=CHECKPOINT_FORMAT)
    return hashlib.sha256(json.dumps(keyed, sort_keys=True).encode()).hexdigest()[:20]


def baseline_path(cfg: "GuideConfig", video: Video) -> Path:
    """Where the no-guidance arm of ``cfg`` on ``video`` is cached."""
    return Path(cfg.cache_dir) / f"baseline-{arm_key(cfg, video, BASELINE_KEYS)}.pt"


def _cached_arm(path: Path, video: Video, cfg: "GuideConfig", label: str) -> Trainer | str | None:
    """The cached arm at ``path`` if it exists, ran all ``cfg.steps`` and was trained by this code
    (or by other code, with ``cfg.allow_code_change``: recorded in ``extra["code_changes"]``); else
    why it cannot be used (None: there is none)."""
    if not path.exists():
        return None
    trainer = Trainer.load(path, video, device=cfg.device)
    if trainer.step_count != cfg.steps:
        return f"the cached {path} is unfinished"
    saved, now = trainer.extra.get("code"), numeric_code()
    if saved != now:
        if not cfg.allow_code_change:
            return (f"the cached {path} was trained by other code ({code_change(saved, now)}; allow_code_change=True "
                    "would use it)")
        print(f"{label}: using the cached {path}, trained by other code ({code_change(saved, now)}; recorded)")
        trainer.extra.setdefault("code_changes", []).append({"step": trainer.step_count, "from": saved, "to": now})
    return trainer


def baseline(cfg: "GuideConfig", video: Video, label: str, out: Path,
             train: Callable[[Path, str, Callable[[Trainer], Any]], Trainer], *, wait: bool
             ) -> tuple[Trainer, Path] | None:
    """The no-guidance arm: from the cache when the same parameters trained it before, else
    ``train(checkpoint, key, heartbeat)`` here, in this run's ``out`` folder (resumed there after
    a kill), moved to the cache only when finished. Runs in parallel train it once: a claim next
    to the cache file names the run training it, and the others return None (``wait=False``, so
    they can train their guided arm meanwhile) or wait for it, taking it over if that run dies."""
    path = baseline_path(cfg, video)
    key = path.stem.removeprefix("baseline-")
    claim = Claim(path.with_name(f"baseline-{key}.lock"))
    waiting = False
    while True:
        trainer = _cached_arm(path, video, cfg, label)
        if not isinstance(trainer, Trainer) and claim.acquire():
            try:
                trainer = _cached_arm(path, video, cfg, label)  # finished meanwhile by the run that held the claim
                if not isinstance(trainer, Trainer):
                    if trainer is not None:
                        print(f"{label}: {trainer}; training it again")
                    trainer = train(out / "baseline.pt", key, claim.refresh)
                    return trainer, publish(out / "baseline.pt", path)
            finally:
                claim.release()
        if isinstance(trainer, Trainer):
            print(f"{label}: loaded from the cache {path}")
            return trainer, path
        holder = claim.holder()
        who = f"process {holder.get('pid')} on {holder.get('host')}" if holder else "another run"
        if not wait:
            print(f"{label}: {who} is training it ({claim.path}); the guided arm goes first")
            return None
        if not waiting:
            print(f"{label}: waiting for {who} to finish it ({claim.path})")
            waiting = True
        time.sleep(POLL_S)
