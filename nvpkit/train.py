"""Training: the published recipe behind a step-level API.

MSE on targets scaled to [-1, 1], random pixel batches over the whole video,
AdamW (lr 1e-2, weight decay 1e-3), cosine decay to 1e-5 over the planned steps.
``trainer.step()`` runs one step; ``trainer.train(n, callbacks=...)`` runs many and
calls each callback between steps, so a notebook can act mid-run (compress, plot).

On CUDA the video sits on the GPU as uint8 when it fits (pinned host memory
otherwise), batches are drawn on the device and nothing syncs with the host
except at logging points.
"""
from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ._progress import progress_bar
from ._checks import check_int, is_int
from ._device import keep_freed_memory, resolve_device
from ._files import atomic_path
from .config import NVPConfig, load_config, size_sparse_grid
from .data import Video
from .memory import clip_on_device
from .metrics import psnr_from_mse
from .model import NVP
from .provenance import code_change

__all__ = ["TrainConfig", "Trainer", "PixelSampler", "Checkpoint", "resume_or_start"]

PUBLISHED_BATCH = 1_245_184
PUBLISHED_STEPS = 144_700
CPU_BATCH = 2**14
CHECKPOINT_FORMAT = "nvpkit.trainer/2"  # 2: one parameter per 2D grid level


@dataclass(frozen=True)
class TrainConfig:
    """Training settings; the defaults are the published recipe."""

    steps: int = 1000
    """Planned steps: the cosine schedule decays over them, and ``train()`` runs up to them."""
    batch: int | None = None
    """Pixels per step; None is the published 1,245,184 on CUDA and 16,384 on the CPU."""
    lr: float = 1e-2
    """Peak AdamW learning rate."""
    lr_min: float = 1e-5
    """Learning rate at the end of the cosine decay."""
    weight_decay: float = 1e-3
    """AdamW weight decay (applied to grids and decoder alike, as published)."""
    seed: int = 0
    """Seeds the model initialisation and the pixel sampler."""
    device: str = "auto"
    """'auto' (CUDA when present), 'cpu', 'cuda' or 'cuda:N'."""
    log_every: int = 100
    """Steps between loss logs (the only host syncs during training)."""
    compile: bool = False
    """Run the decoder through ``torch.compile``, which fuses its elementwise passes: meant for
    CUDA (not yet measured there); on 2 CPU cores the eager oneDNN path is faster (a clip-sized NVP-S
    step 83 against 119 ms, ``benchmarks/train_step.py --compile``). The step then calls ``model.latent``
    and the compiled ``model.decoder`` (not ``model.forward``). If compiling fails, training goes on
    eagerly, with a warning."""

    def __post_init__(self) -> None:
        for name in ("steps", "log_every"):
            check_int("TrainConfig", name, getattr(self, name), 1)
        check_int("TrainConfig", "seed", self.seed)
        if self.batch is not None:
            check_int("TrainConfig", "batch", self.batch, 1)
        if not (is_int(self.lr) or isinstance(self.lr, float)) or not 0 < self.lr < math.inf:
            raise ValueError(f"TrainConfig: lr={self.lr!r} is not allowed; use a finite number > 0")
        if not isinstance(self.compile, bool):
            raise ValueError(f"TrainConfig: compile={self.compile!r} is not allowed; use True or False")
        if not 0 <= self.lr_min <= self.lr:
            raise ValueError(f"TrainConfig.lr_min must be in [0, lr={self.lr}], got {self.lr_min!r}")
        if self.weight_decay < 0:
            raise ValueError(f"TrainConfig.weight_decay must be >= 0, got {self.weight_decay!r}")
        resolve_device(self.device)

    def batch_for(self, device: torch.device) -> int:
        return self.batch or (PUBLISHED_BATCH if device.type == "cuda" else CPU_BATCH)


def _adamw(params: Iterable[torch.nn.Parameter], config: TrainConfig) -> torch.optim.AdamW:
    """AdamW with the fused kernel (CPU and CUDA, 5x faster than foreach on the CPU); torch
    releases without a fused CPU kernel fall back to foreach."""
    params = list(params)
    try:
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay, fused=True)
    except RuntimeError:
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)


class PixelSampler:
    """Draws random pixels of a video: coords ``(t, x, y)`` in [0, 1], SIREN time steps
    ``(i + 0.5) / T`` and targets in [-1, 1], all on ``device``.

    On CUDA the uint8 video is copied to the device when it takes at most half the free memory
    (``on_device=None``), else it stays in pinned host memory: each batch's pixels and indices are
    then gathered into one of two reused pinned buffers and copied without blocking the host, so
    the copy overlaps the previous step."""

    def __init__(self, video: Video, device: torch.device, seed: int = 0, *, on_device: bool | None = None):
        frames = torch.from_numpy(video.frames)  # [T, H, W, 3] uint8
        self.shape = tuple(frames.shape[:3])
        self.device = device
        store = device
        if device.type == "cuda":
            if on_device is None:
                free, _ = torch.cuda.mem_get_info(device)
                on_device = clip_on_device(frames.numel(), free)
            if not on_device:
                store = torch.device("cpu")
                frames = frames.pin_memory()
        self.frames = frames.to(store).reshape(-1, 3)  # [T*H*W, 3]
        self.generator = torch.Generator(device=store).manual_seed(seed)
        self.pinned = store.type != device.type
        """Whether the video stays in pinned host memory while training runs on the device."""
        self._staging: list[tuple[torch.Tensor, torch.Tensor, torch.cuda.Event | None]] = []
        self._slot = 0

    def coords(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Coords ``[N, 3]`` and time steps ``[N]`` of flat pixel indices ``index [N]``."""
        t_count, height, width = self.shape
        t = index.div(height * width, rounding_mode="floor")
        rest = index - t * (height * width)
        x = rest.div(width, rounding_mode="floor")
        y = rest - x * width
        coords = torch.stack((t / max(t_count - 1, 1), x / max(height - 1, 1), y / max(width - 1, 1)), 1)
        return coords.float(), (t.float() + 0.5) / t_count

    def _staged(self, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Indices and pixels of a batch drawn into a reused pinned buffer, copied to the device."""
        if not self._staging or len(self._staging[0][0]) != batch:
            self._staging = [(torch.empty(batch, dtype=torch.long, pin_memory=True),
                              torch.empty(batch, 3, dtype=torch.uint8, pin_memory=True), None) for _ in range(2)]
        self._slot = 1 - self._slot
        index, pixels, copied = self._staging[self._slot]
        if copied is not None:
            copied.synchronize()  # the copy that last read this buffer (two steps ago) has finished
        torch.randint(self.frames.shape[0], (batch,), generator=self.generator, out=index)
        torch.index_select(self.frames, 0, index, out=pixels)
        on_device = index.to(self.device, non_blocking=True), pixels.to(self.device, non_blocking=True)
        event = torch.cuda.Event()
        event.record()
        self._staging[self._slot] = (index, pixels, event)
        return on_device

    def __call__(self, batch: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if self.pinned:
            index, pixels = self._staged(batch)
        else:
            index = torch.randint(self.frames.shape[0], (batch,), generator=self.generator, device=self.device)
            pixels = self.frames.index_select(0, index)  # [N, 3]
        coords, steps = self.coords(index)
        return coords, steps, pixels.float() / 127.5 - 1.0


class Trainer:
    """Trains an ``NVP`` model on a video; see the module docstring for the recipe."""

    def __init__(self, model: NVP, video: Video, config: TrainConfig = TrainConfig()):
        self.config = config
        self.device = resolve_device(config.device)
        self.video = video
        if self.device.type == "cuda":
            need = sum(p.numel() for p in model.parameters()) * 16  # parameter, gradient, two AdamW moments
            free, _ = torch.cuda.mem_get_info(self.device)
            if need > free:
                raise ValueError(f"Trainer: the model needs {need / 2**30:.1f} GiB for parameters, gradients and "
                                 f"optimizer state, {free / 2**30:.1f} GiB free on {self.device}; use a smaller config")
        if self.device.type == "cpu":
            keep_freed_memory()
        self.model = model.to(self.device)
        self.batch = config.batch_for(self.device)
        self.sampler = PixelSampler(video, self.device, config.seed)
        self.optimizer = _adamw(self.model.parameters(), config)
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=config.steps,
                                                                    eta_min=config.lr_min)
        self.step_count = 0
        self.history: dict[str, list[float]] = {"step": [], "loss": [], "psnr": [], "seconds": []}
        self.regularizer: Callable[[NVP, int], torch.Tensor] | None = None
        """Optional extra loss term ``f(model, step)`` added to the MSE (the logged loss stays the MSE)."""
        self.extra: dict[str, Any] = {}
        """Callers' state saved with every checkpoint (plain values and tensors), e.g. guidance events."""
        self._compiled = torch.compile(self.model.decoder) if config.compile else None  # the grids' lookups stay eager
        self._compile_checked = False  # whether a compiled step has run (compile failures surface in the first)
        self._loss_sum = torch.zeros((), device=self.device)
        self._loss_steps = 0
        self._seconds = 0.0  # training time of finished train() calls
        self._started: float | None = None  # start of the running train() call

    @classmethod
    def from_config(cls, video: Video, model: str | dict | NVPConfig = "cpu_s", *, fit_sparse_grid: bool = True,
                    **train: Any) -> "Trainer":
        """Build the model (seeded by ``seed``) and the trainer. ``fit_sparse_grid`` sizes the sparse
        grid to the video (``size_sparse_grid``); ``train`` holds ``TrainConfig`` fields."""
        config = TrainConfig(**train)
        model_config = load_config(model)
        if fit_sparse_grid:
            model_config = size_sparse_grid(model_config, video.num_frames, video.height, video.width)
        return cls(NVP.seeded(model_config, config.seed), video, config)

    # -- stepping ---------------------------------------------------------------------------------

    def step(self, batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """One optimisation step on a fresh random batch (or on ``batch = (coords, steps, target)``);
        returns the loss as a device tensor (no host sync)."""
        coords, steps, target = self.sampler(self.batch) if batch is None else batch
        try:
            loss = self._backward(coords, steps, target)
        except torch.OutOfMemoryError as err:
            raise torch.OutOfMemoryError(
                f"out of memory at step {self.step_count + 1} with batch={self.batch:,}: lower TrainConfig.batch "
                f"(the activations grow with it) or use a smaller model config. {err}") from None
        self.optimizer.step()
        self.scheduler.step()
        self.step_count += 1
        self._loss_sum += loss.detach()
        self._loss_steps += 1
        return loss.detach()

    def _backward(self, coords: torch.Tensor, steps: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Forward, loss and backward (gradients set, not accumulated); returns the MSE."""
        try:
            if self._compiled is None:
                out = self.model(coords, steps)
            else:
                out = self._compiled(steps, self.model.latent(coords))
            loss = F.mse_loss(out, target)
            objective = loss if self.regularizer is None else loss + self.regularizer(self.model, self.step_count)
            self.optimizer.zero_grad(set_to_none=True)
            objective.backward()
        except Exception as err:  # a failed compile raises many types (no C++ compiler, no Triton, ...)
            if self._compiled is None or self._compile_checked or isinstance(err, torch.OutOfMemoryError):
                raise
            warnings.warn(f"Trainer: torch.compile failed ({type(err).__name__}: {str(err)[:300]}); "
                          "the decoder runs eagerly", RuntimeWarning, stacklevel=3)
            self._compiled = None
            return self._backward(coords, steps, target)
        self._compile_checked = True
        return loss

    def pending_loss(self) -> float:
        """The summed loss of the steps since the last log (a host sync)."""
        return self._loss_sum.item()

    @property
    def elapsed(self) -> float:
        """Seconds spent in ``train()`` so far (across resumes)."""
        return self._seconds + (time.perf_counter() - self._started if self._started is not None else 0.0)

    def log(self) -> dict[str, float]:
        """Record the mean loss since the last log (a host sync); raises if it is not finite."""
        loss = (self._loss_sum / max(self._loss_steps, 1)).item()
        if not math.isfinite(loss):
            raise FloatingPointError(f"training loss became {loss} by step {self.step_count}; lower lr "
                                     f"(now {self.config.lr}) or check the video")
        self._loss_sum.zero_()
        self._loss_steps = 0
        record = {"step": self.step_count, "loss": loss, "psnr": psnr_from_mse(loss, peak=2.0),
                  "seconds": self.elapsed}
        for key, value in record.items():
            self.history[key].append(value)
        return record

    def train(self, steps: int | None = None, callbacks: Iterable[Callable[["Trainer"], Any]] = (),
              progress: bool = True) -> dict[str, list[float]]:
        """Run ``steps`` more steps (default: up to ``config.steps``), calling every callback with the
        trainer after each step. Logs every ``log_every`` steps and at the planned last step (the same
        points however the run is split into calls); returns the history."""
        steps = self.config.steps - self.step_count if steps is None else steps
        check_int("train", "steps", steps, 0)
        callbacks = list(callbacks)
        bar = progress_bar(total=steps, disable=not progress, desc="train", unit="step")
        self._started = time.perf_counter()
        try:
            for _ in range(steps):
                self.step()
                if self.step_count % self.config.log_every == 0 or self.step_count == self.config.steps:
                    record = self.log()
                    bar.set_postfix(refresh=False, loss=f"{record['loss']:.2e}", psnr=f"{record['psnr']:.2f}")
                for callback in callbacks:
                    callback(self)
                bar.update(1)
        finally:
            self._seconds, self._started = self.elapsed, None
            bar.close()
        return self.history

    # -- checkpoints ------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT,
            "model_config": self.model.config.to_json(),
            "train_config": asdict(self.config),
            "video": {"name": self.video.name, "shape": list(self.video.frames.shape)},
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "generator": self.sampler.generator.get_state(),
            "step": self.step_count,
            "seconds": self.elapsed,
            "pending_loss": [self.pending_loss(), self._loss_steps],  # steps since the last log
            "history": self.history,
            "extra": self.extra,
        }

    def save(self, path: str | Path) -> Path:
        """Write a checkpoint atomically (temp file, fsync, rename): a kill mid-save keeps the old one."""
        with atomic_path(path) as tmp:
            torch.save(self.state_dict(), tmp)
        return Path(path)

    @classmethod
    def _restore(cls, state: dict[str, Any], video: Video, device: str | None) -> "Trainer":
        shape = list(video.frames.shape)
        if state["video"]["shape"] != shape:
            raise ValueError(f"Trainer.load: checkpoint was trained on a {state['video']['shape']} video "
                             f"({state['video']['name']!r}), got {shape}")
        known = {f.name for f in fields(TrainConfig)}
        train = {k: v for k, v in state["train_config"].items() if k in known}
        if device is not None:
            train["device"] = device
        if not isinstance(state["model_config"], dict):  # a string would be read as a path
            raise ValueError("Trainer.load: the checkpoint's model config is not a JSON object")
        trainer = cls(NVP(load_config(state["model_config"])), video, TrainConfig(**train))
        trainer.model.load_state_dict(state["model"])
        trainer.optimizer.load_state_dict(state["optimizer"])
        trainer.scheduler.load_state_dict(state["scheduler"])
        trainer.sampler.generator.set_state(state["generator"])
        trainer.step_count = check_int("Trainer.load", "step", state["step"], 0)
        trainer._seconds = float(state["seconds"])
        trainer._loss_sum.fill_(float(state["pending_loss"][0]))
        trainer._loss_steps = check_int("Trainer.load", "pending steps", state["pending_loss"][1], 0)
        trainer.history = {k: list(v) for k, v in state["history"].items()}
        trainer.extra = dict(state.get("extra", {}))
        return trainer

    @classmethod
    def load(cls, path: str | Path, video: Video, device: str | None = None) -> "Trainer":
        """Resume from a checkpoint (loaded with ``weights_only=True``: no code runs from the file).
        ``video`` must be the one trained on; ``device`` overrides the saved one."""
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except FileNotFoundError:
            raise FileNotFoundError(f"Trainer.load: no checkpoint at {str(path)!r}") from None
        except Exception as err:
            raise ValueError(f"Trainer.load: {str(path)!r} is not a readable checkpoint ({err})") from None
        found = state.get("format") if isinstance(state, dict) else None
        if not isinstance(found, str) or not found.startswith("nvpkit.trainer/"):
            raise ValueError(f"Trainer.load: {str(path)!r} is not an nvpkit trainer checkpoint")
        if found != CHECKPOINT_FORMAT:
            raise ValueError(f"Trainer.load: {str(path)!r} is a {found} checkpoint of another nvpkit version; "
                             f"this one reads {CHECKPOINT_FORMAT}")
        try:
            trainer = cls._restore(state, video, device)
        except (KeyError, TypeError, AttributeError, IndexError, RuntimeError, OverflowError) as err:  # damaged
            raise ValueError(f"Trainer.load: {str(path)!r} is damaged ({type(err).__name__}: {str(err)[:200]})"
                             ) from None
        return trainer


class Checkpoint:
    """Trainer callback: save to ``path`` (atomically) every ``every`` steps and at the planned
    last step, so a crash or kill costs at most ``every`` steps; put it after callbacks whose
    state goes into ``trainer.extra``."""

    def __init__(self, path: str | Path, every: int):
        self.path, self.every = Path(path), check_int("Checkpoint", "every", every, 1)

    def __call__(self, trainer: Trainer) -> None:
        if trainer.step_count % self.every == 0 or trainer.step_count == trainer.config.steps:
            pending = trainer.pending_loss()  # one host sync per checkpoint
            if not math.isfinite(pending):
                raise FloatingPointError(f"training loss became {pending} before step {trainer.step_count}; "
                                         f"not saving over the last good checkpoint {str(self.path)!r}")
            trainer.save(self.path)


def checkpoint_code(path: str | Path) -> Any:
    """The code version a checkpoint records (``extra["code"]``; None if none), read without loading
    its tensors (memory-mapped)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as err:
        raise ValueError(f"{str(path)!r} is not a readable checkpoint ({err})") from None
    extra = state.get("extra") if isinstance(state, dict) else None
    return extra.get("code") if isinstance(extra, dict) else None


def resume_or_start(path: str | Path, video: Video, key: str, start: Callable[[], Trainer], *,
                    code: dict[str, Any] | None = None, allow_code_change: bool = False,
                    device: str | None = None, overwrite: bool = False) -> Trainer:
    """The trainer checkpointed at ``path`` when it was started with the same ``key`` (kept in
    ``trainer.extra["key"]``) and trained by the same ``code`` (``extra["code"]``; see
    ``provenance.numeric_code``), else a new one from ``start()``. A checkpoint of another key is
    replaced only with ``overwrite``; otherwise ``FileExistsError``. One of the same key trained by
    other code resumes with ``allow_code_change`` (a warning; ``extra["code_changes"]`` records the
    step and both versions), is replaced with ``overwrite``, else ``FileExistsError`` saying both."""
    path = Path(path)
    if path.exists():
        trainer = Trainer.load(path, video, device=device)
        same_key, saved = trainer.extra.get("key") == key, trainer.extra.get("code")
        if same_key and (code is None or saved == code):
            return trainer
        if same_key and allow_code_change:
            warnings.warn(f"{str(path)!r}: resuming at step {trainer.step_count} a run trained by other code "
                          f"({code_change(saved, code)}); the change is recorded", stacklevel=2)
            trainer.extra.setdefault("code_changes", []).append({"step": trainer.step_count, "from": saved, "to": code})
            trainer.extra["code"] = code
            return trainer
        if not overwrite:
            if same_key:
                raise FileExistsError(f"{str(path)!r} holds a run of these parameters trained by other code "
                                      f"({code_change(saved, code)}); resume it with allow_code_change=True "
                                      "(--allow-code-change; the change is recorded) or start it again with "
                                      "overwrite=True")
            raise FileExistsError(f"{str(path)!r} holds a run with other parameters; set overwrite=True or "
                                  "choose another folder")
    trainer = start()
    trainer.extra["key"] = key
    if code is not None:
        trainer.extra["code"] = code
    return trainer

