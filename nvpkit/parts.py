"""The parts of an NVP model, in one place: their names, parameter counts, shapes and channel views.

A model has five parts: the 2D grids ``xy``, ``xt``, ``yt`` (each split into one plane per level
and feature channel, ``[R_l, R_l]``, feature-major as the published code writes them), the sparse
grid (one volume per feature channel, ``[T, X, Y]``) and the decoder MLP (one flat vector). The
compressors, guidance and initialisation all address parts through this module.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch

from .config import NVPConfig

if TYPE_CHECKING:
    from .model import NVP

__all__ = ["GRIDS_2D", "GRIDS", "PARTS", "count_parameters", "part_shapes", "channels", "load_channels",
           "flat_values", "num_values", "check_parts"]

GRIDS_2D = ("xy", "xt", "yt")
"""The multi-resolution 2D grids."""
GRIDS = (*GRIDS_2D, "sparse")
"""Every latent grid: what guidance and initialisation act on."""
PARTS = (*GRIDS, "decoder")
"""Every part of the model: what a compressor stores."""

Shape = tuple[int, ...]


def check_parts(where: str, names: tuple[str, ...] | list[str], allowed: tuple[str, ...] = PARTS) -> tuple[str, ...]:
    """``names`` as a tuple if each is one of ``allowed``, else ``ValueError``."""
    unknown = sorted(str(n) for n in names if not isinstance(n, str) or n not in allowed)
    if unknown:
        raise ValueError(f"{where}: unknown parts {unknown}; use some of {list(allowed)}")
    return tuple(names)


def count_parameters(config: NVPConfig) -> dict[str, int]:
    """Parameter counts per part and ``total``, from shapes alone (no allocation)."""
    latent, hidden, layers = config.latent_features, config.network.n_neurons, config.network.n_hidden_layers
    modulator = (latent * hidden + hidden) + (layers - 1) * ((hidden + latent) * hidden + hidden)
    siren = (1 * hidden + hidden) + (layers - 1) * (hidden * hidden + hidden) + (hidden * 3 + 3)
    counts = {name: getattr(config, name).num_parameters() for name in GRIDS}
    counts["decoder"] = modulator + siren
    counts["total"] = sum(counts.values())
    return counts


def part_shapes(config: NVPConfig, part: str) -> list[Shape]:
    """Shapes of a part's channels, from the config alone."""
    if part in GRIDS_2D:
        grid = getattr(config, part)
        return [(r, r) for _ in range(grid.n_features_per_level) for r in grid.level_resolutions()]
    if part == "sparse":
        t, x, y, c = config.sparse.shape
        return [(t, x, y)] * c
    return [(count_parameters(config)["decoder"],)]


def channels(model: NVP, part: str) -> list[torch.Tensor]:
    """A part's channels as views of the model's parameters (detached), in ``part_shapes`` order."""
    if part in GRIDS_2D:
        grid = getattr(model, part)
        return [grid.level(level)[..., f].detach() for f in range(grid.config.n_features_per_level)
                for level in range(grid.config.n_levels)]
    if part == "sparse":
        return list(model.sparse.embeddings.detach().unbind(-1))  # [T, X, Y, C] -> C x [T, X, Y]
    return [torch.cat([p.detach().flatten() for p in model.decoder.parameters()])]


@torch.no_grad()
def load_channels(model: NVP, part: str, values: list[torch.Tensor]) -> None:
    """Copy ``values`` (``channels`` order) into a part's parameters in place: the parameters stay
    the same objects, so an optimizer keeps tracking them."""
    if part == "decoder":
        flat, offset = values[0], 0
        for p in model.decoder.parameters():
            p.copy_(flat[offset:offset + p.numel()].view_as(p))
            offset += p.numel()
        return
    if part == "sparse":
        model.sparse.embeddings.copy_(torch.stack(values, -1))  # C x [T, X, Y] -> [T, X, Y, C]
        return
    for view, value in zip(channels(model, part), values, strict=True):
        view.copy_(value)


def flat_values(model: NVP, part: str) -> torch.Tensor:
    """All of a grid's values as one vector, differentiable (a view for the sparse grid, a
    concatenation of the levels for a 2D grid)."""
    if part == "sparse":
        return model.sparse.embeddings.flatten()
    return torch.cat([level.flatten() for level in getattr(model, part).levels])


def num_values(config: NVPConfig) -> int:
    """Values of every part together (what a decoded model holds)."""
    return sum(math.prod(s) for part in PARTS for s in part_shapes(config, part))
