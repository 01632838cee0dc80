"""Live training curves in a notebook: loss and PSNR against step for several arms.

In a Jupyter kernel ``LivePlot`` is a plotly ``FigureWidget`` that the training loop
updates between steps, throttled to one redraw per ``min_interval`` seconds and only when
a new log point exists, so plotting costs a negligible share of step time (the plot
keeps count: ``plot_seconds``). Without ipywidgets it is a plain figure. ``save`` writes
the static versions: an HTML file (plotly.js embedded, works offline) and a PNG drawn
with matplotlib.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .._progress import in_kernel
from ..experiments import seed_label
from .figures import COLOURS, save_figure

__all__ = ["LivePlot"]


def _widgets() -> bool:
    """Whether a live widget can be shown: a Jupyter kernel with ipywidgets."""
    if not in_kernel():
        return False
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        return False
    return True


class LivePlot:
    """Training loss (log scale) and PSNR against step, one colour per arm (its seeds alike); each
    guidance event is a vertical segment on the PSNR panel from the PSNR just before to just after
    the reload."""

    def __init__(self, arms: Sequence[str], *, seeds: Sequence[int] = (), title: str = "", min_interval: float = 1.0,
                 widget: bool | None = None):
        """``seeds``: the experiment's seeds, when several: each arm then has a run per seed, named by
        ``seed_label``, all in the arm's colour (the legend shows the arm once)."""
        runs = [(arm, seed_label(arm, s) if seeds else arm, i == 0)
                for arm in arms for i, s in enumerate(seeds or [None])]
        self.arms = [label for _, label, _ in runs]
        self.min_interval = min_interval
        self.plot_seconds = 0.0
        self.redraws = 0
        self._last = -math.inf  # the first log point is drawn at once
        self._logged: dict[str, int] = {arm: 0 for arm in self.arms}
        base = make_subplots(rows=1, cols=2, subplot_titles=("training loss", "PSNR (dB)"))
        use_widget = _widgets() if widget is None else widget
        self.fig = go.FigureWidget(base) if use_widget else go.Figure(base)
        colours = dict(zip(dict.fromkeys(arms), COLOURS * 4))
        for arm, label, shown in runs:
            colour = colours[arm]
            self.fig.add_trace(go.Scatter(x=[], y=[], name=arm, mode="lines", line_color=colour, legendgroup=arm,
                                          showlegend=shown, hovertext=label), row=1, col=1)
            self.fig.add_trace(go.Scatter(x=[], y=[], name=arm, mode="lines", line_color=colour, legendgroup=arm,
                                          showlegend=False, hovertext=label), row=1, col=2)
            self.fig.add_trace(go.Scatter(x=[], y=[], name=f"{arm}: compress + reload", mode="lines+markers",
                                          legendgroup=arm, showlegend=shown, line=dict(color=colour, width=3),
                                          marker=dict(color=colour, size=7), text=[]), row=1, col=2)
        self.fig.update_yaxes(type="log", row=1, col=1)
        self.fig.update_xaxes(title_text="step")
        self.fig.update_layout(title=title, height=380, margin=dict(t=60, b=40))

    def _traces(self, arm: str) -> tuple[Any, Any, Any]:
        i = 3 * self.arms.index(arm)
        return self.fig.data[i], self.fig.data[i + 1], self.fig.data[i + 2]

    def update(self, arm: str, history: dict[str, list[float]], events: Sequence[dict] = ()) -> None:
        """Redraw one arm from a trainer history and its guidance events."""
        started = time.perf_counter()
        loss, psnr, marks = self._traces(arm)
        with self.fig.batch_update():
            loss.x, loss.y = list(history["step"]), list(history["loss"])
            psnr.x, psnr.y = list(history["step"]), list(history["psnr"])
            # one vertical segment per event, from the PSNR just before to just after the reload
            marks.x = [v for e in events for v in (e["step"], e["step"], None)]
            marks.y = [v for e in events for v in (e["psnr_before"], e["psnr_after"], None)]
            marks.text = [t for e in events for t in (f"before: {e['psnr_before']:.2f} dB",
                                                      f"after: {e['psnr_after']:.2f} dB, {e['bpp']:.4f} bpp", "")]
        self._logged[arm] = len(history["step"])
        self._last = time.perf_counter()
        self.plot_seconds += self._last - started
        self.redraws += 1

    def callback(self, arm: str, events: Sequence[dict] = ()) -> Callable[[Any], None]:
        """A ``Trainer.train`` callback that redraws ``arm`` when a new log point exists and at most
        once per ``min_interval`` seconds; ``events`` is the live list of guidance events."""
        def redraw(trainer: Any) -> None:
            fresh = len(trainer.history["step"]) > self._logged[arm]
            if fresh and (time.perf_counter() - self._last >= self.min_interval
                          or trainer.step_count == trainer.config.steps):
                self.update(arm, trainer.history, events)
        return redraw

    def figure(self) -> go.Figure:
        """A static copy (what papermill keeps in the output notebook)."""
        return go.Figure(self.fig)

    def save(self, folder: str | Path, name: str = "curves") -> list[str]:
        """Write the figure into ``folder`` as standalone HTML (plotly.js embedded) and as a PNG drawn
        with matplotlib (no browser needed), both atomically; returns the file names."""
        return save_figure(self.figure(), folder, name)
