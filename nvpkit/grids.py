"""Latent grids: learnable positional features looked up by coordinate.

``DenseGrid2D`` is a multi-resolution dense 2D grid with tiny-cuda-nn ``DenseGrid``
semantics (per level: scale ``S = base * s**l - 1``, ``R = ceil(S) + 1`` vertices per
side, position ``p = coord * S + 0.5``, bilinear between the vertices around ``p``,
clamped at the border). All levels live in one flat table, as in tiny-cuda-nn, so a
lookup over every level is a single weighted gather.

``SparseGrid3D`` is the sparse positional feature grid ``[T, X, Y, C]``: the nearest
cell in (t, x, y) plus its 3x3 spatial neighbourhood, concatenated (``9 * C`` features);
``interpolate_time=True`` blends the two nearest time cells (frame interpolation).

Coordinates are in [0, 1]; ``coords[:, 0]`` is the grid's first axis.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import GridConfig, SparseGridConfig

__all__ = ["DenseGrid2D", "SparseGrid3D", "fake_quantize"]


class _WeightedGather(torch.autograd.Function):
    """``out[m] = sum_k weight[m, k] * table[index[m, k]]`` for ``index, weight [M, K]``.

    Forward is one ``embedding_bag``; backward is one ``index_add_`` of the weighted upstream
    gradients into the table (3-10x faster on the CPU than the generic embedding-bag backward)."""

    @staticmethod
    def forward(ctx, table: torch.Tensor, index: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(index, weight)
        ctx.rows = table.shape[0]
        return F.embedding_bag(index, table, per_sample_weights=weight, mode="sum")  # [M, F]

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        index, weight = ctx.saved_tensors
        features = grad.shape[1]
        contrib = (grad[:, None, :] * weight[..., None]).reshape(-1, features)  # [M*K, F]
        table_grad = grad.new_zeros(ctx.rows, features).index_add_(0, index.reshape(-1), contrib)
        return table_grad, None, None


class DenseGrid2D(nn.Module):
    """Multi-resolution dense 2D grid; ``forward([N, 2]) -> [N, n_levels * n_features]``."""

    def __init__(self, config: GridConfig, init_std: float = 1e-4):
        super().__init__()
        self.config = config
        resolutions = config.level_resolutions()
        sizes = [r * r for r in resolutions]
        offsets = [sum(sizes[:level]) for level in range(len(sizes))]
        self.register_buffer("scales", torch.tensor(config.level_scales(), dtype=torch.float32), persistent=False)
        self.register_buffer("resolutions", torch.tensor(resolutions), persistent=False)
        self.register_buffer("offsets", torch.tensor(offsets), persistent=False)
        self._level_bounds = [*offsets, sum(sizes)]  # host copy: no device sync to slice levels
        # One row per vertex of every level; within a level, vertex (i0, i1) is row i0 + i1 * R.
        self.table = nn.Parameter(torch.empty(sum(sizes), config.n_features_per_level))
        nn.init.uniform_(self.table, -init_std, init_std)
        self.fake_quant_bits: int | None = None
        """When set, lookups see the table min-max quantized per level and feature (straight-through)."""

    def level(self, level: int) -> torch.Tensor:
        """View of one level as ``[R (axis 1), R (axis 0), F]`` (an image of the plane)."""
        r, start = int(self.resolutions[level]), int(self.offsets[level])
        return self.table[start:start + r * r].view(r, r, -1)  # rows: i1, columns: i0

    def corners(self, coords: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Table rows and bilinear weights of the 4 vertices around each point at every level.

        Returns ``index [N, L, 4]`` (int64) and ``weight [N, L, 4]``."""
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

    def lookup_table(self) -> torch.Tensor:
        """The table lookups read: the parameter, or its straight-through quantization."""
        if self.fake_quant_bits is None:
            return self.table
        bounds = self._level_bounds
        return torch.cat([fake_quantize(self.table[a:b], self.fake_quant_bits, dims=(0,))
                          for a, b in zip(bounds[:-1], bounds[1:])])

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        index, weight = self.corners(coords)
        n, levels, _ = index.shape
        features = _WeightedGather.apply(self.lookup_table(), index.view(n * levels, 4), weight.view(n * levels, 4))
        return features.view(n, levels * self.table.shape[1])  # [N*L, F] -> [N, L*F]


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
        self.register_buffer("neighbours", torch.tensor(_NEIGHBOURS), persistent=False)  # [9, 2]

    def grid(self) -> torch.Tensor:
        """The lookup grid ``[T, X', Y', C]`` (upsampled 2x in x and y if configured)."""
        g = self.embeddings
        if self.fake_quant_bits is not None:
            g = fake_quantize(g, self.fake_quant_bits, dims=(0, 1, 2))
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
            return F.embedding(rows, table).view(n, 9 * c)  # [N, 9, C] -> [N, 9C]
        t_float = coords[:, 0] * (ts - 1)
        lo = t_float.floor().long().clamp(0, ts - 1)
        hi = (lo + 1).clamp(max=ts - 1)
        w = (t_float - lo).clamp(0, 1)[:, None]  # [N, 1]
        before = F.embedding(lo[:, None] * (xs * ys) + cells, table).view(n, 9 * c)
        after = F.embedding(hi[:, None] * (xs * ys) + cells, table).view(n, 9 * c)
        return before + w * (after - before)


def fake_quantize(x: torch.Tensor, bits: int, dims: tuple[int, ...]) -> torch.Tensor:
    """Min-max uniform quantization over ``dims`` (one range per remaining index) in the forward
    pass, identity in the backward pass (straight-through estimator)."""
    lo, hi = x.amin(dims, keepdim=True), x.amax(dims, keepdim=True)
    levels = 2**bits - 1
    scale = (hi - lo).clamp_min(1e-12) / levels
    q = ((x - lo) / scale + 0.5).floor().clamp(0, levels) * scale + lo
    return x + (q - x).detach()


def _nearest(coord: torch.Tensor, size: int) -> torch.Tensor:
    """Index of the nearest of ``size`` cells spread over [0, 1] (round half up, clamped)."""
    return (coord * (size - 1) + 0.5).floor().long().clamp(0, size - 1)
