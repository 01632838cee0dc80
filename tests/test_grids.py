import copy
import math

import pytest
import torch

import nvpkit
from nvpkit import DenseGrid2D, GridConfig, SparseGrid3D, SparseGridConfig


def dense_reference(grid: DenseGrid2D, coords: torch.Tensor) -> torch.Tensor:
    """tiny-cuda-nn DenseGrid lookup written out point by point, in float64."""
    config = grid.config
    out = []
    for a, b in coords.double().tolist():
        features = []
        for level, (scale, res) in enumerate(zip(config.level_scales(), config.level_resolutions())):
            plane = grid.level(level).double()  # [R (axis 1), R (axis 0), F]
            pa, pb = a * scale + 0.5, b * scale + 0.5
            ia, ib = math.floor(pa), math.floor(pb)
            fa, fb = pa - ia, pb - ib
            value = 0
            for da, wa in ((0, 1 - fa), (1, fa)):
                for db, wb in ((0, 1 - fb), (1, fb)):
                    va, vb = min(max(ia + da, 0), res - 1), min(max(ib + db, 0), res - 1)
                    value = value + wa * wb * plane[vb, va]
            features.append(value)
        out.append(torch.cat(features))
    return torch.stack(out)


@pytest.fixture(params=["sample", "gather"])
def dense(request) -> DenseGrid2D:
    grid = DenseGrid2D(GridConfig(n_levels=4, n_features_per_level=3, base_resolution=4, per_level_scale=1.6))
    grid.lookup = request.param
    with torch.no_grad():
        for level in grid.levels:
            level.normal_()
    return grid


def test_level_resolutions_follow_tcnn():
    config = GridConfig()
    assert config.level_resolutions()[:4] == [16, 22, 30, 40]
    assert config.level_resolutions()[-1] == 1443


def test_dense_grid_matches_direct_computation(dense):
    coords = torch.cat([torch.rand(50, 2), torch.tensor([[0.0, 0.0], [1.0, 1.0], [0.0, 1.0], [0.5, 0.25]])])
    out = dense(coords)
    assert out.shape == (54, 4 * 3)
    torch.testing.assert_close(out.double(), dense_reference(dense, coords), rtol=1e-5, atol=1e-5)


def test_dense_grid_gradient_matches_direct_computation(dense):
    coords = torch.rand(40, 2)
    upstream = torch.randn(40, 12)
    (dense(coords) * upstream).sum().backward()
    fast = [level.grad.clone() for level in dense.levels]
    dense.zero_grad(set_to_none=True)
    (dense_reference(dense, coords) * upstream.double()).sum().backward()
    for got, level in zip(fast, dense.levels):
        assert got.shape == level.shape
        torch.testing.assert_close(got.double(), level.grad.double(), rtol=1e-5, atol=1e-5)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("lookup", ["sample", "gather"])
def test_dense_grid_lookups_on_cuda_match_the_cpu(lookup):
    cpu = DenseGrid2D(GridConfig(n_levels=5, n_features_per_level=2, base_resolution=4, per_level_scale=1.6))
    with torch.no_grad():
        for level in cpu.levels:
            level.normal_()
    gpu = copy.deepcopy(cpu).cuda()
    gpu.lookup = lookup
    coords, upstream = torch.rand(3000, 2), torch.randn(3000, 10)
    (cpu(coords) * upstream).sum().backward()
    out = gpu(coords.cuda())
    (out * upstream.cuda()).sum().backward()
    torch.testing.assert_close(out.cpu(), cpu(coords), rtol=1e-5, atol=1e-5)
    for want, got in zip(cpu.levels, gpu.levels):
        torch.testing.assert_close(got.grad.cpu(), want.grad, rtol=1e-4, atol=1e-4)


def test_dense_grid_lookups_agree_under_fake_quantization(dense):
    coords = torch.rand(100, 2)
    dense.fake_quant_bits = 3
    other = "gather" if dense.lookup == "sample" else "sample"
    out = dense(coords)
    dense.lookup = other
    torch.testing.assert_close(out, dense(coords))
    dense.fake_quant_bits = None
    assert (dense(coords) - out).abs().max() > 1e-3  # 3 bits visibly change the lookups


def test_dense_grid_rejects_unknown_lookup(dense):
    dense.lookup = "fast"
    with pytest.raises(ValueError, match="lookup must be one of"):
        dense(torch.rand(3, 2))


def test_dense_grid_interpolates_vertices_exactly(dense):
    # coord = (i - 0.5) / S lands on vertex i of a level
    scale = dense.config.level_scales()[0]
    coords = torch.tensor([[(2 - 0.5) / scale, (3 - 0.5) / scale]])
    torch.testing.assert_close(dense(coords)[0, :3], dense.level(0)[3, 2])


def sparse_reference(grid: SparseGrid3D, coords: torch.Tensor) -> torch.Tensor:
    t_res, x_res, y_res, _ = grid.embeddings.shape
    out = []
    for t, x, y in coords.tolist():
        ti = min(int(t * (t_res - 1) + 0.5), t_res - 1)
        xi, yi = int(x * (x_res - 1) + 0.5), int(y * (y_res - 1) + 0.5)
        cells = [grid.embeddings[ti, min(max(xi + i, 0), x_res - 1), min(max(yi + j, 0), y_res - 1)]
                 for i in (-1, 0, 1) for j in (-1, 0, 1)]
        out.append(torch.cat(cells))
    return torch.stack(out)


@pytest.fixture
def sparse() -> SparseGrid3D:
    grid = SparseGrid3D(SparseGridConfig(n_features=2, t_resolution=5, x_resolution=6, y_resolution=7))
    with torch.no_grad():
        grid.embeddings.normal_()
    return grid


def test_sparse_grid_matches_direct_computation(sparse):
    coords = torch.cat([torch.rand(60, 3), torch.tensor([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [0.5, 0.0, 1.0]])])
    out = sparse(coords)
    assert out.shape == (63, 18)
    torch.testing.assert_close(out, sparse_reference(sparse, coords))


def test_sparse_grid_time_interpolation(sparse):
    xy = torch.rand(10, 2)
    at = lambda t: torch.cat([torch.full((10, 1), t), xy], 1)  # noqa: E731
    # on a time cell it equals the nearest lookup; half way it is the mean of the two cells
    torch.testing.assert_close(sparse(at(0.5), interpolate_time=True), sparse(at(0.5)))
    torch.testing.assert_close(sparse(at(1.0), interpolate_time=True), sparse(at(1.0)))
    mid = sparse(at(0.125), interpolate_time=True)
    torch.testing.assert_close(mid, (sparse(at(0.0)) + sparse(at(0.25))) / 2)


def test_sparse_grid_upsample_doubles_the_lookup_grid():
    grid = SparseGrid3D(SparseGridConfig(2, 3, 4, 5, upsample=True))
    assert grid.grid().shape == (3, 8, 10, 2)
    assert grid(torch.rand(6, 3)).shape == (6, 18)


def test_model_latent_concatenates_grids_in_published_order():
    model = nvpkit.NVP(nvpkit.size_sparse_grid(nvpkit.load_config("cpu_s"), 4, 20, 30))
    coords = torch.rand(9, 3)
    t, x, y = coords[:, :1], coords[:, 1:2], coords[:, 2:]
    expected = torch.cat([model.xy(torch.cat([x, y], 1)), model.yt(torch.cat([t, y], 1)),
                          model.xt(torch.cat([t, x], 1)), model.sparse(coords)], 1)
    torch.testing.assert_close(model.latent(coords), expected)
    assert expected.shape[1] == model.config.latent_features
