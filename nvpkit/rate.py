"""A rate term for training: differentiable estimates of what a codec will spend on the latent grids.

Training on ``MSE + weight * estimate`` makes the grids cheaper to code. The bits a compressor
spends are still what its codec writes: the estimate only shapes training, and the estimator's
own parameters are never stored with the model. Both estimators read every channel of a grid (a
2D grid's level and feature, a sparse-grid feature) as the codecs do, in units of its ``bits``-bit
quantization step (``quantization.in_steps``: its min-max range, held fixed within a step, so
scaling a channel as a whole changes nothing, as it changes nothing for a codec), and both are per
grid value, so ``weight`` does not depend on the model's size.

- ``"tv"``: total variation in the order each codec reads its grid: the absolute differences
  between neighbours of every 2D plane along both of its axes, and of the sparse grid's volumes
  along t, x and y (a video codec's frames, predicted from each other), summed and divided by the
  number of grid values. The smoothness that VideoRF's losses ask of its feature images; no state.
- ``"entropy"``: bits per value of the values with additive uniform noise, under a learned
  factorized density (Ballé et al., ICLR 2018; CompressAI's ``EntropyBottleneck``), one density per
  grid, fitted to the detached values by its own Adam at every step. It estimates the values'
  zeroth-order entropy at the codec's step, not what a codec that predicts from neighbours spends.
  It is computed on ``samples`` values of each grid drawn afresh at every step (an unbiased
  estimate of the mean; the draws and the noise depend only on ``seed`` and the step). The
  densities and their optimizer are kept in ``trainer.extra["rate"]``, saved with every
  checkpoint, so a resumed run goes on exactly.

``RateTerm(estimator, weight)`` is the ``Trainer`` regularizer: ``rate.attach(trainer)``.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from ._checks import check_choice, check_int, check_number, is_int
from .parts import GRIDS, GRIDS_2D
from .quantization import in_steps

if TYPE_CHECKING:
    from .model import NVP
    from .train import Trainer

__all__ = ["ESTIMATORS", "RateTerm", "FactorizedDensity", "codec_views", "total_variation"]

ESTIMATORS = ("tv", "entropy")
"""The rate estimators, by name (see the module docstring)."""
LIKELIHOOD_BOUND = 1e-9
"""Smallest probability of a value's quantization interval: at most about 30 bits per value."""


def codec_views(model: NVP, bits: int = 8) -> dict[str, list[torch.Tensor]]:
    """Every grid's channels as its codec reads them, in units of their ``bits``-bit quantization
    step, differentiable: per 2D grid its levels ``[F, R, R]``, the sparse grid as ``[C, T, X, Y]``."""
    views = {name: [in_steps(level, bits, (1, 2)) for level in getattr(model, name).levels] for name in GRIDS_2D}
    volume = model.sparse.embeddings.permute(3, 0, 1, 2)  # [T, X, Y, C] -> [C, T, X, Y]
    views["sparse"] = [in_steps(volume, bits, (1, 2, 3))]
    return views


def total_variation(model: NVP, bits: int = 8) -> torch.Tensor:
    """The grids' total variation in their codecs' reading order, in quantization steps per grid
    value: absolute differences between neighbours along every axis of every channel but the
    feature axis, summed, divided by the number of grid values."""
    total, count = 0.0, 0
    for views in codec_views(model, bits).values():
        for x in views:
            count += x.numel()
            total = total + sum(x.diff(dim=axis).abs().sum() for axis in range(1, x.dim()))
    return total / count


class FactorizedDensity(nn.Module):
    """A learned univariate density (Ballé et al., ICLR 2018, appendix 6.1): its cumulative is
    ``sigmoid(f_K(... f_1(x)))``, each ``f_k(y) = g_k(softplus(H_k) y + b_k)`` monotone, with
    ``g_k(y) = y + tanh(a_k) tanh(y)`` (none on the last). ``init_scale``: the spread of values it
    starts from."""

    def __init__(self, filters: tuple[int, ...] = (3, 3, 3), init_scale: float = 10.0, seed: int = 0):
        super().__init__()
        dims = (1, *filters, 1)
        scale = init_scale ** (1 / (len(dims) - 1))
        generator = torch.Generator().manual_seed(seed)
        self.matrices = nn.ParameterList(
            nn.Parameter(torch.full((d_out, d_in), math.log(math.expm1(1 / scale / d_out))))
            for d_in, d_out in zip(dims, dims[1:]))
        self.biases = nn.ParameterList(nn.Parameter(torch.rand(d_out, 1, generator=generator) - 0.5) for d_out in dims[1:])
        self.factors = nn.ParameterList(nn.Parameter(torch.zeros(d_out, 1)) for d_out in dims[1:-1])

    def _logits(self, x: torch.Tensor, detach: bool) -> torch.Tensor:
        """The cumulative's logits at ``x`` (``[N]``); with ``detach``, no gradient reaches the density."""
        def held(p: torch.Tensor) -> torch.Tensor:
            return p.detach() if detach else p

        y = x[None]  # [N] -> [1, N]
        for k, (matrix, bias) in enumerate(zip(self.matrices, self.biases)):
            y = F.softplus(held(matrix)) @ y + held(bias)  # [d_out, N]
            if k < len(self.factors):
                y = y + torch.tanh(held(self.factors[k])) * torch.tanh(y)
        return y[0]

    def bits(self, x: torch.Tensor, detach: bool = False) -> torch.Tensor:
        """``-log2`` of the probability of the unit interval around each value of ``x`` (``[N]``);
        with ``detach``, the gradient reaches ``x`` only."""
        lower, upper = self._logits(x - 0.5, detach), self._logits(x + 0.5, detach)
        sign = -torch.sign(lower + upper).detach()  # the subtraction on the side of the tail: no cancellation
        probability = (torch.sigmoid(sign * upper) - torch.sigmoid(sign * lower)).abs()
        return -torch.log2(probability.clamp_min(LIKELIHOOD_BOUND))


class RateTerm:
    """``weight * estimate`` as a ``Trainer`` regularizer (see the module docstring). ``bits``: the
    codecs' sample depth; ``samples``, ``lr``, ``seed``: the entropy estimator's values per grid and
    step, its densities' learning rate and the seed of its draws."""

    def __init__(self, estimator: str = "tv", weight: float = 1e-4, *, bits: int = 8, samples: int = 2**14,
                 lr: float = 1e-2, seed: int = 0):
        self.estimator = check_choice("RateTerm", "estimator", estimator, ESTIMATORS)
        self.weight = check_number("RateTerm", "weight", weight, above=True)
        self.lr = check_number("RateTerm", "lr", lr, above=True)
        if not is_int(seed):
            raise ValueError(f"RateTerm: seed={seed!r} is not allowed; use an int")
        self.seed = seed
        self.bits = check_int("RateTerm", "bits", bits, 1, 16)
        self.samples = check_int("RateTerm", "samples", samples, 1)
        self.densities: nn.ModuleDict | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        self._trainer: Trainer | None = None

    def attach(self, trainer: Trainer) -> None:
        """Make this the trainer's regularizer; the entropy estimator's densities and optimizer are
        created on the trainer's device, or restored from ``trainer.extra["rate"]`` (a checkpoint's)."""
        if self.estimator == "entropy":
            self.densities = nn.ModuleDict({name: FactorizedDensity(init_scale=2.0**self.bits, seed=i)
                                            for i, name in enumerate(GRIDS)}).to(trainer.device)
            self.optimizer = torch.optim.Adam(self.densities.parameters(), lr=self.lr)
            saved = trainer.extra.get("rate")
            if saved is not None:
                try:
                    self.densities.load_state_dict(saved["densities"])
                    self.optimizer.load_state_dict(saved["optimizer"])
                except (KeyError, TypeError, ValueError, RuntimeError) as err:
                    raise ValueError(f"RateTerm: the checkpoint's entropy estimator does not fit this one "
                                     f"({type(err).__name__}: {str(err)[:200]}); start the arm again "
                                     "(overwrite=True)") from None
            self._trainer = trainer
            self._keep_state()
        trainer.regularizer = self

    def detach(self, trainer: Trainer) -> None:
        """Undo ``attach``: the trainer trains on the MSE alone again."""
        trainer.regularizer = None
        self._trainer = None

    def __call__(self, model: NVP, step: int) -> torch.Tensor:
        return self.weight * self.estimate(model, step)

    def estimate(self, model: NVP, step: int, fit: bool = True) -> torch.Tensor:
        """The estimate for ``model`` at ``step`` (differentiable; a device scalar). With ``fit``, the
        entropy estimator first fits its densities one step to the values it draws."""
        if self.estimator == "tv":
            return total_variation(model, self.bits)
        if self.densities is None:
            raise RuntimeError("RateTerm: attach it to a trainer before the entropy estimator is used")
        return self._entropy(model, step, fit)

    def _entropy(self, model: NVP, step: int, fit: bool) -> torch.Tensor:
        device = model.sparse.embeddings.device
        generator = torch.Generator(device=device).manual_seed((self.seed * 1_000_003 + step) % 2**63)
        centre = (2**self.bits - 1) / 2
        noisy, sizes = {}, {}
        for name, views in codec_views(model, self.bits).items():
            flat = torch.cat([x.flatten() for x in views])
            sizes[name] = flat.numel()
            if flat.numel() > self.samples:
                flat = flat[torch.randint(flat.numel(), (self.samples,), generator=generator, device=device)]
            noisy[name] = flat - centre + (torch.rand(flat.shape, generator=generator, device=device) - 0.5)
        if fit:
            self.optimizer.zero_grad(set_to_none=True)
            sum(self.densities[name].bits(x.detach()).mean() for name, x in noisy.items()).backward()
            self.optimizer.step()
            self._keep_state()
        total = sum(sizes[name] * self.densities[name].bits(x, detach=True).mean() for name, x in noisy.items())
        return total / sum(sizes.values())

    def _keep_state(self) -> None:
        """Point ``trainer.extra["rate"]`` at the densities' and optimizer's current state (references,
        no copies), so every checkpoint saves it."""
        if self._trainer is not None:
            self._trainer.extra["rate"] = {"densities": self.densities.state_dict(),
                                           "optimizer": self.optimizer.state_dict()}
