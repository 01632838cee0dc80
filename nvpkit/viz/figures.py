"""Static figures: the RD plot, the figures of an experiment, and the one writer of every figure
(interactive HTML with plotly.js embedded, plus a PNG drawn with matplotlib, both atomic)."""
from __future__ import annotations

import functools
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go

from .._files import atomic_path
from ..compress import anchor_label
from ..experiments import Results, mean_curve, summary

__all__ = ["COLOURS", "figure_png", "save_figure", "add_band", "rd_figure", "bits_figure", "save_experiment_figures"]

COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")
"""The colour of the n-th arm or curve, in every figure."""


_DASHES = {"solid": "-", "dot": ":", "dash": "--", "longdash": (0, (8, 3)), "dashdot": "-.",
           "longdashdot": (0, (8, 3, 1, 3))}
"""plotly's line dashes as matplotlib's line styles."""


def _error(bar) -> list | None:
    """A plotly error bar's ``[minus, plus]`` arrays for matplotlib, or None where it has none."""
    if bar is None or bar.visible is False or bar.array is None:
        return None
    plus = [0 if v is None else v for v in bar.array]
    minus = plus if bar.symmetric is not False or bar.arrayminus is None else [0 if v is None else v
                                                                                  for v in bar.arrayminus]
    return [minus, plus]


LEGEND_INSIDE = 4
"""A PNG's legend of more entries than this (or of a label over 40 characters) goes below the axes."""


def figure_png(fig: go.Figure, path: str | os.PathLike) -> None:
    """Draw a plotly figure with matplotlib, one panel per x axis: line, marker and (stacked) bar
    traces, bands, dashed lines and error bars (what nvpkit's figures use)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    axes_names = sorted({t.xaxis or "x" for t in fig.data}, key=lambda a: int(a[1:] or 1)) or ["x"]
    plot, axes = plt.subplots(1, len(axes_names), figsize=(6 * len(axes_names), 4), squeeze=False)
    stacked: dict[str, np.ndarray] = {}  # per axis, the top of the bars so far
    outside = []  # legends drawn below their axes
    for trace in fig.data:
        if trace.x is None or not len(trace.x):
            continue
        ax = axes[0][axes_names.index(trace.xaxis or "x")]
        if trace.type == "bar":
            bottom = stacked.get(trace.xaxis or "x", np.zeros(len(trace.y)))
            ax.bar(list(trace.x), trace.y, bottom=bottom, label=trace.name, color=trace.marker.color, width=0.6)
            stacked[trace.xaxis or "x"] = bottom + np.asarray(trace.y, dtype=float)
            continue
        label = trace.name if trace.showlegend is not False else "_nolegend_"
        style = dict(color=trace.line.color or trace.marker.color, label=label)
        if trace.fill == "toself":  # a band
            ax.fill(trace.x, trace.y, color=trace.fillcolor or style["color"], alpha=0.2, linewidth=0)
            continue
        x = [np.nan if v is None else v for v in trace.x]
        y = [np.nan if v is None else v for v in trace.y]
        dash = _DASHES.get(trace.line.dash or "solid", "-")
        if trace.mode == "markers":
            ax.plot(x, y, "o", markersize=5, **style)
        elif trace.mode == "lines+markers":
            ax.plot(x, y, marker="o", linestyle=dash, linewidth=2, markersize=4, **style)
        else:
            ax.plot(x, y, linestyle=dash, linewidth=1.2, **style)
        errors = {axis: _error(getattr(trace, f"error_{axis}")) for axis in ("x", "y")}
        if errors["x"] is not None or errors["y"] is not None:
            ax.errorbar(x, y, xerr=errors["x"], yerr=errors["y"], fmt="none", ecolor=style["color"], capsize=3,
                        elinewidth=1)
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
        labels = ax.get_legend_handles_labels()[1]
        if len(labels) > LEGEND_INSIDE or max(map(len, labels), default=0) > 40:  # below the axes, not over the data
            outside.append(ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(0, -0.16), frameon=False))
            outside[-1].set_in_layout(False)
        elif labels:
            ax.legend(fontsize=8)
        elif not (ax.lines or ax.patches):
            ax.text(0.5, 0.5, "nothing measured", ha="center", va="center", transform=ax.transAxes)
    if fig.layout.title.text:
        plot.suptitle(fig.layout.title.text)
    below = max((len(legend.get_texts()) for legend in outside), default=0)
    extra = 0.25 + 0.17 * below if below else 0.0  # inches of legend below the axes, which keep their height
    plot.set_figheight(plot.get_figheight() + extra)
    plot.tight_layout()
    plot.subplots_adjust(bottom=plot.subplotpars.bottom + extra / plot.get_figheight())
    tight = dict(bbox_inches="tight", bbox_extra_artists=plot.get_default_bbox_extra_artists() + outside)
    plot.savefig(path, dpi=110, format="png", **(tight if outside else {}))  # a wide legend widens the image
    plt.close(plot)


PLOTLY_JS = "plotly.min.js"
"""The one copy of plotly.js a folder's HTML figures share (written beside them)."""


def save_figure(fig: go.Figure, folder: str | os.PathLike, name: str) -> list[str]:
    """Write ``fig`` as ``folder/name.html`` (interactive, offline: it loads ``PLOTLY_JS`` from the
    same folder, written once for every figure there) and ``folder/name.png``, each atomically;
    returns the two file names."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / PLOTLY_JS
    if not script.exists() or script.stat().st_size != len(_plotly_js()):
        with atomic_path(script) as tmp:
            tmp.write_bytes(_plotly_js())
    with atomic_path(folder / f"{name}.html") as tmp:
        fig.write_html(tmp, include_plotlyjs=PLOTLY_JS)
    with atomic_path(folder / f"{name}.png") as tmp:
        figure_png(fig, tmp)
    return [f"{name}.html", f"{name}.png"]


@functools.cache
def _plotly_js() -> bytes:
    from plotly.offline import get_plotlyjs
    return get_plotlyjs().encode()


def add_band(fig: go.Figure, rows: Sequence[Mapping[str, Any]], metric: str, colour: str, name: str) -> None:
    """A band of ± one standard deviation around ``metric`` against bpp, when every row carries
    ``<metric>_std`` (a mean over seeds, ``nvpkit.experiments.mean_curve``); rows sorted by bpp."""
    spread = [r.get(f"{metric}_std") for r in rows]
    if not rows or any(s is None for s in spread):
        return
    x = [r["bpp"] for r in rows]
    fig.add_trace(go.Scatter(x=x + x[::-1], y=[r[metric] + s for r, s in zip(rows, spread)]
                             + [r[metric] - s for r, s in zip(rows[::-1], spread[::-1])],
                             fill="toself", mode="none", fillcolor=colour, opacity=0.2, showlegend=False,
                             name=f"{name}: ± 1 std", hoverinfo="skip"))


def rd_figure(curves: Mapping[str, Sequence[Mapping[str, Any]]], *, metric: str = "psnr",
              title: str = "rate-distortion") -> go.Figure:
    """Plotly figure of ``metric`` against bpp, one line per named list of rows; rows that carry
    ``<metric>_std`` (a mean over seeds, ``nvpkit.experiments.mean_curve``) get a band of ± one
    standard deviation."""
    fig = go.Figure()
    for i, (name, rows) in enumerate(curves.items()):
        rows = sorted(rows, key=lambda r: r["bpp"])
        colour = COLOURS[i % len(COLOURS)]
        add_band(fig, rows, metric, colour, name)
        fig.add_trace(go.Scatter(x=[r["bpp"] for r in rows], y=[r[metric] for r in rows], mode="lines+markers",
                                 name=name, line_color=colour, text=[r.get("label", "") for r in rows]))
    fig.update_layout(title=title, xaxis_title="bits per pixel", yaxis_title="PSNR (dB)" if metric == "psnr"
                      else metric, height=420)
    return fig


BIT_PARTS = ("xy", "xt", "yt", "sparse", "decoder", "side", "container")
"""The stacks of a bits figure: the parts' payloads, side information, the artifact's container."""


def bits_figure(bits: Mapping[str, Mapping[str, int]], *, title: str = "bits per part") -> go.Figure:
    """A stacked bar per label (an arm, a compressor) of its bits by part (``BIT_PARTS``; a missing
    part counts 0), in KiB: where a compressed model's size goes."""
    fig = go.Figure(layout=dict(title=title, barmode="stack", template="plotly_white", yaxis_title="KiB",
                                height=420))
    labels = list(bits)
    for i, part in enumerate(BIT_PARTS):
        fig.add_bar(x=labels, y=[bits[label].get(part, 0) / 8 / 1024 for label in labels], name=part,
                    marker_color=(COLOURS + ("#7f7f7f",))[i % (len(COLOURS) + 1)])
    return fig


def save_experiment_figures(results: Results, live: Any = None) -> dict[str, list[str]]:
    """Write an experiment's figures into its out_dir: the training curves of ``live`` (a
    ``LivePlot``) as ``curves``; for guided training, both arms' RD curves with the plain-codec
    curve as ``rd`` and the bits of each arm's final compression by part as ``bits``. Returns the
    file names by figure."""
    written = {}
    if live is not None:
        written["curves"] = live.save(results.out_dir)
    runs = results.per_seed()
    seeds = f" (mean over {len(runs)} seeds)" if results.runs else ""
    if all(run.rd for run in runs):
        rd = {arm: mean_curve([run.rd[arm] for run in runs]) if results.runs else runs[0].rd[arm] for arm in runs[0].rd}
        anchor = {anchor_label(**results.anchor_settings): results.anchor} if results.anchor else {}
        fig = rd_figure({**rd, **anchor}, title=f"final {results.config['compressor']} compression of both arms{seeds}")
        written["rd"] = save_figure(fig, results.out_dir, "rd")
    if all(run.final and all("bits" in f for f in run.final.values()) for run in runs):  # a compression
        bits = {arm: {part: summary(run.final[arm]["bits"][part] for run in runs)["mean"] for part in f["bits"]}
                for arm, f in runs[0].final.items()}
        fig = bits_figure(bits, title=f"bits of the final {results.config['compressor']} compression, by part{seeds}")
        written["bits"] = save_figure(fig, results.out_dir, "bits")
    return written
