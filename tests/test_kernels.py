"""Each fast-path Function computes what its plain PyTorch counterpart computes, values and gradients."""
import pytest
import torch
import torch.nn.functional as F

from nvpkit._kernels import gather_rows, linear_t, sine_modulate


def grads(fn, *inputs):
    inputs = [x.detach().clone().requires_grad_() for x in inputs]
    out = fn(*inputs)
    upstream = torch.randn(out.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64).to(out.dtype)
    (out * upstream).sum().backward()
    return out.detach(), [x.grad for x in inputs]


def assert_same(fast, plain, *inputs, rtol=1e-5, atol=1e-5):
    out_fast, grads_fast = grads(fast, *inputs)
    out_plain, grads_plain = grads(plain, *[x.double() for x in inputs])
    torch.testing.assert_close(out_fast.double(), out_plain, rtol=rtol, atol=atol)
    for a, b in zip(grads_fast, grads_plain):
        torch.testing.assert_close(a.double(), b, rtol=rtol, atol=atol)


@pytest.mark.parametrize("slope", [None, 0.01])
def test_linear_t_matches_f_linear_transposed(slope):
    x, w, b = torch.randn(40, 300), torch.randn(24, 40) / 6, torch.randn(24)  # x feature-major: [K, N]

    def plain(x, w, b):
        y = F.linear(x.t(), w, b)
        return (y if slope is None else F.leaky_relu(y, slope)).t()

    assert_same(lambda x, w, b: linear_t(x, w, b, leaky_slope=slope), plain, x, w, b, rtol=1e-4, atol=1e-4)


def test_linear_t_reads_strided_inputs_and_single_features():
    x, w, b = torch.rand(300, 1), torch.randn(8, 1), torch.randn(8)
    assert_same(lambda x, w, b: linear_t(x.t(), w, b), lambda x, w, b: F.linear(x, w, b).t(), x, w, b)
    x = torch.randn(7, 100)[:, ::2]  # column-strided
    assert_same(lambda x: linear_t(x, w.expand(8, 7).contiguous(), b), lambda x: F.linear(
        x.t(), w.double().expand(8, 7), b.double()).t(), x)


@pytest.mark.parametrize("w0", [1.0, 30.0])
def test_sine_modulate_matches_plain(w0):
    pre, mod = torch.randn(200, 16) / 10, torch.randn(200, 16)
    assert_same(lambda p, m: sine_modulate(p, m, w0), lambda p, m: torch.sin(w0 * p) * m, pre, mod, rtol=1e-4)


def test_gather_rows_matches_indexing_with_repeats():
    table, rows = torch.randn(30, 3), torch.randint(0, 30, (500, 9))  # many repeated rows
    assert_same(lambda t: gather_rows(t, rows), lambda t: t[rows], table)
