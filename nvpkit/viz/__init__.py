"""Visualisation: the live training plot, static figures (HTML and PNG), markdown tables."""
from .figures import COLOURS, add_band, bits_figure, figure_png, rd_figure, save_experiment_figures, save_figure
from .live import LivePlot
from .viewer import FrameViewer
from .tables import (format_differences, format_events, format_init_table, format_results, format_sweep_table,
                     format_table, format_train_table, markdown_table, save_table)

__all__ = ["COLOURS", "add_band", "bits_figure", "FrameViewer", "figure_png", "rd_figure", "save_experiment_figures", "save_figure", "LivePlot",
           "format_differences", "format_events", "format_init_table", "format_results", "format_train_table", "format_sweep_table", "format_table", "markdown_table",
           "save_table"]
