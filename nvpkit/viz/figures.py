"""Static figures: the RD plot, the figures of an experiment, and the one writer of every figure
(interactive HTML with plotly.js embedded, plus a PNG drawn with matplotlib, both atomic)."""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go

from .._files import atomic_path
from ..experiments import Results

__all__ = ["COLOURS", "figure_png", "save_figure", "rd_figure", "save_experiment_figures"]

COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")
"""The colour of the n-th arm or curve, in every figure."""


def figure_png(fig: go.Figure, path: str | os.PathLike) -> None:
    """Draw the line and marker traces of a plotly figure with matplotlib, one panel per x axis."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    axes_names = sorted({t.xaxis or "x" for t in fig.data}, key=lambda a: int(a[1:] or 1)) or ["x"]
    plot, axes = plt.subplots(1, len(axes_names), figsize=(6 * len(axes_names), 4), squeeze=False)
    for trace in fig.data:
        if trace.x is None or not len(trace.x):
            continue
        ax = axes[0][axes_names.index(trace.xaxis or "x")]
        style = dict(color=trace.line.color or trace.marker.color, label=trace.name)
        if trace.mode == "markers":
            ax.plot(trace.x, trace.y, "o", markersize=5, **style)
        elif trace.mode == "lines+markers":
            x = [np.nan if v is None else v for v in trace.x]
            y = [np.nan if v is None else v for v in trace.y]
            ax.plot(x, y, "-o", linewidth=2, markersize=4, **style)
        else:
            ax.plot(trace.x, trace.y, "-", linewidth=1.2, **style)
    for (ax,), name in zip(zip(*axes), axes_names):
        suffix = name[1:]
        layout_x = fig.layout[f"xaxis{suffix}"]
        layout_y = fig.layout[f"yaxis{suffix}"]
        if layout_y.type == "log":
            ax.set_yscale("log")
        ax.set_xlabel(layout_x.title.text or "")
        ax.set_ylabel(layout_y.title.text or "")
        ax.grid(alpha=0.3)
        if any(isinstance(v, str) for line in ax.lines for v in line.get_xdata()):
            ax.tick_params(axis="x", labelrotation=20)  # categories: long labels
            for label in ax.get_xticklabels():
                label.set_horizontalalignment("right")
        if ax.lines:
            ax.legend(fontsize=8)
        else:
            ax.text(0.5, 0.5, "nothing measured", ha="center", va="center", transform=ax.transAxes)
    if fig.layout.title.text:
        plot.suptitle(fig.layout.title.text)
    plot.tight_layout()
    plot.savefig(path, dpi=110, format="png")
    plt.close(plot)


def save_figure(fig: go.Figure, folder: str | os.PathLike, name: str) -> list[str]:
    """Write ``fig`` as ``folder/name.html`` (interactive, offline) and ``folder/name.png``, each
    atomically; returns the two file names."""
    folder = Path(folder)
    with atomic_path(folder / f"{name}.html") as tmp:
        fig.write_html(tmp, include_plotlyjs=True)
    with atomic_path(folder / f"{name}.png") as tmp:
        figure_png(fig, tmp)
    return [f"{name}.html", f"{name}.png"]


def rd_figure(curves: Mapping[str, Sequence[Mapping[str, Any]]], *, metric: str = "psnr",
              title: str = "rate-distortion") -> go.Figure:
    """Plotly figure of ``metric`` against bpp, one line per named list of rows."""
    fig = go.Figure()
    for name, rows in curves.items():
        rows = sorted(rows, key=lambda r: r["bpp"])
        fig.add_trace(go.Scatter(x=[r["bpp"] for r in rows], y=[r[metric] for r in rows], mode="lines+markers",
                                 name=name, text=[r.get("label", "") for r in rows]))
    fig.update_layout(title=title, xaxis_title="bits per pixel", yaxis_title="PSNR (dB)" if metric == "psnr"
                      else metric, height=420)
    return fig


def save_experiment_figures(results: Results, live: Any = None) -> dict[str, list[str]]:
    """Write an experiment's figures into its out_dir: the training curves of ``live`` (a
    ``LivePlot``) as ``curves``, and, for guided training with an RD sweep, both arms' RD curves
    with the plain-x265 curve as ``rd``. Returns the file names by figure."""
    written = {}
    if live is not None:
        written["curves"] = live.save(results.out_dir)
    if results.rd:
        anchor = {"x265 on the video": results.anchor} if results.anchor else {}
        fig = rd_figure({**results.rd, **anchor}, title=f"final {results.config['compressor']} compression of both arms")
        written["rd"] = save_figure(fig, results.out_dir, "rd")
    return written
