"""Min-max uniform quantization, the one formula behind the compressors' codes and the
straight-through quantizer of training.

As published: codes are ``floor((x - min) / (max - min) * (2**bits - 1) + 0.5)``, one range per
slice (the whole tensor, or every index outside ``dims``). The ranges are float32, since that is
what a decoder stores. Computed in float32 up to 12 bits (rounding error under 1e-3 of a step) and
in float64 above.
"""
from __future__ import annotations

import torch

__all__ = ["quantize", "dequantize", "fake_quantize", "in_steps"]


def _work_dtype(bits: int) -> torch.dtype:
    return torch.float32 if bits <= 12 else torch.float64


def quantize(x: torch.Tensor, bits: int = 8, dims: tuple[int, ...] | None = None
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Codes of ``x`` (uint8 up to 8 bits, else int32) and the float32 ranges ``lo``, ``hi``: one
    range for the whole tensor (``dims=None``, scalars) or one per index outside ``dims`` (kept as
    size-1 dims). No host sync."""
    x = x.detach()
    if dims is None:
        lo, hi = torch.aminmax(x)
    else:
        lo, hi = x.amin(dims, keepdim=True), x.amax(dims, keepdim=True)
    lo, hi = lo.float(), hi.float()
    levels = 2**bits - 1
    work = _work_dtype(bits)
    span = (hi - lo).to(work)
    scale = levels / torch.where(span > 0, span, torch.ones_like(span))
    codes = (x.to(work) - lo.to(work)).mul_(scale).add_(0.5).floor_().clamp_(0, levels)  # one temporary
    return codes.to(torch.uint8 if bits <= 8 else torch.int32), lo, hi


def dequantize(codes: torch.Tensor, lo: torch.Tensor | float, hi: torch.Tensor | float, bits: int = 8) -> torch.Tensor:
    """Inverse of ``quantize`` (codes of any integer dtype): float32 values within half a step of the
    originals."""
    work = _work_dtype(bits)
    lo = torch.as_tensor(lo, dtype=work, device=codes.device)
    hi = torch.as_tensor(hi, dtype=work, device=codes.device)
    return codes.to(work, copy=True).mul_((hi - lo) / (2**bits - 1)).add_(lo).float()


def fake_quantize(x: torch.Tensor, bits: int, dims: tuple[int, ...]) -> torch.Tensor:
    """``x`` quantized and dequantized over ``dims`` in the forward pass, identity in the backward
    pass (straight-through estimator)."""
    codes, lo, hi = quantize(x, bits, dims)
    return x + (dequantize(codes, lo, hi, bits) - x).detach()


def in_steps(x: torch.Tensor, bits: int, dims: tuple[int, ...]) -> torch.Tensor:
    """``x`` in units of ``quantize``'s step over ``dims`` (``(x - lo) / (hi - lo) * (2**bits - 1)``,
    so the codes are these values rounded), differentiable in ``x`` with the range held fixed: what
    a codec sees of ``x``, for an estimate of its rate."""
    lo, hi = x.detach().amin(dims, keepdim=True), x.detach().amax(dims, keepdim=True)
    span = hi - lo
    return (x - lo) * ((2**bits - 1) / torch.where(span > 0, span, torch.ones_like(span)))
