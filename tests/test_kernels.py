"""Each fast-path Function computes what its plain PyTorch counterpart computes, values and gradients."""
import pytest
import torch
import torch.nn.functional as F

from nvpkit._kernels import _map, gather_rows, linear_t, sample_levels, sine_modulate, with_ones


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


@pytest.mark.parametrize("slope, scale", [(None, 1.0), (0.01, 1.0), (None, 30.0)])
def test_linear_t_matches_f_linear_transposed(slope, scale):
    x, w, b = torch.randn(40, 300), torch.randn(24, 40) / 6, torch.randn(24)  # x feature-major: [K, N]

    def plain(x, w, b):
        y = scale * F.linear(x.t(), w, b)
        return (y if slope is None else F.leaky_relu(y, slope)).t()

    fast = lambda x, w, b: linear_t(with_ones(x), w, b, leaky_slope=slope, scale=scale)  # noqa: E731
    assert_same(fast, plain, x, w, b, rtol=1e-4, atol=1e-4 * scale)


def test_linear_t_reads_strided_inputs_and_single_features():
    x, w, b = torch.rand(300, 1), torch.randn(8, 1), torch.randn(8)
    assert_same(lambda x, w, b: linear_t(with_ones(x.t()), w, b), lambda x, w, b: F.linear(x, w, b).t(), x, w, b)
    x, w = torch.randn(7, 100)[:, ::2], torch.randn(8, 7)  # column-strided
    ones = torch.ones(1, 50)
    assert_same(lambda x: linear_t(torch.cat((x, ones))[:, :], w, b),
                lambda x: F.linear(x.t(), w.double(), b.double()).t(), x)


def test_sine_modulate_matches_plain_and_appends_ones():
    arg, mod = torch.randn(16, 200) * 3, torch.randn(16, 200)
    out = sine_modulate(arg, mod)
    assert out.shape == (17, 200) and torch.equal(out[-1], torch.ones(200))
    assert_same(lambda a, m: sine_modulate(a, m)[:-1], lambda a, m: torch.sin(a) * m, arg, mod, rtol=1e-4)


def test_gather_rows_matches_indexing_with_repeats():
    table, rows = torch.randn(30, 3), torch.randint(0, 30, (500, 9))  # many repeated rows
    assert_same(lambda t: gather_rows(t, rows), lambda t: t[rows], table)


@pytest.fixture
def two_threads():
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("features", [1, 2, 3])  # on 2 threads: levels over a thread pool, features as the batch
def test_sample_levels_matches_grid_sample_per_level(features, two_threads):
    levels = [torch.randn(features, r, r) for r in (5, 9, 33)]
    grid = torch.rand(3, 1, 400, 1, 2) * 2.2 - 1.1  # a little outside [-1, 1]: border clamping

    def plain(*levels):
        return torch.cat([F.grid_sample(lv[None], g, padding_mode="border", align_corners=True)[0, :, :, 0].t()
                          for lv, g in zip(levels, grid.double())], 1)

    assert_same(lambda *lv: sample_levels(list(lv), grid), plain, *levels)


def test_thread_pool_workers_run_ops_single_threaded(two_threads):
    """Workers that opened OpenMP teams of their own would oversubscribe the cores and slow every
    later parallel op of the process: the pool runs them with one torch thread, then restores it."""
    assert _map(lambda i: torch.get_num_threads(), [0, 1, 2], torch.device("cpu"), width=1) == [1, 1, 1]
    assert torch.get_num_threads() == 2
    assert _map(lambda i: torch.get_num_threads(), [0, 1, 2], torch.device("cpu"), width=2) == [2, 2, 2]  # inline

