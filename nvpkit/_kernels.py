"""Fast paths of the training step: autograd Functions that ``model.py`` and ``grids.py`` call.

Each computes exactly what its plain PyTorch counterpart computes (tests compare them) but
with fewer passes over memory or a faster library kernel:

- ``linear_t``: a linear layer on feature-major activations ``[features, N]``; on the CPU its
  float32 products go through oneDNN, which uses AVX-512 where the MKL that ``torch.mm``
  calls may not (2x on AMD EPYC), and the layout spares every transpose copy.
- ``sine_modulate``: ``sin(arg) * mod`` with a hand-written backward (4 passes, not 6).
- ``sample_levels``: bilinear lookups in a list of 2D levels with ``grid_sample``'s kernels;
  a level's features go in as the batch, which the kernels split over threads (one image runs
  on one thread), or, where the features are fewer than the threads, the levels are spread over
  a thread pool; the backward spares the kernel's reads of the levels.
- ``gather_levels``: the same lookups as one weighted gather over all levels (one kernel, the
  CUDA path), with an ``index_add_`` backward.
- ``gather_rows``: row gather whose backward is one ``index_add_`` (the CPU's embedding
  backward sorts).

Decoder activations are feature-major ``[features, N]`` and carry a trailing row of ones,
so each layer's bias rides in its matrix product (no bias pass forward, no sum backward).
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import torch
import torch.nn.functional as F
from torch.autograd import Function


def _onednn_linear():
    """oneDNN's fused linear op when this torch build has it and it runs, else None."""
    op = getattr(getattr(torch.ops, "mkldnn", None), "_linear_pointwise", None)
    if op is None:
        return None
    try:
        x, w = torch.ones(2, 3), torch.ones(4, 3)
        ok = torch.equal(op(x, w, None, "none", [], ""), F.linear(x, w))
    except (RuntimeError, NotImplementedError):
        return None
    return op if ok else None


_ONEDNN = _onednn_linear()


def _mm(a: torch.Tensor, b: torch.Tensor, slope: float | None = None) -> torch.Tensor:
    """``a @ b.T`` (then LeakyReLU with ``slope``); ``a`` contiguous, ``b`` contiguous or transposed
    (oneDNN reads both in place; other strides take its slow reference kernel, so they are copied)."""
    onednn = _ONEDNN is not None and a.device.type == "cpu" and a.dtype == torch.float32
    if onednn and not torch.compiler.is_compiling():  # inductor cannot trace the oneDNN op
        if not (b.is_contiguous() or b.t().is_contiguous()):
            b = b.contiguous()
        if slope is None:
            return _ONEDNN(a, b, None, "none", [], "")
        return _ONEDNN(a, b, None, "leaky_relu", [slope], "")
    y = a.mm(b.t())
    return y if slope is None else F.leaky_relu_(y, slope)


class _Linear(Function):
    @staticmethod
    def forward(ctx, x_t: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, slope: float | None,
                scale: float):
        w = torch.cat((weight, bias[:, None]), 1)  # [O, K + 1]: the bias multiplies x_t's ones row
        if scale != 1.0:
            w = w * scale
        y_t = _mm(w, x_t.t(), slope)  # [O, K + 1] @ [K + 1, N] -> [O, N]
        ctx.save_for_backward(x_t, w, y_t if slope is not None else None)
        ctx.slope, ctx.scale = slope, scale
        return y_t

    @staticmethod
    def backward(ctx, grad_t: torch.Tensor):
        x_t, w, y_t = ctx.saved_tensors
        if ctx.slope is not None:  # LeakyReLU's output has its input's sign
            grad_t = torch.ops.aten.leaky_relu_backward(grad_t, y_t, ctx.slope, True)
        grad_t = grad_t.contiguous()
        grad_x = _mm(w.t().contiguous(), grad_t.t()) if ctx.needs_input_grad[0] else None  # [K + 1, N]
        grad_w = _mm(grad_t, x_t)  # [O, N] @ [N, K + 1]: weight and bias gradients at once
        if ctx.scale != 1.0:
            grad_w = grad_w * ctx.scale
        return grad_x, grad_w[:, :-1], grad_w[:, -1], None, None


def linear_t(x_t: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, leaky_slope: float | None = None,
             scale: float = 1.0) -> torch.Tensor:
    """``scale * F.linear`` (then LeakyReLU with ``leaky_slope``) in feature-major layout with the
    bias folded into the product: ``x_t [K + 1, N]`` whose last row is ones -> ``[O, N]``. The
    activation and the scale ride in the product too (a post-op; the scale on the small weight),
    so forward is one product and backward two, with one elementwise pass for the activation
    (products at 350-480 GFLOP/s on 2 AMD EPYC cores, where ``torch.mm`` gets 120-200)."""
    return _Linear.apply(x_t, weight, bias, leaky_slope, scale)


def with_ones(x_t: torch.Tensor) -> torch.Tensor:
    """``[x_t; 1]``: a feature-major input ``[K, N]`` with the ones row ``linear_t`` expects."""
    return torch.cat((x_t, x_t.new_ones(1, x_t.shape[1])))


class _SineModulate(Function):
    @staticmethod
    def forward(ctx, arg: torch.Tensor, mod: torch.Tensor):
        s = torch.sin(arg)
        ctx.save_for_backward(arg, s, mod)
        out = torch.empty(arg.shape[0] + 1, arg.shape[1], dtype=arg.dtype, device=arg.device)
        torch.mul(s, mod, out=out[:-1])
        out[-1] = 1
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        arg, s, mod = ctx.saved_tensors
        grad = grad[:-1]
        return torch.cos(arg).mul_(grad).mul_(mod), grad * s


def sine_modulate(arg: torch.Tensor, mod: torch.Tensor) -> torch.Tensor:
    """``[sin(arg) * mod; 1]`` for feature-major ``arg, mod [H, N]``: the ones row is the next
    ``linear_t``'s bias input."""
    return _SineModulate.apply(arg, mod)


_pools: dict[tuple[int, int], ThreadPoolExecutor] = {}


def _map(fn, items: list, device: torch.device, width: int) -> list:
    """``[fn(i) for i in items]`` without autograd. Each call spreads a batch of ``width`` images over
    torch's threads; when that leaves threads idle (more threads than ``width``, on the CPU), the
    calls are spread over a thread pool instead, each on one thread (torch ops drop the GIL). One
    pool per process and size, so a forked worker makes its own."""
    threads = torch.get_num_threads()
    if device.type != "cpu" or threads <= width or len(items) < 2:
        return [fn(i) for i in items]
    key = (os.getpid(), threads)
    if key not in _pools:
        _pools[key] = ThreadPoolExecutor(threads, thread_name_prefix="nvpkit")

    def run(item):
        with torch.no_grad():  # grad mode is per thread; the caller (an autograd Function) has it off
            return fn(item)

    # One torch thread while the pool runs, so the workers' ops run inline: a worker that opened an
    # OpenMP region would get its own team, and with more OpenMP threads than cores libgomp stops
    # spinning between regions, which slows every later parallel op of the process (2x at cpu_s).
    torch.set_num_threads(1)
    try:
        return list(_pools[key].map(run, items))
    finally:
        torch.set_num_threads(threads)


class _SampleLevels(Function):
    @staticmethod
    def forward(ctx, grid: torch.Tensor, *levels: torch.Tensor):
        ctx.save_for_backward(grid)
        ctx.shapes = [level.shape for level in levels]  # the backward needs no level values
        ctx.width = min(shape[0] for shape in ctx.shapes)  # images per kernel call: the fewest features

        def sample(i: int) -> torch.Tensor:  # [F, 1, N, 1]: one image per feature
            return torch.ops.aten.grid_sampler_2d(levels[i][:, None], _per_feature(grid[i], levels[i].shape[0]),
                                                  0, 1, True)

        out = _map(sample, list(range(len(levels))), grid.device, ctx.width)
        return torch.cat(out)[:, 0, :, 0].t()  # [sum F, 1, N, 1] -> [N, sum F]

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (grid,) = ctx.saved_tensors
        shapes = ctx.shapes
        grad = grad.t().contiguous()  # [sum F, N]
        starts = [0]
        for shape in shapes:
            starts.append(starts[-1] + shape[0])

        def level_grad(i: int) -> torch.Tensor:
            features, rows, cols = shapes[i]
            upstream = grad[starts[i]:starts[i + 1], None, :, None]  # [F, N] -> [F, 1, N, 1]
            # The level's gradient does not depend on its values, but the kernel also computes the
            # (unused) coordinate gradient, which reads them at every corner: a stride-0 stand-in
            # keeps those reads in one cache line (a third of the backward's time at NVP-S).
            stand_in = grad.new_zeros(1, 1, 1, 1).expand(features, 1, rows, cols)
            return torch.ops.aten.grid_sampler_2d_backward(
                upstream, stand_in, _per_feature(grid[i], features), 0, 1, True, [True, False])[0][:, 0]  # [F, R, R]

        order = sorted(range(len(shapes)), key=lambda i: -shapes[i].numel())  # largest first: balanced threads
        grads = dict(zip(order, _map(level_grad, order, grad.device, ctx.width)))
        return (None, *(grads[i] for i in range(len(shapes))))


def _per_feature(grid: torch.Tensor, features: int) -> torch.Tensor:
    """A level's lookup grid ``[1, N, 1, 2]`` repeated (stride 0) for each of its ``features``: the
    kernels split a batch over threads (one image runs on one thread), and features as the batch,
    each an image of one channel, spread one level's work over them with the same values, as each
    output only sums its own channel. With at least as many features as threads (NVP-S: 2 per
    level, on 2 cores) this is 1.2-1.3x faster than a thread pool over the levels; with fewer,
    ``_map`` uses the pool (1.2x faster with 1 feature on 2 cores)."""
    return grid.expand(features, -1, -1, -1)


def sample_levels(levels: list[torch.Tensor], grid: torch.Tensor) -> torch.Tensor:
    """Bilinear, border-clamped, corner-aligned lookups: level ``i`` (``[F_i, R_i, R_i]``) at
    ``grid[i]`` (``[1, N, 1, 2]`` in [-1, 1], ``grid_sample``'s convention); ``[N, sum F_i]``."""
    return _SampleLevels.apply(grid, *levels)


def _scatter_rows(rows: int, index: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """``[rows, C]`` zeros with ``values [M, C]`` summed into rows ``index`` (any shape, M entries):
    the backward of a gather, one ``index_add_`` (the CPU's embedding backward sorts)."""
    return values.new_zeros(rows, values.shape[1]).index_add_(0, index.reshape(-1), values)


class _GatherLevels(Function):
    @staticmethod
    def forward(ctx, index: torch.Tensor, weight: torch.Tensor, *levels: torch.Tensor):
        table = torch.cat([lv.permute(1, 2, 0).reshape(-1, lv.shape[0]) for lv in levels])  # [sum R*R, F]
        ctx.save_for_backward(index, weight)
        ctx.shapes = [lv.shape for lv in levels]
        return F.embedding_bag(index, table, per_sample_weights=weight, mode="sum")  # [M, F]

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        index, weight = ctx.saved_tensors
        features = grad.shape[1]
        contrib = (grad[:, None, :] * weight[..., None]).reshape(-1, features)  # [M*K, F]
        rows = sum(r * c for _, r, c in ctx.shapes)
        table = _scatter_rows(rows, index, contrib)
        grads, start = [], 0
        for f, r, c in ctx.shapes:
            grads.append(table[start:start + r * c].view(r, c, f).permute(2, 0, 1).contiguous())  # -> [F, R, R]
            start += r * c
        return (None, None, *grads)


def gather_levels(levels: list[torch.Tensor], index: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``out[m] = sum_k weight[m, k] * table[index[m, k]]`` over the table of all levels' vertices
    (level ``i``'s vertex ``(r, c)`` is row ``offset_i + r * R_i + c``); ``[M, F]``."""
    return _GatherLevels.apply(index, weight, *levels)


class _GatherRows(Function):
    @staticmethod
    def forward(ctx, table: torch.Tensor, rows: torch.Tensor):
        ctx.save_for_backward(rows)
        ctx.shape = table.shape
        # index_select: 3x faster than table[rows] on the CPU
        return table.index_select(0, rows.reshape(-1)).view(*rows.shape, -1)  # [*rows.shape, C]

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (rows,) = ctx.saved_tensors
        channels = ctx.shape[-1]
        return _scatter_rows(ctx.shape[0], rows, grad.reshape(-1, channels)), None


def gather_rows(table: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """``table[rows]`` for a 2D ``table``."""
    return _GatherRows.apply(table, rows)
