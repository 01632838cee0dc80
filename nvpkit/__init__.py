"""nvpkit: neural video representations with learnable positional features (NVP) and
compression-guided training of them, from a notebook.

    video = nvpkit.load_video("sample", num_frames=16, downscale=4)
    trainer = nvpkit.Trainer.from_config(video, "cpu_s", steps=300)
    trainer.train()
    print(nvpkit.evaluate(trainer.model, video, write="recon.mp4"))
"""
__version__ = "0.1.0"

from .compress import (ArtifactError, Compressed, Compressor, find_setting, load_compressed, make_compressor,
                       rd_figure, rd_sweep, save_compressed, video_anchor)
from .config import (PRESETS, GridConfig, NetworkConfig, NVPConfig, SparseGridConfig, count_parameters,
                     load_config, size_sparse_grid)
from .data import SAMPLES, Video, load_video, video_writer, write_video
from .grids import DenseGrid2D, SparseGrid3D
from .guide import GuideConfig, Guidance, PixelProbe, bd_metrics, format_table, run_experiment
from .initialize import (InitConfig, PullToInit, format_init_table, run_init_experiment, steps_to_reach,
                         tucker_init)
from .live import LivePlot
from .metrics import ms_ssim, psnr
from .model import NVP
from .render import Evaluation, evaluate, render
from .sweep import collect, format_sweep_table, parse_grid, save_figures, sweep, sweep_table
from .train import TrainConfig, Trainer


__all__ = [
    "PRESETS", "GridConfig", "NetworkConfig", "NVPConfig", "SparseGridConfig", "count_parameters", "load_config",
    "size_sparse_grid", "SAMPLES", "Video", "load_video", "video_writer", "write_video", "DenseGrid2D",
    "SparseGrid3D", "ms_ssim", "psnr", "NVP", "Evaluation", "evaluate", "render", "TrainConfig", "Trainer",
    "ArtifactError", "Compressed", "Compressor", "find_setting", "load_compressed", "make_compressor", "rd_figure",
    "rd_sweep", "save_compressed", "video_anchor", "GuideConfig", "Guidance", "PixelProbe", "bd_metrics",
    "format_table", "run_experiment", "LivePlot", "InitConfig", "PullToInit", "format_init_table",
    "run_init_experiment", "steps_to_reach", "tucker_init", "sweep", "parse_grid", "collect", "sweep_table",
    "format_sweep_table", "save_figures",
]
