import json

import pytest
import torch

import nvpkit
from nvpkit.model import ModulatedSiren

PUBLISHED_NVP_S = {"nvp": {
    **{f"2d_encoding_{k}": {"otype": "DenseGrid", "n_levels": 16, "n_features_per_level": 2,
                            "log2_hashmap_size": 32, "base_resolution": 16, "per_level_scale": 1.35}
       for k in ("xy", "xt", "yt")},
    "3d_encoding": {"otype": "SparseGrid", "n_features_per_level": 2, "x_resolution": 300, "y_resolution": 300,
                    "t_resolution": 600, "upsample": False},
    "network": {"n_neurons": 128, "n_hidden_layers": 3}}}


def test_nvp_s_parameter_counts_match_the_paper():
    counts = nvpkit.count_parameters(nvpkit.load_config("nvp_s"))
    assert counts["xy"] + counts["xt"] + counts["yt"] == 27_696_672
    assert counts["sparse"] == 600 * 300 * 300 * 2 == 108_000_000
    assert counts["decoder"] == 110_595
    assert counts["total"] == 135_807_267


def test_nvp_l_parameter_count_matches_the_paper():
    assert nvpkit.count_parameters(nvpkit.load_config("nvp_l"))["total"] == 271_547_715


def test_decoder_module_has_the_counted_parameters():
    config = nvpkit.load_config("nvp_s")
    decoder = ModulatedSiren(config.latent_features, 128, 3)
    assert sum(p.numel() for p in decoder.parameters()) == 110_595


def test_counts_from_shapes_equal_the_allocated_model():
    model = nvpkit.NVP(nvpkit.size_sparse_grid(nvpkit.load_config("cpu_m"), 5, 40, 60))
    counts = model.parameter_counts()
    allocated = {name: sum(p.numel() for p in grid.parameters()) for name, grid in model.grids().items()}
    allocated["decoder"] = sum(p.numel() for p in model.decoder.parameters())
    assert {k: counts[k] for k in allocated} == allocated
    assert counts["total"] == sum(p.numel() for p in model.parameters())


def test_published_json_file_loads_as_the_preset(tmp_path):
    path = tmp_path / "config_nvp_s.json"
    path.write_text(json.dumps(PUBLISHED_NVP_S))
    assert nvpkit.load_config(path) == nvpkit.load_config("nvp_s")
    assert nvpkit.load_config(str(path)) == nvpkit.load_config("nvp_s")


@pytest.mark.parametrize("name", sorted(nvpkit.PRESETS))
def test_to_json_round_trips(name):
    config = nvpkit.load_config(name)
    assert nvpkit.load_config(json.loads(json.dumps(config.to_json()))) == config


def test_size_sparse_grid_reproduces_the_published_sizing():
    sized = nvpkit.size_sparse_grid(nvpkit.load_config("nvp_s"), 600, 1080, 1920)
    assert sized == nvpkit.load_config("nvp_s")
    small = nvpkit.size_sparse_grid(nvpkit.load_config("cpu_s"), 16, 180, 320)
    assert small.sparse.shape == (16, 50, 50, 2)


def _broken(path, value):
    data = json.loads(json.dumps(PUBLISHED_NVP_S))
    section, key = path
    if value is KeyError:
        del data["nvp"][section][key]
    else:
        data["nvp"][section][key] = value
    return data


@pytest.mark.parametrize("path,value,match", [
    (("2d_encoding_xy", "n_levels"), KeyError, "n_levels"),
    (("2d_encoding_xy", "n_levels"), "16", "n_levels.*int"),
    (("2d_encoding_xt", "n_levels"), 0, r"n_levels.*in \[1, 32\]"),
    (("2d_encoding_xt", "n_levels"), 33, r"n_levels.*got 33"),
    (("2d_encoding_xy", "per_level_scale"), float("nan"), "finite"),
    (("2d_encoding_xy", "base_resolution"), 4000, "finest level would have"),
    (("2d_encoding_yt", "per_level_scale"), 1.0, "per_level_scale"),
    (("3d_encoding", "t_resolution"), -3, "t_resolution"),
    (("3d_encoding", "x_resolution"), 2.5, "x_resolution"),
    (("network", "n_neurons"), True, "n_neurons"),
    (("2d_encoding_xy", "otype"), "HashGrid", "otype"),
])
def test_bad_config_names_the_key(path, value, match):
    with pytest.raises(ValueError, match=match):
        nvpkit.load_config(_broken(path, value))


def test_bad_config_sources(tmp_path):
    with pytest.raises(ValueError, match="unknown preset 'nvp_xl'.*nvp_s"):
        nvpkit.load_config("nvp_xl")
    with pytest.raises(FileNotFoundError, match="missing.json"):
        nvpkit.load_config(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="not a readable model config: not JSON"):
        nvpkit.load_config(bad)
    with pytest.raises(ValueError, match="missing section '3d_encoding'"):
        nvpkit.load_config({"nvp": {k: v for k, v in PUBLISHED_NVP_S["nvp"].items() if k != "3d_encoding"}})


def test_size_sparse_grid_rejects_bad_sizes():
    with pytest.raises(ValueError, match="height"):
        nvpkit.size_sparse_grid(nvpkit.load_config("cpu_s"), 4, 0, 10)


def test_model_builds_from_every_cpu_preset():
    for name in ("cpu_s", "cpu_m"):
        model = nvpkit.NVP(nvpkit.size_sparse_grid(nvpkit.load_config(name), 3, 20, 30))
        out = model(torch.rand(7, 3), torch.rand(7))
        assert out.shape == (7, 3)
