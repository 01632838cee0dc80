"""Compression-guided training: compress the latent grids every ``period`` steps and train on.

``Guidance`` is a ``Trainer`` callback. Every ``period`` steps (but not at the last one,
where the final compression follows) it round-trips the grids (``xy``, ``xt``, ``yt``,
sparse) through a compressor, loads the decoded values into the live model in place (the
optimizer keeps its state unless ``reset_optimizer``), and records the event: step, bits and
bpp, PSNR just before and just after (on a fixed random set of pixels), seconds spent. Modes:

- ``reload``: as above, the seed notes' method.
- ``straight_through``: as above, and the forward pass also sees 8-bit quantized grids at every
  step (gradients pass straight through).
- ``codec_ste``: the codec in the loop with a straight-through gradient (as CATRF does for
  triplanes): the round trip's residual ``r = decode(encode(θ)) − θ`` is kept per grid (from the
  start, then refreshed every ``period`` steps) and every forward pass reads ``θ + r`` while the
  gradient reaches ``θ`` unchanged; the stored values stay ``θ``. ``period = 1`` is the codec in
  every step. An event's PSNR before and after are those of ``θ`` and ``θ + r``. The residual is
  kept in ``trainer.extra`` so it is saved with every checkpoint and a resumed run goes on exactly.
  CATRF's schedule as options: ``codec_from`` (the step the codec enters: plain training before it,
  then a refresh at it and every ``period`` steps from it) and ``drift`` (also refresh after any step
  at which the grids have moved by more than ``drift`` in relative L2 since the last refresh, the
  reference kept in ``trainer.extra`` as well). Each event records why it happened (``reason``).
- ``none``: no round trips; with a rate term, the only difference from plain training.

In every mode a ``rate`` term (``nvpkit.rate.RateTerm``) can be added to the loss: an estimate of
what the codec will spend on the grids, which the round trips alone do not reward.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch

from .._checks import check_choice, check_int, check_number
from ..compress import Compressed, Compressor
from ..data import Video
from ..metrics import psnr_from_mse
from ..model import NVP
from ..parts import GRIDS
from ..rate import RateTerm
from ..rendering import chunk_for
from ..train import PixelSampler, Trainer

__all__ = ["Guidance", "PixelProbe", "MODES"]

MODES = ("reload", "straight_through", "codec_ste", "none")


class PixelProbe:
    """PSNR of a model on a fixed random set of pixels (drawn with replacement; every pixel once
    when the video has fewer), of the clamped prediction against frames / 255. Built from a video,
    or from a trainer's sampler to share its copy of the frames."""

    def __init__(self, source: Video | PixelSampler, pixels: int = 2**18, seed: int = 0,
                 device: torch.device | str = "cpu"):
        sampler = source if isinstance(source, PixelSampler) else PixelSampler(source, torch.device(device), seed)
        frames = sampler.frames  # [T*H*W, 3] uint8, on the GPU or in (pinned) host memory
        generator = torch.Generator(device=frames.device).manual_seed(seed)
        if pixels >= frames.shape[0]:
            index = torch.arange(frames.shape[0], device=frames.device)
        else:
            index = torch.randint(frames.shape[0], (pixels,), generator=generator, device=frames.device)
        self.coords, self.steps = sampler.coords(index.to(sampler.device))
        self.target = frames[index].to(sampler.device).float() / 255  # [N, 3]

    @torch.inference_mode()
    def psnr(self, model: NVP, chunk: int | None = None) -> float:
        """PSNR in dB over the probe's pixels, ``chunk`` pixels per forward pass (default by device)."""
        chunk = chunk or chunk_for(self.target.device)
        error = torch.zeros((), device=self.target.device, dtype=torch.float64)
        for lo in range(0, len(self.target), chunk):
            out = model(self.coords[lo:lo + chunk], self.steps[lo:lo + chunk])
            error += ((out + 1) / 2).clamp(0, 1).sub(self.target[lo:lo + chunk]).square().sum()
        return psnr_from_mse(error.item() / self.target.numel())


class Guidance:
    """Trainer callback for compression-guided training (see the module docstring)."""

    def __init__(self, compressor: Compressor, period: int, video: Video, *, mode: str = "reload",
                 reset_optimizer: bool = False, probe_pixels: int = 2**18, seed: int = 0, drift: float = 0.0,
                 codec_from: int = 0, rate: RateTerm | None = None):
        self.period = check_int("Guidance", "period", period, 1)
        self.mode = check_choice("Guidance", "mode", mode, MODES)
        self.codec_from = check_int("Guidance", "codec_from", codec_from, 0)
        self.drift = check_number("Guidance", "drift", drift, note=" (0: off)")
        if (self.drift or self.codec_from) and self.mode != "codec_ste":
            raise ValueError(f"Guidance: drift={drift!r} and codec_from={codec_from!r} are options of "
                             f"mode='codec_ste', not of mode={mode!r}")
        if self.mode == "none" and rate is None:
            raise ValueError("Guidance: mode='none' without a rate term is plain training; give rate=RateTerm(...)")
        self.compressor, self.video, self.reset_optimizer, self.rate = compressor, video, reset_optimizer, rate
        self.probe_pixels, self.seed = probe_pixels, seed
        self.events: list[dict[str, Any]] = []
        self._probe: PixelProbe | None = None

    def attach(self, trainer: Trainer) -> None:
        """Prepare a trainer: straight-through quantization of its grids, or their codec residual
        (restored from a checkpoint, or computed now), and the rate term."""
        if self.rate is not None:
            self.rate.attach(trainer)
        self._fake_quant(trainer, 8 if self.mode == "straight_through" else None)
        if self.mode == "codec_ste":
            if "residual" in trainer.extra:  # from a checkpoint, which loads on the CPU
                trainer.extra["residual"] = self._fitted(trainer, trainer.extra["residual"])
                self._set_residual(trainer, trainer.extra["residual"])
                if self.drift:
                    trainer.extra["drift_reference"] = self._fitted(trainer, trainer.extra["drift_reference"])
            elif trainer.step_count >= self.codec_from:
                self._event(trainer, self._refresh_residual, "start")

    def detach(self, trainer: Trainer) -> None:
        """Undo ``attach``: the grids are read as they are again, the loss is the MSE again."""
        if self.rate is not None:
            self.rate.detach(trainer)
        self._fake_quant(trainer, None)
        self._set_residual(trainer, None)

    @staticmethod
    def _fake_quant(trainer: Trainer, bits: int | None) -> None:
        for grid in trainer.model.grids().values():
            grid.fake_quant_bits = bits

    @staticmethod
    def _fitted(trainer: Trainer, residual: Any) -> dict[str, list[torch.Tensor]]:
        """A saved residual on its grids' device and dtype, after checking it has one tensor of each
        grid parameter's shape (``ValueError`` otherwise: it would broadcast silently)."""
        fitted = {}
        for name, grid in trainer.model.grids().items():
            params = list(grid.parameters())
            saved = residual.get(name) if isinstance(residual, dict) else None
            if (not isinstance(saved, (list, tuple)) or len(saved) != len(params)
                    or any(not isinstance(r, torch.Tensor) or r.shape != p.shape for r, p in zip(saved, params))):
                raise ValueError(f"Guidance: the checkpoint's codec_ste residual of grid {name!r} does not fit the "
                                 f"model's {len(params)} parameters of shapes {[tuple(p.shape) for p in params]}; "
                                 "start the arm again (overwrite=True)")
            fitted[name] = [r.to(device=p.device, dtype=p.dtype) for r, p in zip(saved, params)]
        return fitted

    @staticmethod
    def _set_residual(trainer: Trainer, residual: dict[str, list[torch.Tensor]] | None) -> None:
        for name, grid in trainer.model.grids().items():
            grid.residual = None if residual is None else residual[name]

    def __call__(self, trainer: Trainer) -> None:
        step = trainer.step_count
        if step >= trainer.config.steps or self.mode == "none":  # the final compression follows the last step
            return
        if self.mode == "codec_ste" and "residual" not in trainer.extra:  # the codec enters at codec_from
            if step >= self.codec_from:
                self._event(trainer, self._refresh_residual, "start")
            return
        if step > self.codec_from and (step - self.codec_from) % self.period == 0:
            self.event(trainer)
        elif self.drift and self.drifted(trainer) > self.drift:
            self.event(trainer, "drift")

    def event(self, trainer: Trainer, reason: str = "period") -> dict[str, Any]:
        """One guidance event now (what every ``period`` steps do): its record, also in ``events``."""
        if self.mode == "none":
            raise ValueError("Guidance: mode='none' has no events")
        self._event(trainer, self._refresh_residual if self.mode == "codec_ste" else self._reload, reason)
        return self.events[-1]

    @torch.no_grad()
    def drifted(self, trainer: Trainer) -> float:
        """The grids' relative L2 change since the last refresh: ``‖θ - θ_ref‖ / ‖θ_ref‖`` over all."""
        pairs = [(p.detach(), ref) for name, grid in trainer.model.grids().items()
                 for p, ref in zip(grid.parameters(), trainer.extra["drift_reference"][name])]
        change = torch.stack([(p - ref).square().sum() for p, ref in pairs]).sum()
        size = torch.stack([ref.square().sum() for _, ref in pairs]).sum()
        change, size = torch.stack([change, size]).tolist()  # one host sync per step
        return (change / size) ** 0.5 if size > 0 else float("inf")

    def _event(self, trainer: Trainer, act: Callable[[Trainer], Compressed], reason: str = "period") -> None:
        """Measure, ``act`` (returns the round trip's result), measure again, record."""
        started = time.perf_counter()
        if self._probe is None:
            self._probe = PixelProbe(trainer.sampler, self.probe_pixels, self.seed)
        self._set_residual(trainer, None)
        before = self._probe.psnr(trainer.model)
        result = act(trainer)
        after = self._probe.psnr(trainer.model)
        self.events.append({"step": trainer.step_count, "bits": result.bits()["total"], "bpp": result.bpp(self.video),
                            "psnr_before": before, "psnr_after": after, "reason": reason,
                            "seconds": time.perf_counter() - started})

    def _reload(self, trainer: Trainer) -> Compressed:
        result = self.compressor.roundtrip(trainer.model)
        result.load_into(trainer.model, parts=GRIDS)
        if self.reset_optimizer:
            trainer.optimizer.state.clear()
        return result

    @torch.no_grad()
    def _refresh_residual(self, trainer: Trainer) -> Compressed:
        """``r = decode(encode(θ)) − θ`` of every grid, set on the grids and kept in ``trainer.extra``."""
        model = trainer.model
        theta = {name: [p.detach().clone() for p in grid.parameters()] for name, grid in model.grids().items()}
        result = self.compressor.roundtrip(model)
        result.load_into(model, parts=GRIDS)  # the decoded values, in the parameters' own layout
        residual = {}
        for name, grid in model.grids().items():
            residual[name] = [p - t for p, t in zip(grid.parameters(), theta[name])]
            for p, t in zip(grid.parameters(), theta[name]):
                p.copy_(t)  # the stored values stay θ
        trainer.extra["residual"] = residual
        if self.drift:
            trainer.extra["drift_reference"] = {name: [p.detach().clone() for p in grid.parameters()]
                                                for name, grid in model.grids().items()}
        self._set_residual(trainer, residual)
        return result
