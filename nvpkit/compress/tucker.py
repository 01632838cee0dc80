"""Tucker decomposition (HOOI through tensorly's PyTorch backend, on the tensor's device) as a codec."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import tensorly as tl
import torch
from tensorly.decomposition import tucker as _tucker

from .._checks import check_choice, check_int, is_int
from ..memory import FLOAT32
from ..parts import Shape
from .base import Codec, Encoded, Float, Quantize

__all__ = ["hooi", "tucker_to_tensor", "Tucker"]

_INITS = {"svd", "random"}
_STORAGE = ("float32", "float16", "uint8")


def hooi(tensor: torch.Tensor, ranks: tuple[int, ...], *, init: str = "svd", n_iter: int = 100,
           tol: float = 1e-4, seed: int = 0) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Tucker decomposition by higher-order orthogonal iteration: ``core [r0, r1, …]`` and one
    orthonormal factor ``[n_k, r_k]`` per mode, such that ``tucker_to_tensor`` approximates ``tensor``."""
    with tl.backend_context("pytorch"):
        core, factors = _tucker(tensor.detach().float(), rank=list(ranks), init=init, n_iter_max=n_iter, tol=tol,
                                random_state=seed)
    return core, list(factors)


def tucker_to_tensor(core: torch.Tensor, factors: list[torch.Tensor]) -> torch.Tensor:
    """The full tensor ``core ×_1 U_1 ×_2 U_2 …`` of a Tucker decomposition."""
    with tl.backend_context("pytorch"):
        return tl.tucker_to_tensor((core, factors))


@dataclass
class Tucker(Codec):
    """Each channel as its Tucker decomposition with ``ranks``, one per mode ((t, x, y) for the
    sparse grid): ints, e.g. the published (480, 240, 240), or fractions of the mode sizes (the
    published ranks are 0.8 of NVP-S's 600x300x300 grid); a single value applies to every mode. Core and factors are stored as ``float32``
    (default), ``float16``, or min-max quantized to 8 bits (``uint8``); the ranks are side
    information. ``clip`` lowers each rank to what its mode can use, the mode's size and the product
    of the other modes' sizes (for the multi-resolution planes); otherwise a rank larger than its mode
    is an error."""

    ranks: tuple[int | float, ...] = (480, 240, 240)
    init: str = "svd"
    n_iter: int = 100
    storage: str = "float32"
    clip: bool = False
    name: ClassVar[str] = "tucker"
    codec_id: ClassVar[int] = 8
    dims: ClassVar[tuple[int, ...]] = (2, 3)

    def __post_init__(self) -> None:
        self.ranks = (self.ranks,) if isinstance(self.ranks, (int, float)) else tuple(self.ranks)
        ok = [(is_int(r) and r >= 1) or (isinstance(r, float) and 0 < r <= 1)
              for r in self.ranks]
        if not self.ranks or not all(ok):
            raise ValueError(f"tucker: ranks={self.ranks!r} is not allowed; use one per mode, each an int >= 1 "
                             "or a fraction of the mode size in (0, 1]")
        check_choice("tucker", "init", self.init, _INITS)
        check_choice("tucker", "storage", self.storage, _STORAGE)
        check_int("tucker", "n_iter", self.n_iter, 1, 10_000)

    @property
    def _inner(self) -> Codec:
        return Quantize(8) if self.storage == "uint8" else Float(self.storage)

    def ranks_for(self, shape: Shape) -> tuple[int, ...]:
        given = self.ranks * len(shape) if len(self.ranks) == 1 else self.ranks
        if len(shape) != len(given):
            raise ValueError(f"tucker: ranks={self.ranks} has {len(self.ranks)} modes, channel shape {shape} has "
                             f"{len(shape)}")
        ranks = tuple(max(1, round(r * n)) if isinstance(r, float) else r for r, n in zip(given, shape))
        if not self.clip:
            for mode, (r, n) in enumerate(zip(ranks, shape)):
                if r > n:
                    raise ValueError(f"tucker: ranks[{mode}]={r} is larger than mode {mode} of size {n} "
                                     f"(channel shape {shape}); use ranks <= the mode sizes or clip=True")
            return ranks
        total = math.prod(shape)
        return tuple(min(r, n, total // n) for r, n in zip(ranks, shape))  # a mode's unfolding has rank <= both

    def _part_shapes(self, shape: Shape) -> list[Shape]:
        ranks = self.ranks_for(shape)
        return [ranks, *((n, r) for n, r in zip(shape, ranks))]

    def encode(self, channels: list[torch.Tensor]) -> Encoded:
        parts, header = [], []
        for c in channels:
            ranks = self.ranks_for(tuple(c.shape))
            core, factors = hooi(c, ranks, init=self.init, n_iter=self.n_iter)
            parts += [core, *factors]
            header += list(ranks)
        inner = self._inner.encode(parts)
        return Encoded(self.name, self.params(), inner.payload, inner.side, header, self.descriptor())

    def decoder_settings(self) -> tuple[int, ...]:
        return (_STORAGE.index(self.storage),)

    def decode(self, encoded: Encoded, shapes: list[Shape], device: torch.device | str = "cpu") -> list[torch.Tensor]:
        expected = [r for s in shapes for r in self.ranks_for(s)]
        if encoded.header != expected:
            raise ValueError(f"tucker: stored ranks {encoded.header} do not match the expected {expected}")
        part_shapes = [p for s in shapes for p in self._part_shapes(s)]
        parts = self._inner.decode(Encoded(self._inner.name, {}, encoded.payload, encoded.side), part_shapes, device)
        out, k = [], 0
        for s in shapes:
            n = 1 + len(s)
            out.append(tucker_to_tensor(parts[k], parts[k + 1:k + n]))
            k += n
        return out

    def payload_range(self, shapes: list[Shape]) -> tuple[int, int]:
        return self._inner.payload_range([p for s in shapes for p in self._part_shapes(s)])

    def decode_work(self, shapes: list[Shape]) -> int:
        factors = [p for s in shapes for p in self._part_shapes(s)]
        largest = max((math.prod(s) for s in shapes), default=0)
        # the decoded core and factors, then one channel's mode products (a product and its unfolding)
        return self._inner.decode_work(factors) + FLOAT32 * sum(math.prod(p) for p in factors) + 3 * FLOAT32 * largest

    def shape_bits(self, shapes: list[Shape]) -> int:
        inner = self._inner.shape_bits([p for s in shapes for p in self._part_shapes(s)])
        return inner + 32 * sum(len(s) for s in shapes)

    def params(self) -> dict:
        return {**super().params(), "ranks": list(self.ranks)}
