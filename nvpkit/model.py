"""The NVP model: latent grids composed with a modulated SIREN decoder.

Read top-down: the decoder's building blocks (a SIREN layer, the modulator), the
decoder, then ``NVP``, which only composes the grids (``grids.py``) and the decoder.

A point is ``coords = (t, x, y)`` in [0, 1] (grid lookups) plus ``steps``, the
frame's time step ``(i + 0.5) / T`` fed to the SIREN, as in the published code.
The output is RGB in the target range [-1, 1] (a linear last layer, unclamped).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ._kernels import linear_t, sine_modulate, with_ones
from ._device import available_host_memory
from .memory import FLOAT32
from .config import NVPConfig, load_config
from .grids import DenseGrid2D, SparseGrid3D, lookup_planes
from .parts import GRIDS, count_parameters

__all__ = ["NVP", "ModulatedSiren"]


class SirenLayer(nn.Linear):
    """``sin(w0 * (W x + b))`` with the SIREN initialisation (uniform, std 1/fan_in on the
    first layer, sqrt(6/fan_in)/w0 elsewhere); ``w0=None`` makes the layer linear."""

    def __init__(self, fan_in: int, fan_out: int, w0: float | None, first: bool = False):
        super().__init__(fan_in, fan_out)
        self.w0 = w0
        bound = 1.0 / fan_in if first else math.sqrt(6.0 / fan_in) / (w0 or 1.0)
        with torch.no_grad():
            self.weight.uniform_(-bound, bound)
            self.bias.uniform_(-bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = super().forward(x)
        return y if self.w0 is None else torch.sin(self.w0 * y)


_SLOPE = 0.01  # LeakyReLU's default negative slope, as published


class Modulator(nn.Module):
    """LeakyReLU MLP over the latent ``z``; layer ``k > 0`` sees ``[h_{k-1}, z]`` (skip-concatenated
    latent). Feature-major like the decoder: ``z_t [latent, N]`` -> one ``[hidden, N]`` modulation
    per SIREN hidden layer."""

    def __init__(self, latent: int, hidden: int, layers: int):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(latent if k == 0 else hidden + latent, hidden) for k in range(layers))
        for layer in self.layers:
            nn.init.kaiming_normal_(layer.weight, a=0.0, nonlinearity="relu", mode="fan_in")

    def forward(self, z_t: torch.Tensor) -> list[torch.Tensor]:
        z_t = with_ones(z_t)  # [latent + 1, N]: the ones row carries each layer's bias
        first = self.layers[0]
        h = linear_t(z_t, first.weight, first.bias, leaky_slope=_SLOPE)  # [hidden, N]
        mods = [h]
        for layer in self.layers[1:]:
            h = linear_t(torch.cat((h, z_t)), layer.weight, layer.bias, leaky_slope=_SLOPE)  # [hidden + latent + 1, N]
            mods.append(h)
        return mods


class ModulatedSiren(nn.Module):
    """SIREN over the time step whose hidden layers are multiplied by the modulator's outputs.

    Activations are feature-major (one column per sample) with a trailing ones row that carries
    the next layer's bias, the layout in which every product of the step runs without a copy
    (``_kernels.linear_t``)."""

    def __init__(self, latent: int, hidden: int, layers: int, w0_initial: float = 30.0, out_features: int = 3):
        super().__init__()
        self.modulator = Modulator(latent, hidden, layers)
        self.layers = nn.ModuleList(
            SirenLayer(1, hidden, w0_initial, first=True) if k == 0 else SirenLayer(hidden, hidden, 1.0)
            for k in range(layers))
        self.last = SirenLayer(hidden, out_features, None)

    def forward(self, steps: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
        """RGB ``[N, 3]`` from time steps ``[N]`` and the latent ``[N, latent]`` (read fastest when
        its storage is feature-major, as ``NVP.latent`` returns it)."""
        h = with_ones(steps[None, :])  # [N] -> [2, N]: the step and the ones row for the bias
        for layer, mod in zip(self.layers, self.modulator(latent.t())):
            pre = linear_t(h, layer.weight, layer.bias, scale=layer.w0)  # w0 * layer(h), [hidden, N]
            h = sine_modulate(pre, mod)  # [sin(pre) * mod; 1]
        return linear_t(h, self.last.weight, self.last.bias).t()  # [3, N] -> [N, 3]


def _check_host_memory(config: NVPConfig) -> None:
    """Refuse, with the size, a model whose parameters alone exceed the available host memory."""
    need = count_parameters(config)["total"] * FLOAT32
    available = available_host_memory()
    if available is not None and need > available:
        raise ValueError(f"NVP: this config has {need / FLOAT32:,.0f} parameters ({need / 2**30:.1f} GiB as float32) "
                         f"but only {available / 2**30:.1f} GiB of memory is available; use a smaller preset or "
                         "sparse grid")


class NVP(nn.Module):
    """Neural video representation with learnable positional features (Kim et al., NeurIPS 2022)."""

    def __init__(self, config: NVPConfig | str | dict = "nvp_s", init_std: float = 1e-4):
        super().__init__()
        self.config = load_config(config)
        c = self.config
        _check_host_memory(c)
        self.xy = DenseGrid2D(c.xy, init_std)
        self.xt = DenseGrid2D(c.xt, init_std)
        self.yt = DenseGrid2D(c.yt, init_std)
        self.sparse = SparseGrid3D(c.sparse, init_std)
        self.decoder = ModulatedSiren(c.latent_features, c.network.n_neurons, c.network.n_hidden_layers,
                                      c.network.w0_initial)

    def grids(self) -> dict[str, nn.Module]:
        """The latent grids by name (``xy``, ``xt``, ``yt``, ``sparse``): what compressors act on."""
        return {name: getattr(self, name) for name in GRIDS}

    def latent(self, coords: torch.Tensor, interpolate_time: bool = False) -> torch.Tensor:
        """Positional features ``[N, latent_features]`` of points ``coords [N, 3] = (t, x, y)``."""
        t, x, y = coords[:, 0:1], coords[:, 1:2], coords[:, 2:3]
        planes = lookup_planes([(self.xy, torch.cat((x, y), 1)), (self.yt, torch.cat((t, y), 1)),
                                (self.xt, torch.cat((t, x), 1))])  # [N, 3 L F], one call for all levels
        sparse = self.sparse(coords, interpolate_time)  # [N, 9 C]
        return torch.cat((planes.t(), sparse.t())).t()  # [latent, N] storage, feature-major for the decoder

    def forward(self, coords: torch.Tensor, steps: torch.Tensor, interpolate_time: bool = False) -> torch.Tensor:
        """RGB in [-1, 1] scale, ``[N, 3]``, at ``coords [N, 3]`` and SIREN time steps ``steps [N]``."""
        return self.decoder(steps, self.latent(coords, interpolate_time))

    @classmethod
    def seeded(cls, config: NVPConfig | str | dict, seed: int) -> "NVP":
        """The model initialised from ``seed`` (torch's global generator is left as it was)."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return cls(config)

    def parameter_counts(self) -> dict[str, int]:
        """Parameter counts per part (``xy``, ``xt``, ``yt``, ``sparse``, ``decoder``, ``total``)."""
        return count_parameters(self.config)
