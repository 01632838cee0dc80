"""Latent grids: learnable positional features looked up by coordinate.

``DenseGrid2D`` is a multi-resolution dense 2D grid with tiny-cuda-nn ``DenseGrid``
semantics (per level: scale ``S = base * s**l - 1``, ``R = ceil(S) + 1`` vertices per
side, position ``p = coord * S + 0.5``, bilinear between the vertices around ``p``,
clamped at the border). Each level is its own parameter, an image ``[F, R (axis 1),
R (axis 0)]``, so gradients and optimizer state stay per level. Lookups take one of two
equal paths (``_kernels.py``): ``grid_sample`` per level, the level's features as the batch
the kernels split over threads (the CPU default), or one weighted gather over all levels (the
CUDA default).

``SparseGrid3D`` is the sparse positional feature grid ``[T, X, Y, C]``: the nearest
cell in (t, x, y) plus its 3x3 spatial neighbourhood, concatenated (``9 * C`` features);
``interpolate_time=True`` blends the two nearest time cells (frame interpolation).

Coordinates are in [0, 1]; ``coords[:, 0]`` is the grid's first axis.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ._kernels import gather_levels, gather_rows, sample_levels
from .config import GridConfig, SparseGridConfig
from .quantization import fake_quantize

__all__ = ["DenseGrid2D", "SparseGrid3D", "lookup_planes", "LOOKUPS"]

LOOKUPS = ("auto", "sample", "gather")


class DenseGrid2D(nn.Module):
    """Multi-resolution dense 2D grid; ``forward([N, 2]) -> [N, n_levels * n_features]``."""

    def __init__(self, config: GridConfig, init_std: float = 1e-4):
        super().__init__()
        self.config = config
        resolutions = config.level_resolutions()
        features = config.n_features_per_level
        self.levels = nn.ParameterList(nn.Parameter(torch.empty(features, r, r)) for r in resolutions)
        for level in self.levels:
            nn.init.uniform_(level, -init_std, init_std)
        scales = torch.tensor(config.level_scales(), dtype=torch.float32)
        spans = torch.tensor([r - 1 for r in resolutions], dtype=torch.float32)
        # grid_sample's corner-aligned [-1, 1] grid of p = coord * S + 0.5: coord * 2S / (R-1) + (1 / (R-1) - 1)
        self.register_buffer("grid_scale", 2 * scales / spans, persistent=False)
        self.register_buffer("grid_shift", 1 / spans - 1, persistent=False)
        self.register_buffer("scales", scales, persistent=False)
        self.register_buffer("resolutions", torch.tensor(resolutions), persistent=False)
        sizes = [r * r for r in resolutions]
        self.register_buffer("offsets", torch.tensor([sum(sizes[:i]) for i in range(len(sizes))]), persistent=False)
        self.fake_quant_bits: int | None = None
        """When set, lookups see each level min-max quantized per feature (straight-through)."""
        self.residual: list[torch.Tensor] | None = None
        """When set, lookups see each level plus its (constant) residual, one per level: a codec's
        error added in the forward pass, the gradient reaching the level unchanged (straight-through)."""
        self.lookup = "auto"
        """'sample' (grid_sample per level), 'gather' (one gather over all levels) or 'auto'
        ('gather' on CUDA, 'sample' elsewhere); all give the same values and gradients."""

    def level(self, level: int) -> torch.Tensor:
        """View of one level as ``[R (axis 1), R (axis 0), F]`` (an image of the plane)."""
        return self.levels[level].permute(1, 2, 0)

    def lookup_levels(self) -> list[torch.Tensor]:
        """The levels lookups read: the parameters, their straight-through quantization, plus the
        residual when one is set."""
        levels = list(self.levels)
        if self.fake_quant_bits is not None:
            levels = [fake_quantize(level, self.fake_quant_bits, dims=(1, 2)) for level in levels]
        if self.residual is not None:
            levels = [level + r for level, r in zip(levels, self.residual, strict=True)]
        return levels

    def corners(self, coords: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Rows (in all levels' vertices, level-major, row-major within a level) and bilinear
        weights of the 4 vertices around each point at every level: ``index, weight [N, L, 4]``."""
        pos = coords[:, None, :] * self.scales[None, :, None] + 0.5  # [N, L, 2]
        base = pos.floor()
        frac = pos - base
        base = base.long()
        top = (self.resolutions - 1)[None, :, None]  # [1, L, 1]
        lo = base.clamp(min=0).minimum(top)  # [N, L, 2]
        hi = (base + 1).clamp(min=0).minimum(top)
        r = self.resolutions[None, :]
        rows0 = lo[..., 1] * r + self.offsets  # [N, L]
        rows1 = hi[..., 1] * r + self.offsets
        index = torch.stack((rows0 + lo[..., 0], rows0 + hi[..., 0], rows1 + lo[..., 0], rows1 + hi[..., 0]), -1)
        w0, w1 = frac[..., 0], frac[..., 1]
        weight = torch.stack(((1 - w0) * (1 - w1), w0 * (1 - w1), (1 - w0) * w1, w0 * w1), -1)
        return index, weight

    def uses_gather(self, device: torch.device) -> bool:
        """Whether lookups on ``device`` take the one-gather path (else ``grid_sample`` per level)."""
        if self.lookup not in LOOKUPS:
            raise ValueError(f"DenseGrid2D.lookup must be one of {LOOKUPS}, got {self.lookup!r}")
        return self.lookup == "gather" or (self.lookup == "auto" and device.type == "cuda")

    def sample_grid(self, coords: torch.Tensor) -> torch.Tensor:
        """``grid_sample`` grids of ``coords [N, 2]`` at every level: ``[L, 1, N, 1, 2]`` in [-1, 1]."""
        grid = torch.addcmul(self.grid_shift[:, None, None], coords[None], self.grid_scale[:, None, None])  # [L, N, 2]
        return grid.view(len(self.levels), 1, coords.shape[0], 1, 2)

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        return lookup_planes([(self, coords)])


def lookup_planes(lookups: list[tuple[DenseGrid2D, torch.Tensor]]) -> torch.Tensor:
    """Features of each ``(grid, coords [N, 2])``, concatenated: ``[N, sum L * F]``. The
    ``grid_sample`` lookups of all the pairs go through one call, whose result is already the
    concatenation (stored feature-major), so no copy joins the planes."""
    if any(grid.uses_gather(coords.device) for grid, coords in lookups):
        return torch.cat([_gather(g, c) if g.uses_gather(c.device) else lookup_planes([(g, c)]) for g, c in lookups], 1)
    levels = [level for grid, _ in lookups for level in grid.lookup_levels()]
    grid = torch.cat([grid.sample_grid(coords) for grid, coords in lookups])  # [sum L, 1, N, 1, 2]
    return sample_levels(levels, grid)


def _gather(grid: DenseGrid2D, coords: torch.Tensor) -> torch.Tensor:
    """The one-gather lookup of ``coords [N, 2]`` in ``grid``: ``[N, L * F]``."""
    index, weight = grid.corners(coords)
    n, count = index.shape[:2]
    features = gather_levels(grid.lookup_levels(), index.view(n * count, 4), weight.view(n * count, 4))
    return features.view(n, -1)  # [N*L, F] -> [N, L*F]


# 3x3 neighbourhood in (x, y), x-major as in the published code.
_NEIGHBOURS = [(dx, dy) for dx in (-1, 0, 1) for dy in (-1, 0, 1)]


class SparseGrid3D(nn.Module):
    """Sparse 3D grid; ``forward([N, 3] (t, x, y)) -> [N, 9 * n_features]``."""

    def __init__(self, config: SparseGridConfig, init_std: float = 1e-4):
        super().__init__()
        self.config = config
        self.embeddings = nn.Parameter(torch.empty(config.shape))  # [T, X, Y, C]
        nn.init.uniform_(self.embeddings, -init_std, init_std)
        self.fake_quant_bits: int | None = None
        """When set, lookups see the grid min-max quantized per feature channel (straight-through)."""
        self.residual: list[torch.Tensor] | None = None
        """When set (one tensor, shaped like the grid), lookups see the grid plus it (straight-through)."""
        self.register_buffer("neighbours", torch.tensor(_NEIGHBOURS), persistent=False)  # [9, 2]

    def grid(self) -> torch.Tensor:
        """The lookup grid ``[T, X', Y', C]`` (upsampled 2x in x and y if configured)."""
        g = self.embeddings
        if self.fake_quant_bits is not None:
            g = fake_quantize(g, self.fake_quant_bits, dims=(0, 1, 2))
        if self.residual is not None:
            g = g + self.residual[0]
        if not self.config.upsample:
            return g
        g = g.permute(3, 0, 1, 2)  # [C, T, X, Y]: time as channels, x/y as the image
        g = F.interpolate(g, scale_factor=2, mode="bilinear")
        return g.permute(1, 2, 3, 0)  # [T, 2X, 2Y, C]

    def forward(self, coords: torch.Tensor, interpolate_time: bool = False) -> torch.Tensor:
        grid = self.grid()
        ts, xs, ys, c = grid.shape
        table = grid.reshape(-1, c)  # [T*X*Y, C]
        x = _nearest(coords[:, 1], xs)[:, None] + self.neighbours[:, 0]  # [N, 9]
        y = _nearest(coords[:, 2], ys)[:, None] + self.neighbours[:, 1]
        cells = x.clamp(0, xs - 1) * ys + y.clamp(0, ys - 1)  # flat (x, y) cell of each neighbour, [N, 9]
        n = coords.shape[0]
        if not interpolate_time:
            rows = _nearest(coords[:, 0], ts)[:, None] * (xs * ys) + cells
            return gather_rows(table, rows).view(n, 9 * c)  # [N, 9, C] -> [N, 9C]
        t_float = coords[:, 0] * (ts - 1)
        lo = t_float.floor().long().clamp(0, ts - 1)
        hi = (lo + 1).clamp(max=ts - 1)
        w = (t_float - lo).clamp(0, 1)[:, None]  # [N, 1]
        before = gather_rows(table, lo[:, None] * (xs * ys) + cells).view(n, 9 * c)
        after = gather_rows(table, hi[:, None] * (xs * ys) + cells).view(n, 9 * c)
        return before + w * (after - before)


def _nearest(coord: torch.Tensor, size: int) -> torch.Tensor:
    """Index of the nearest of ``size`` cells spread over [0, 1] (round half up, clamped)."""
    return (coord * (size - 1) + 0.5).floor().long().clamp(0, size - 1)
