"""Sweeps: a notebook over a grid of parameters as Ray tasks, collected into one table and figures."""
from .collect import Record, collect, sweep_differences, sweep_table
from .figures import bd_by_video, psnr_by_step, rd_by_video, save_figures
from .runner import combinations, parse_compare, parse_grid, sweep

__all__ = ["Record", "collect", "sweep_differences", "sweep_table", "bd_by_video", "psnr_by_step", "rd_by_video", "save_figures",
           "combinations", "parse_compare", "parse_grid", "sweep"]
