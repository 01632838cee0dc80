"""Sweeps: a notebook over a grid of parameters as Ray tasks, collected into one table and figures."""
from .collect import Record, collect, sweep_differences, sweep_table
from .figures import bd_by_video, psnr_by_step, rd_along, rd_by_video, save_figures
from .runner import SWEEP_PARAMETERS, combinations, forwarded, notebook_grid, parse_compare, parse_grid, sweep

__all__ = ["SWEEP_PARAMETERS", "forwarded", "notebook_grid", "Record", "collect", "sweep_differences", "sweep_table", "bd_by_video", "psnr_by_step", "rd_along", "rd_by_video", "save_figures",
           "combinations", "parse_compare", "parse_grid", "sweep"]
