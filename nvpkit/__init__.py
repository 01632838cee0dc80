"""nvpkit: neural video representations with learnable positional features (NVP) and
compression-guided training of them, from a notebook.

    video = nvpkit.load_video("sample", num_frames=16, downscale=4)
    trainer = nvpkit.Trainer.from_config(video, "cpu_s", steps=300)
    trainer.train()
    print(nvpkit.evaluate(trainer.model, video, write="recon.mp4"))

Layers, each importing only those before it: the core (this package's modules: config, data,
grids, model, train, rate, rendering, metrics, parts, quantization), ``compress``, ``experiments``,
``viz``, ``sweeps``. ``import nvpkit`` loads torch and the core; the names of the other layers
below load their layer on first use, so a training script does not pay for the notebook, plotting
and Ray stacks.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._files import check_outputs, runs_root
from ._version import __version__
from .config import PRESETS, GridConfig, NetworkConfig, NVPConfig, SparseGridConfig, load_config, size_sparse_grid
from .data import SAMPLES, Video, load_video, video_writer, write_video
from .grids import DenseGrid2D, SparseGrid3D
from .metrics import ms_ssim, psnr
from .model import NVP
from .parts import count_parameters
from .rate import RateTerm
from .rendering import Evaluation, evaluate, render
from .train import TrainConfig, Trainer

_LAZY = {
    "compress": ("ArtifactError", "Compressed", "Compressor", "find_setting", "load_compressed", "make_compressor",
                 "rd_sweep", "save_compressed", "video_anchor", "container_bits"),
    "experiments": ("ExperimentConfig", "GuideConfig", "InitConfig", "KINDS", "Guidance", "PixelProbe", "Results",
                    "bd_metrics", "run_experiment", "PullToInit", "steps_to_reach", "tucker_init", "plan"),
    "viz": ("LivePlot", "FrameViewer", "rd_figure", "bits_figure", "save_experiment_figures", "format_table",
            "format_init_table", "format_results", "format_sweep_table", "format_differences"),
    "sweeps": ("sweep", "parse_grid", "parse_compare", "collect", "sweep_table", "sweep_differences", "save_figures"),
}
_HOME = {name: layer for layer, names in _LAZY.items() for name in names}

if TYPE_CHECKING:  # what editors and type checkers see of the names loaded on first use (tested against _LAZY)
    from . import compress, experiments, sweeps, viz
    from .compress import (ArtifactError, Compressed, Compressor, container_bits, find_setting, load_compressed,
                           make_compressor, rd_sweep, save_compressed, video_anchor)
    from .experiments import (KINDS, ExperimentConfig, Guidance, GuideConfig, InitConfig, PixelProbe, PullToInit,
                              Results, bd_metrics, plan, run_experiment, steps_to_reach, tucker_init)
    from .sweeps import collect, parse_compare, parse_grid, save_figures, sweep, sweep_differences, sweep_table
    from .viz import (FrameViewer, LivePlot, bits_figure, format_differences, format_init_table, format_results,
                      format_sweep_table, format_table, rd_figure, save_experiment_figures)

__all__ = [
    "__version__", "check_outputs", "runs_root", "PRESETS", "GridConfig", "NetworkConfig", "NVPConfig", "SparseGridConfig", "count_parameters",
    "load_config", "size_sparse_grid", "SAMPLES", "Video", "load_video", "video_writer", "write_video",
    "DenseGrid2D", "SparseGrid3D", "ms_ssim", "psnr", "NVP", "Evaluation", "evaluate", "render", "RateTerm",
    "TrainConfig", "Trainer", *_LAZY, *_HOME,
]


def __getattr__(name: str) -> Any:
    """The layers (``nvpkit.compress``, ``.experiments``, ``.viz``, ``.sweeps``) and their names,
    imported on first use."""
    if name in _LAZY:
        return importlib.import_module(f".{name}", __name__)
    if name in _HOME:
        value = getattr(importlib.import_module(f".{_HOME[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'nvpkit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
