"""NVP model configurations: dataclasses, the published JSON schema, and presets.

The published code reads ``{"nvp": {"2d_encoding_xy": …, "2d_encoding_xt": …,
"2d_encoding_yt": …, "3d_encoding": …, "network": …}}``; ``load_config`` accepts
that schema (from a path or a dict) or a preset name, and ``NVPConfig.to_json``
writes it back, so configs travel between nvpkit and the published code.

Axis convention (as in the published code): ``t`` is time, ``x`` the first
spatial axis (frame rows, height) and ``y`` the second (columns, width).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from ._checks import is_int, show
from ._files import MAX_CONFIG_BYTES, read_json

__all__ = [
    "GridConfig",
    "SparseGridConfig",
    "NetworkConfig",
    "NVPConfig",
    "PRESETS",
    "load_config",
    "size_sparse_grid",
]


@dataclass(frozen=True)
class GridConfig:
    """A multi-resolution dense 2D latent grid (tiny-cuda-nn ``DenseGrid`` semantics)."""

    n_levels: int = 16
    """Number of resolution levels; their features are concatenated."""
    n_features_per_level: int = 2
    """Feature channels stored at every grid vertex."""
    base_resolution: int = 16
    """``base`` in the level scale ``S_l = base * s**l - 1``."""
    per_level_scale: float = 1.35
    """``s`` in the level scale ``S_l = base * s**l - 1``."""

    def level_scales(self) -> list[float]:
        """Scale ``S_l`` of every level: a coordinate in [0, 1] maps to ``coord * S_l + 0.5``."""
        return [self.base_resolution * self.per_level_scale**level - 1.0 for level in range(self.n_levels)]

    def level_resolutions(self) -> list[int]:
        """Vertices per side of every level, ``R_l = ceil(S_l) + 1``."""
        return [math.ceil(scale) + 1 for scale in self.level_scales()]

    @property
    def out_features(self) -> int:
        return self.n_levels * self.n_features_per_level

    def num_parameters(self) -> int:
        return sum(r * r for r in self.level_resolutions()) * self.n_features_per_level


@dataclass(frozen=True)
class SparseGridConfig:
    """The sparse 3D latent grid ``[t_resolution, x_resolution, y_resolution, n_features]``."""

    n_features: int = 2
    """Feature channels per cell (``n_features_per_level`` in the published JSON)."""
    t_resolution: int = 600
    """Cells along time."""
    x_resolution: int = 300
    """Cells along the first spatial axis (frame height)."""
    y_resolution: int = 300
    """Cells along the second spatial axis (frame width)."""
    upsample: bool = False
    """Upsample the grid 2x bilinearly in x and y before lookup (published option)."""

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (self.t_resolution, self.x_resolution, self.y_resolution, self.n_features)

    @property
    def out_features(self) -> int:
        return 9 * self.n_features

    def num_parameters(self) -> int:
        return math.prod(self.shape)


@dataclass(frozen=True)
class NetworkConfig:
    """The modulated SIREN decoder."""

    n_neurons: int = 128
    """Width of every hidden layer (SIREN and modulator)."""
    n_hidden_layers: int = 3
    """Hidden SIREN layers; each is multiplied by one modulator layer's output."""
    w0_initial: float = 30.0
    """Frequency of the first SIREN layer, ``sin(w0 * (W t + b))``."""


@dataclass(frozen=True)
class NVPConfig:
    """The whole NVP model: three 2D grids, a sparse 3D grid and the decoder."""

    xy: GridConfig = field(default_factory=GridConfig)
    """2D grid over (x, y): the 'learnable keyframe' of spatial content."""
    xt: GridConfig = field(default_factory=GridConfig)
    """2D grid over (x, t)."""
    yt: GridConfig = field(default_factory=GridConfig)
    """2D grid over (y, t)."""
    sparse: SparseGridConfig = field(default_factory=SparseGridConfig)
    """Sparse 3D grid of positional features (nearest cell plus its 3x3 neighbourhood)."""
    network: NetworkConfig = field(default_factory=NetworkConfig)
    """Modulated SIREN decoder."""

    @property
    def latent_features(self) -> int:
        """Width of the latent vector fed to the modulator."""
        return self.xy.out_features + self.xt.out_features + self.yt.out_features + self.sparse.out_features

    def to_json(self) -> dict[str, Any]:
        """The published JSON schema (``{"nvp": {...}}``)."""

        def grid(g: GridConfig) -> dict[str, Any]:
            return {"otype": "DenseGrid", "n_levels": g.n_levels, "n_features_per_level": g.n_features_per_level,
                    "log2_hashmap_size": 32, "base_resolution": g.base_resolution,
                    "per_level_scale": g.per_level_scale}

        s = self.sparse
        return {"nvp": {
            "2d_encoding_xy": grid(self.xy),
            "2d_encoding_xt": grid(self.xt),
            "2d_encoding_yt": grid(self.yt),
            "3d_encoding": {"otype": "SparseGrid", "n_features_per_level": s.n_features,
                            "x_resolution": s.x_resolution, "y_resolution": s.y_resolution,
                            "t_resolution": s.t_resolution, "upsample": s.upsample},
            "network": {"n_neurons": self.network.n_neurons, "n_hidden_layers": self.network.n_hidden_layers,
                        "w0_initial": self.network.w0_initial},
        }}

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict of the dataclass fields (for results.json)."""
        return asdict(self)


# -- parsing and validation -----------------------------------------------------------------------

_MAX_SIDE = 2**16  # vertices or cells per side of any grid: far above any real video, far below overflow

def _field(section: dict, key: str, kind: type, where: str, minimum: float | None = None, default: Any = None,
           maximum: float | None = None):
    if key not in section:
        if default is not None:
            return default
        raise ValueError(f"config {where}: missing key {key!r} (have {sorted(section)})")
    value = section[key]
    ok = isinstance(value, kind) and not (kind is not bool and isinstance(value, bool))
    if kind is float and is_int(value):
        value, ok = (float(value), True) if abs(value) < 1e300 else (value, False)
    if not ok:
        raise ValueError(f"config {where}.{key}: expected {kind.__name__}, got {show(value)}")
    if kind is float and not math.isfinite(value):
        raise ValueError(f"config {where}.{key}: must be a finite number, got {value!r}")
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        bounds = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
        raise ValueError(f"config {where}.{key}: must be {bounds}, got {show(value)}")
    return value


def _section(root: dict, key: str) -> dict:
    if key not in root:
        raise ValueError(f"config: missing section {key!r} (have {sorted(root)})")
    if not isinstance(root[key], dict):
        raise ValueError(f"config {key}: expected an object, got {root[key]!r}")
    return root[key]


def _grid_from_json(section: dict, where: str) -> GridConfig:
    otype = section.get("otype", "DenseGrid")
    if otype != "DenseGrid":
        raise ValueError(f"config {where}.otype: only 'DenseGrid' is supported, got {otype!r}")
    scale = _field(section, "per_level_scale", float, where, maximum=4.0)
    if scale <= 1.0:
        raise ValueError(f"config {where}.per_level_scale: must be > 1, got {scale!r}")
    grid = GridConfig(
        n_levels=_field(section, "n_levels", int, where, 1, maximum=32),
        n_features_per_level=_field(section, "n_features_per_level", int, where, 1, maximum=64),
        base_resolution=_field(section, "base_resolution", int, where, 2, maximum=4096),
        per_level_scale=scale,
    )
    finest = grid.level_resolutions()[-1]
    if finest > _MAX_SIDE:
        raise ValueError(f"config {where}: the finest level would have {finest} vertices per side (limit "
                         f"{_MAX_SIDE}); lower n_levels, base_resolution or per_level_scale")
    return grid


def _from_json(data: Any) -> NVPConfig:
    if not isinstance(data, dict):
        raise ValueError(f"config: expected a JSON object, got {type(data).__name__}")
    root = _section(data, "nvp") if "nvp" in data else data
    sparse = _section(root, "3d_encoding")
    net = _section(root, "network")
    return NVPConfig(
        xy=_grid_from_json(_section(root, "2d_encoding_xy"), "2d_encoding_xy"),
        xt=_grid_from_json(_section(root, "2d_encoding_xt"), "2d_encoding_xt"),
        yt=_grid_from_json(_section(root, "2d_encoding_yt"), "2d_encoding_yt"),
        sparse=SparseGridConfig(
            n_features=_field(sparse, "n_features_per_level", int, "3d_encoding", 1, maximum=64),
            t_resolution=_field(sparse, "t_resolution", int, "3d_encoding", 1, maximum=_MAX_SIDE),
            x_resolution=_field(sparse, "x_resolution", int, "3d_encoding", 1, maximum=_MAX_SIDE),
            y_resolution=_field(sparse, "y_resolution", int, "3d_encoding", 1, maximum=_MAX_SIDE),
            upsample=_field(sparse, "upsample", bool, "3d_encoding", default=False),
        ),
        network=NetworkConfig(
            n_neurons=_field(net, "n_neurons", int, "network", 1, maximum=4096),
            n_hidden_layers=_field(net, "n_hidden_layers", int, "network", 1, maximum=64),
            w0_initial=_field(net, "w0_initial", float, "network", 1e-6, default=30.0, maximum=1e4),
        ),
    )


def _grid(levels: int, features: int) -> GridConfig:
    return GridConfig(n_levels=levels, n_features_per_level=features)


PRESETS: dict[str, NVPConfig] = {
    # The published configurations (config/config_nvp_s.json and config_nvp_l.json).
    "nvp_s": NVPConfig(_grid(16, 2), _grid(16, 2), _grid(16, 2), SparseGridConfig(2, 600, 300, 300)),
    "nvp_l": NVPConfig(_grid(16, 4), _grid(16, 4), _grid(16, 4), SparseGridConfig(4, 600, 300, 300)),
    # CPU presets for short, small clips: fewer grid levels (the finest level of 'cpu_s' has
    # 220 vertices per side, enough for frames up to ~360 px) and a narrower decoder.
    # Size the sparse grid to the clip with size_sparse_grid().
    "cpu_s": NVPConfig(_grid(10, 2), _grid(10, 2), _grid(10, 2), SparseGridConfig(2, 32, 50, 50),
                       NetworkConfig(n_neurons=64)),
    "cpu_m": NVPConfig(_grid(12, 2), _grid(12, 2), _grid(12, 2), SparseGridConfig(2, 32, 50, 50),
                       NetworkConfig(n_neurons=128)),
}


def load_config(source: str | Path | dict | NVPConfig) -> NVPConfig:
    """An ``NVPConfig`` from a preset name (``"nvp_s"``, ``"nvp_l"``, ``"cpu_s"``, ``"cpu_m"``),
    a path to a JSON file in the published schema, a dict in that schema, or a config."""
    if isinstance(source, NVPConfig):
        return source
    if isinstance(source, dict):
        return _from_json(source)
    if isinstance(source, str) and source in PRESETS:
        return PRESETS[source]
    path = Path(source)
    if not path.suffix and isinstance(source, str) and not path.exists():
        raise ValueError(f"config: unknown preset {source!r}; presets are {sorted(PRESETS)}, "
                         "or pass a path to a JSON file")
    if not path.is_file():
        raise FileNotFoundError(f"config: no such file {str(path)!r}")
    return _from_json(read_json(path, MAX_CONFIG_BYTES, "model config"))


# Published sizing: a 600-frame 1080x1920 video gets a 600x300x300 sparse grid.
_PUBLISHED_PIXELS_PER_CELL = (1080 / 300, 1920 / 300)


def size_sparse_grid(config: NVPConfig, num_frames: int, height: int, width: int) -> NVPConfig:
    """Copy of ``config`` whose sparse grid has one cell per frame and the published spatial
    density (300x300 cells for 1080x1920 frames: 3.6 rows and 6.4 columns per cell)."""
    for name, value in (("num_frames", num_frames), ("height", height), ("width", width)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"size_sparse_grid: {name} must be a positive int, got {value!r}")
    rows, cols = _PUBLISHED_PIXELS_PER_CELL
    sparse = replace(config.sparse, t_resolution=num_frames,
                     x_resolution=max(2, round(height / rows)), y_resolution=max(2, round(width / cols)))
    return replace(config, sparse=sparse)
