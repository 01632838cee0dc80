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

import torch
import torch.nn.functional as F

from .._checks import check_choice
from ..compress import Tucker, hooi, tucker_to_tensor
from ..data import Video
from ..model import NVP
from ..parts import GRIDS, check_parts, flat_values

__all__ = ["tucker_init", "PullToInit", "MAPPINGS", "steps_to_reach"]

MAPPINGS = ("sparse", "all")


def _time_bins(frames: int, size: int) -> list[range]:
    """The frames each of ``size`` bins averages (``adaptive_avg_pool1d``'s bins: they may overlap)."""
    return [range(i * frames // size, -(-(i + 1) * frames // size)) for i in range(size)]


def _resampled_colour_axes(video: Video, count: int, size: tuple[int, int, int],
                           samples: int = 200_000) -> torch.Tensor:
    """The video projected on its first ``count`` principal colour axes and area-resampled to
    ``size = (t, x, y)``: ``[count, t, x, y]``, computed frame by frame. The axes come from an SVD of
    a strided sample of about ``samples`` centred pixels; projection and area averaging are both
    linear, so each frame is averaged first and projected at the end. Working memory: one float
    frame, the sample and the resampled grid, all allocated before the first frame (buffers kept
    across a loop of frame-sized temporaries fragment the heap by about a frame per frame)."""
    t_res, x_res, y_res = size
    t_count, height, width = video.frames.shape[:3]
    pixels = height * width
    step = max(1, t_count * pixels // samples)
    firsts = [-t * pixels % step for t in range(t_count)]  # frame t's pixels at multiples of ``step`` in the clip
    counts = [len(range(first, pixels, step)) for first in firsts]
    sample = torch.empty(sum(counts), 3)
    pooled = torch.zeros(t_res, 3, x_res, y_res)  # sums over each bin's frames
    rgb = torch.empty(3, height, width)
    total = torch.zeros(3, dtype=torch.float64)
    bins_of = [[] for _ in range(t_count)]
    for i, frames in enumerate(_time_bins(t_count, t_res)):
        for t in frames:
            bins_of[t].append(i)
    start = 0
    for t, frame in enumerate(video.frames):
        rgb.copy_(torch.from_numpy(frame).permute(2, 0, 1)).div_(255)  # [H, W, 3] -> [3, H, W]
        total += rgb.sum((1, 2), dtype=torch.float64)
        sample[start:start + counts[t]] = rgb.view(3, -1)[:, firsts[t]::step].T  # [n, 3]
        start += counts[t]
        area = F.adaptive_avg_pool2d(rgb[None], (x_res, y_res))[0]  # [3, X, Y]
        for i in bins_of[t]:
            pooled[i] += area
    pooled /= torch.tensor([len(b) for b in _time_bins(t_count, t_res)]).float()[:, None, None, None]
    mean = (total / (t_count * pixels)).float()
    _, _, basis = torch.linalg.svd(sample.sub_(mean), full_matrices=False)  # [3, 3]
    axes = basis[: min(count, 3)]
    if axes[0].sum() < 0:  # orient the first axis like luma
        axes = -axes
    pooled -= mean[None, :, None, None]  # centred in place: [T, 3, X, Y]
    projected = torch.einsum("ck,tkxy->ctxy", axes, pooled)  # [c, T, X, Y]
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
    check_choice("tucker_init", "mapping", mapping, MAPPINGS)
    if not scale > 0:
        raise ValueError(f"tucker_init: scale must be > 0, got {scale!r}")
    device = next(model.parameters()).device
    t_res, x_res, y_res, channels = model.config.sparse.shape
    resolved = Tucker(ranks=tuple(ranks)).ranks_for((t_res, x_res, y_res))
    grid = _resampled_colour_axes(video, channels, (t_res, x_res, y_res)).to(device)  # [C, Tr, Xr, Yr]
    low_rank = torch.stack([tucker_to_tensor(*hooi(c, resolved, n_iter=n_iter)) for c in grid])
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
    return {name: flat_values(model, name).detach().clone() for name in GRIDS}


class PullToInit:
    """The regulariser ``lam * sum ||theta - theta_init||^2`` over the named grids (a mean over
    their values, so lam does not depend on the model size), optionally decaying to zero with
    a cosine over ``decay_steps``. Call it with the trainer: ``Trainer(..., regularizer=pull)``."""

    def __init__(self, init: dict[str, torch.Tensor], lam: float, grids: tuple[str, ...] = ("sparse",),
                 decay_steps: int | None = None):
        check_parts("PullToInit", grids, tuple(init))
        if not lam >= 0:
            raise ValueError(f"PullToInit: lam must be >= 0, got {lam!r}")
        self.init, self.lam, self.grids, self.decay_steps = init, lam, tuple(grids), decay_steps

    def weight(self, step: int) -> float:
        if not self.decay_steps:
            return self.lam
        progress = min(step / self.decay_steps, 1.0)
        return self.lam * 0.5 * (1 + torch.cos(torch.tensor(progress * torch.pi)).item())

    def __call__(self, model: NVP, step: int) -> torch.Tensor:
        total = sum((flat_values(model, n) - self.init[n]).square().mean() for n in self.grids)
        return self.weight(step) * total


def steps_to_reach(history: dict[str, list[float]], level: float) -> int | None:
    """First logged step whose training PSNR reaches ``level`` (None if none does)."""
    return next((s for s, p in zip(history["step"], history["psnr"]) if p >= level), None)
