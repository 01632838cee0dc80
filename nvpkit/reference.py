"""A straightforward PyTorch port of the published training step, kept as the reference that the
fast path is tested against and benchmarked with.

It is what one writes when replacing tiny-cuda-nn line by line: one ``F.grid_sample`` per
grid level, the sparse grid's nine neighbour gathers concatenated, the decoder from
``nn.Linear`` layers, batches drawn on the host and copied over, and an unfused AdamW.
It copies an ``NVP``'s parameters, so both compute the same function.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .model import NVP

__all__ = ["PortNVP", "port_batch", "port_update"]


class _PortPlanes(nn.Module):
    """One ``[1, F, R, R]`` parameter per level, sampled with ``grid_sample``."""

    def __init__(self, grid: nn.Module):
        super().__init__()
        self.scales = grid.config.level_scales()
        self.levels = nn.ParameterList(
            nn.Parameter(level.detach()[None].clone()) for level in grid.levels)  # [F, R, R] -> [1, F, R, R]

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        out = []
        for scale, plane in zip(self.scales, self.levels):
            res = plane.shape[-1]
            # tiny-cuda-nn position coord * S + 0.5 in vertex units, as grid_sample's align_corners=True grid
            g = (coords * scale + 0.5) / (res - 1) * 2 - 1  # [N, 2]: (axis 0 -> width, axis 1 -> height)
            sampled = F.grid_sample(plane, g[None, :, None, :], mode="bilinear", padding_mode="border",
                                    align_corners=True)  # [1, F, N, 1]
            out.append(sampled[0, :, :, 0].t())  # [N, F]
        return torch.cat(out, 1)


class _PortSparse(nn.Module):
    def __init__(self, grid: nn.Module):
        super().__init__()
        self.embeddings = nn.Parameter(grid.embeddings.detach().clone())

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        t_res, x_res, y_res, _ = self.embeddings.shape
        t = (coords[:, 0] * (t_res - 1) + 0.5).long().clamp(0, t_res - 1)
        x = (coords[:, 1] * (x_res - 1) + 0.5).long().clamp(0, x_res - 1)
        y = (coords[:, 2] * (y_res - 1) + 0.5).long().clamp(0, y_res - 1)
        feats = []
        for i in (-1, 0, 1):
            for j in (-1, 0, 1):
                feats.append(self.embeddings[t, (x + i).clamp(0, x_res - 1), (y + j).clamp(0, y_res - 1)])
        return torch.cat(feats, 1)


class _PortDecoder(nn.Module):
    """The modulated SIREN in plain layers: ``sin(w0 * linear(h)) * leaky_relu(linear([m, z]))``."""

    def __init__(self, decoder: nn.Module):
        super().__init__()
        self.modulator = nn.ModuleList(_copy_linear(layer) for layer in decoder.modulator.layers)
        self.siren = nn.ModuleList(_copy_linear(layer) for layer in decoder.layers)
        self.w0 = [layer.w0 for layer in decoder.layers]
        self.last = _copy_linear(decoder.last)

    def forward(self, steps: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        h, m = steps[:, None], None
        for k, (siren, modulator) in enumerate(zip(self.siren, self.modulator)):
            m = F.leaky_relu(modulator(z if k == 0 else torch.cat((m, z), 1)))
            h = torch.sin(self.w0[k] * siren(h)) * m
        return self.last(h)


def _copy_linear(layer: nn.Linear) -> nn.Linear:
    out = nn.Linear(layer.in_features, layer.out_features)
    out.load_state_dict({"weight": layer.weight.detach(), "bias": layer.bias.detach()})
    return out


class PortNVP(nn.Module):
    """The published NVP step written plainly; built from (and equal to) an ``NVP``."""

    def __init__(self, model: NVP):
        super().__init__()
        self.xy, self.xt, self.yt = _PortPlanes(model.xy), _PortPlanes(model.xt), _PortPlanes(model.yt)
        self.sparse = _PortSparse(model.sparse)
        self.decoder = _PortDecoder(model.decoder)

    def forward(self, coords: torch.Tensor, steps: torch.Tensor) -> torch.Tensor:
        t, x, y = coords[:, 0:1], coords[:, 1:2], coords[:, 2:3]
        latent = torch.cat((self.xy(torch.cat((x, y), 1)), self.yt(torch.cat((t, y), 1)),
                            self.xt(torch.cat((t, x), 1)), self.sparse(coords)), 1)
        return self.decoder(steps, latent)


def port_batch(frames: torch.Tensor, batch: int, generator: torch.Generator
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A batch drawn on the host as the published data loader does (frame and pixel indices apart):
    coords ``[N, 3]``, time steps ``[N]``, targets in [-1, 1] ``[N, 3]``, all on the CPU."""
    t_count, height, width, _ = frames.shape
    t = torch.randint(0, t_count, (batch,), generator=generator)
    pix = torch.randint(0, height * width, (batch,), generator=generator)
    target = (frames.view(t_count, height * width, 3)[t, pix].float() - 127.5) / 127.5
    x, y = pix // width, pix % width
    coords = torch.stack((t / max(t_count - 1, 1), x / max(height - 1, 1), y / max(width - 1, 1)), 1).float()
    return coords, (t.float() + 0.5) / t_count, target


def port_update(model: PortNVP, optimizer: torch.optim.Optimizer, coords: torch.Tensor, steps: torch.Tensor,
                target: torch.Tensor) -> torch.Tensor:
    """Forward, MSE, backward and optimizer step, as the published loop does."""
    loss = F.mse_loss(model(coords, steps), target)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.detach()
