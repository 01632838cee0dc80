"""Tucker-decomposition-based initialisation of the latent grids, and a pull-to-init regulariser.

The video is projected onto its first C principal colour axes (C = the sparse grid's
feature channels; the first axis is close to luma), each projection is area-resampled
to the sparse grid's (t, x, y) resolution and Tucker-decomposed (HOOI, tensorly) with
the given ranks. We initialise with the *low-rank reconstruction* rather than the raw
core, because NVP's grids are read by position: a smoothed, positional copy of the
video is a signal the decoder can use from the first step, and it is exactly what a
final Tucker compression of the sparse grid can keep.

Two mappings (``tucker_init(..., mapping=...)``):
- ``"sparse"``: sparse-grid channel c = the rank-limited reconstruction of colour axis c;
  the 2D grids keep their random initialisation.
- ``"all"``: as ``"sparse"``, plus every level of the 2D grids holds the reconstruction's
  projection onto its plane (the mean over the missing axis: over t for xy, over y for
  xt, over x for yt), resampled to the level's resolution, one colour axis per feature.
Values are standardised and scaled to ``scale`` (default 0.1: trained NVP grids end with
standard deviations of that order, far above the 1e-4 of the random initialisation).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ._files import atomic_path
from ._runs import check_out_dir, git_commit
from .compress import make_compressor
from .compress.tucker import Tucker, tucker, tucker_to_tensor
from .data import Video, load_video
from .grids import SparseGrid3D
from .guide import ExperimentConfig
from .model import NVP
from .render import evaluate
from .train import Trainer

__all__ = ["tucker_init", "PullToInit", "MAPPINGS", "InitConfig", "run_init_experiment", "steps_to_reach",
           "format_init_table"]

MAPPINGS = ("sparse", "all")


def _colour_axes(video: Video, count: int, device: torch.device) -> torch.Tensor:
    """The video projected on its first ``count`` principal colour axes, ``[count, T, H, W]``."""
    frames = torch.from_numpy(video.frames).to(device).float() / 255  # [T, H, W, 3]
    pixels = frames.reshape(-1, 3)
    centred = pixels - pixels.mean(0)
    _, _, basis = torch.linalg.svd(centred[:: max(1, len(centred) // 200_000)], full_matrices=False)  # [3, 3]
    axes = basis[: min(count, 3)]
    if axes[0].sum() < 0:  # orient the first axis like luma
        axes = -axes
    projected = (centred @ axes.T).T.reshape(len(axes), *frames.shape[:3])  # [c, T, H, W]
    if count > 3:  # more channels than colours: repeat the axes
        projected = projected.repeat((count + 2) // 3, 1, 1, 1)[:count]
    return projected


def _standardise(x: torch.Tensor, scale: float) -> torch.Tensor:
    return (x - x.mean()) / x.std().clamp_min(1e-12) * scale


def tucker_init(model: NVP, video: Video, ranks: tuple[int | float, ...] = (0.8, 0.8, 0.8), *,
                mapping: str = "all", scale: float = 0.1, n_iter: int = 20) -> dict[str, torch.Tensor]:
    """Write a Tucker-based initialisation into ``model``'s grids (in place) and return a copy of the
    initial grid values by name (``xy``, ``xt``, ``yt``, ``sparse``), for ``PullToInit``.

    ``ranks``: per mode (t, x, y) of the sparse grid, ints or fractions of the mode sizes."""
    if mapping not in MAPPINGS:
        raise ValueError(f"tucker_init: mapping={mapping!r} is not allowed; use one of {list(MAPPINGS)}")
    if not scale > 0:
        raise ValueError(f"tucker_init: scale must be > 0, got {scale!r}")
    device = next(model.parameters()).device
    t_res, x_res, y_res, channels = model.config.sparse.shape
    resolved = Tucker(ranks=tuple(ranks)).ranks_for((t_res, x_res, y_res))
    video_axes = _colour_axes(video, channels, device)  # [C, T, H, W]
    grid = F.interpolate(video_axes[None], size=(t_res, x_res, y_res), mode="area")[0]  # [C, Tr, Xr, Yr]
    low_rank = torch.stack([tucker_to_tensor(*tucker(c, resolved, n_iter=n_iter)) for c in grid])
    with torch.no_grad():
        model.sparse.embeddings.copy_(_standardise(low_rank, scale).permute(1, 2, 3, 0))  # [C,T,X,Y] -> [T,X,Y,C]
        if mapping == "all":
            # images laid out as the level views: rows = the grid's second input, columns = its first
            planes = {"xy": low_rank.mean(1).transpose(1, 2),  # over t: [C, X, Y] -> [C, Y, X]
                      "xt": low_rank.mean(3).transpose(1, 2),  # over y: [C, T, X] -> [C, X, T]
                      "yt": low_rank.mean(2).transpose(1, 2)}  # over x: [C, T, Y] -> [C, Y, T]
            for name, plane in planes.items():
                g = getattr(model, name)
                for level, r in enumerate(g.config.level_resolutions()):
                    image = F.interpolate(plane[None], size=(r, r), mode="bilinear", align_corners=True)[0]
                    features = image[torch.arange(g.config.n_features_per_level) % len(image)]  # [F, R, R]
                    g.level(level).copy_(_standardise(features, scale).permute(1, 2, 0))  # [R, R, F]
    return {name: _flat(g).detach().clone() for name, g in model.grids().items()}


def _flat(grid: nn.Module) -> torch.Tensor:
    """All of a grid's values as one vector (a view for the sparse grid, a copy of the levels else)."""
    if isinstance(grid, SparseGrid3D):
        return grid.embeddings.flatten()
    return torch.cat([level.flatten() for level in grid.levels])


class PullToInit:
    """The regulariser ``lam * sum ||theta - theta_init||^2`` over the named grids (a mean over
    their values, so lam does not depend on the model size), optionally decaying to zero with
    a cosine over ``decay_steps``. Call it with the trainer: ``Trainer(..., regularizer=pull)``."""

    def __init__(self, init: dict[str, torch.Tensor], lam: float, grids: tuple[str, ...] = ("sparse",),
                 decay_steps: int | None = None):
        unknown = set(grids) - set(init)
        if unknown:
            raise ValueError(f"PullToInit: unknown grids {sorted(unknown)}; use some of {sorted(init)}")
        if not lam >= 0:
            raise ValueError(f"PullToInit: lam must be >= 0, got {lam!r}")
        self.init, self.lam, self.grids, self.decay_steps = init, lam, tuple(grids), decay_steps

    def weight(self, step: int) -> float:
        if not self.decay_steps:
            return self.lam
        progress = min(step / self.decay_steps, 1.0)
        return self.lam * 0.5 * (1 + torch.cos(torch.tensor(progress * torch.pi)).item())

    def __call__(self, model: NVP, step: int) -> torch.Tensor:
        grids = model.grids()
        total = sum((_flat(grids[n]) - self.init[n]).square().mean() for n in self.grids)
        return self.weight(step) * total


# -- the experiment of the seed notes: random vs Tucker init vs Tucker init + pull ---------------------------

@dataclass(frozen=True)
class InitConfig(ExperimentConfig):
    """Random initialisation against Tucker initialisation, with and without the pull-to-init term."""

    steps: int = 15_000
    """Training steps of every arm."""
    log_every: int = 100
    """Steps between logged loss points."""
    out_dir: str = "runs/tucker_init"
    """Where results.json and the figures go."""
    ranks: tuple = (0.8, 0.8, 0.8)
    """Tucker ranks (t, x, y) of the initialisation and of the final compression: ints or fractions."""
    mapping: str = "all"
    """'sparse' (sparse grid only) or 'all' (also the 2D grids' planes); see the module docstring."""
    scale: float = 0.1
    """Standard deviation of the initial grid values."""
    lam: float = 0.1
    """Weight of the pull-to-init term (on the mean squared distance)."""
    pull_grids: tuple = ("sparse",)
    """Grids the pull applies to."""
    decay: bool = True
    """Decay the pull to zero with a cosine over the steps."""
    compare_mappings: bool = True
    """Add an arm initialised with the other mapping (no pull), to compare the two."""
    psnr_level: float = 30.0
    """The PSNR whose first crossing (training PSNR) is reported as steps-to-reach."""

    def __post_init__(self) -> None:
        self._check_ints()
        if self.mapping not in MAPPINGS:
            raise ValueError(f"InitConfig.mapping={self.mapping!r} is not allowed; use one of {list(MAPPINGS)}")
        if not self.lam >= 0 or not self.scale > 0:
            raise ValueError(f"InitConfig: lam must be >= 0 and scale > 0, got lam={self.lam!r}, scale={self.scale!r}")
        unknown = set(self.pull_grids) - {"xy", "xt", "yt", "sparse"}
        if unknown:
            raise ValueError(f"InitConfig.pull_grids: unknown grids {sorted(unknown)}; use xy, xt, yt, sparse")
        Tucker(ranks=tuple(self.ranks))  # validates the ranks now

    def arms(self) -> list[tuple[str, str | None, bool]]:
        """(name, mapping or None for random, pull) of every arm, in training order."""
        arms = [("random init", None, False), (f"Tucker init ({self.mapping})", self.mapping, False),
                (f"Tucker init ({self.mapping}) + pull", self.mapping, True)]
        if self.compare_mappings:
            other = next(m for m in MAPPINGS if m != self.mapping)
            arms.append((f"Tucker init ({other})", other, False))
        return arms

    def arm_names(self) -> list[str]:
        return [name for name, _, _ in self.arms()]


def steps_to_reach(history: dict[str, list[float]], level: float) -> int | None:
    """First logged step whose training PSNR reaches ``level`` (None if none does)."""
    return next((s for s, p in zip(history["step"], history["psnr"]) if p >= level), None)


def run_init_experiment(cfg: InitConfig, live=None) -> dict[str, Any]:
    """Train the arms (``cfg.arms()``) with the same seed, steps and batch, evaluate every frame,
    compress each with Tucker at ``cfg.ranks``, and write ``results.json`` and the curves into
    ``cfg.out_dir``."""
    out = check_out_dir(cfg.out_dir, cfg.to_dict(), cfg.overwrite)
    video = load_video(cfg.dataset, cfg.num_frames, downscale=cfg.downscale)
    arms, rows = {}, []
    for name, mapping, pull in cfg.arms():
        trainer = Trainer.from_config(video, cfg.config, steps=cfg.steps, batch=cfg.batch, lr=cfg.lr, seed=cfg.seed,
                                      device=cfg.device, log_every=cfg.log_every)
        if mapping is not None:
            init = tucker_init(trainer.model, video, tuple(cfg.ranks), mapping=mapping, scale=cfg.scale)
            if pull:
                trainer.regularizer = PullToInit(init, cfg.lam, tuple(cfg.pull_grids),
                                                 cfg.steps if cfg.decay else None)
        trainer.train(callbacks=[live.callback(name)] if live is not None else [])
        if live is not None:
            live.update(name, trainer.history)
        compressed = make_compressor("tucker", ranks=tuple(cfg.ranks)).roundtrip(trainer.model)
        rows.append({"arm": name, "steps_to_level": steps_to_reach(trainer.history, cfg.psnr_level),
                     "psnr": evaluate(trainer.model, video, ms_ssim=False, progress=False).psnr,
                     "tucker_bpp": compressed.bpp(video),
                     "tucker_psnr": evaluate(compressed.to_model(trainer.device), video, ms_ssim=False,
                                             progress=False).psnr,
                     "train_seconds": trainer.elapsed})
        arms[name] = trainer
    if live is not None:
        live.save(out / "curves.html", out / "curves.png")
    results = {"config": cfg.to_dict(), "video": {"name": video.name, "shape": list(video.frames.shape)},
               "table": rows, "arms": {n: {"history": t.history} for n, t in arms.items()},
               "versions": {"torch": torch.__version__}, "git_commit": git_commit()}
    with atomic_path(out / "results.json") as tmp:
        tmp.write_text(json.dumps(results, indent=1))
    return {**results, "trainers": arms}


def format_init_table(rows: list[dict], level: float) -> str:
    """The arms as a markdown table."""
    lines = [f"| arm | steps to {level:g} dB | PSNR (dB) | Tucker bpp | Tucker PSNR (dB) |", "|---|---|---|---|---|"]
    for r in rows:
        reach = "never" if r["steps_to_level"] is None else f"{r['steps_to_level']:,}"
        lines.append(f"| {r['arm']} | {reach} | {r['psnr']:.2f} | {r['tucker_bpp']:.4f} | {r['tucker_psnr']:.2f} |")
    return "\n".join(lines)
