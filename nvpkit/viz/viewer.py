"""A frame viewer: the original clip beside each model's reconstruction and its error, frame by
frame, with the per-frame PSNR of every model across the clip.

In JupyterLab ``FrameViewer.widget()`` is a slider over the frames above a plotly figure whose
image panels share their axes, so a drag-to-zoom on one crops all of them alike (double-click
resets). ``save`` writes static PNGs of chosen frames (papermill, reports). Frames are rendered
when shown, one at a time, as uint8 (what a decoder outputs): memory holds one frame per model.
"""
from __future__ import annotations

import base64
import io
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go
import torch
from PIL import Image
from plotly.subplots import make_subplots

from .._files import atomic_path
from ..data import Video
from ..experiments import Results
from ..metrics import FrameScores, to_uint8
from ..model import NVP
from ..rendering import evaluate, render
from .figures import COLOURS

__all__ = ["FrameViewer", "ERROR_RANGE"]

ERROR_RANGE = 32
"""Absolute error (in uint8 levels, mean over RGB) drawn at full brightness in the error panels."""


def _error_image(recon: np.ndarray, original: np.ndarray) -> np.ndarray:
    """|recon - original| averaged over RGB, as an 'inferno' RGB image scaled to ``ERROR_RANGE``."""
    import matplotlib

    error = np.abs(recon.astype(np.int16) - original.astype(np.int16)).mean(-1) / ERROR_RANGE
    return (matplotlib.colormaps["inferno"](np.clip(error, 0, 1))[..., :3] * 255).astype(np.uint8)


def _data_uri(image: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


class FrameViewer:
    """The original frames, each model's reconstruction (decoded, uint8) and its error, one frame at
    a time (see the module docstring). ``psnr`` gives each model's per-frame PSNR (default: measured
    here by ``evaluate``)."""

    def __init__(self, video: Video, models: Mapping[str, NVP], *, psnr: Mapping[str, Sequence[float]] | None = None):
        if not models:
            raise ValueError("FrameViewer: models is empty; give at least one model by name")
        self.video, self.models = video, dict(models)
        self.psnr = {name: list(psnr[name]) for name in self.models} if psnr is not None else {
            name: evaluate(model, video, ms_ssim=False, progress=False).psnr_per_frame
            for name, model in self.models.items()}
        self.index = 0
        self.fig: go.Figure | None = None

    @classmethod
    def for_experiment(cls, results: Results) -> "FrameViewer":
        """The arms of an experiment after their final compression, from ``run_experiment``'s results
        (with several seeds: the first seed's)."""
        if not results.decoded or results.clip is None:
            raise ValueError("FrameViewer.for_experiment: these results hold no decoded models (only "
                             "run_experiment's own return value does, not a results.json read back)")
        final = results.per_seed()[0].final  # with several seeds: the first seed's models
        return cls(results.clip, results.decoded, psnr={arm: final[arm]["psnr_per_frame"] for arm in results.decoded})

    def frame(self, index: int) -> dict[str, np.ndarray]:
        """The original and every model's reconstruction of frame ``index``, uint8 ``[H, W, 3]``."""
        t, h, w = self.video.num_frames, self.video.height, self.video.width
        out = {"original": self.video.frames[index]}
        for name, model in self.models.items():
            (frame,) = render(model, t, h, w, indices=[index])
            out[name] = to_uint8(frame).cpu().numpy()
        return out

    def frame_psnr(self, frames: dict[str, np.ndarray]) -> dict[str, float]:
        """PSNR of each reconstruction in ``frames`` (scored like every evaluation)."""
        target = torch.from_numpy(frames["original"])
        out = {}
        for name in self.models:
            scores = FrameScores(ms_ssim=False)
            scores.add(torch.from_numpy(frames[name]), target)
            out[name] = scores.psnr[0]
        return out

    def _title(self, index: int, frames: dict[str, np.ndarray]) -> str:
        scores = ", ".join(f"{name} {value:.2f} dB" for name, value in self.frame_psnr(frames).items())
        return f"frame {index + 1} of {self.video.num_frames}: {scores}"

    def figure(self, index: int = 0, widget: bool = False) -> go.Figure:
        """The viewer's figure at frame ``index``: images (top), per-frame PSNR and errors (bottom)."""
        names = list(self.models)
        cols = 1 + len(names)
        base = make_subplots(rows=2, cols=cols, horizontal_spacing=0.02, vertical_spacing=0.08,
                             subplot_titles=["original", *names, "PSNR per frame", *(f"error: {n}" for n in names)])
        fig = go.FigureWidget(base) if widget else go.Figure(base)
        frames = self.frame(index)
        for col, name in enumerate(["original", *names], start=1):
            fig.add_trace(go.Image(source=_data_uri(frames[name]), name=name), row=1, col=col)
        for col, name in enumerate(names, start=2):
            fig.add_trace(go.Image(source=_data_uri(_error_image(frames[name], frames["original"])),
                                   name=f"error: {name}"), row=2, col=col)
        for i, name in enumerate(names):
            fig.add_trace(go.Scatter(x=list(range(1, len(self.psnr[name]) + 1)), y=self.psnr[name], mode="lines",
                                     name=name, line_color=COLOURS[i % len(COLOURS)]), row=2, col=1)
        fig.add_vline(x=index + 1, line_dash="dot", line_color="#7f7f7f", row=2, col=1)
        image_axes = [k for k in range(1, 2 * cols + 1) if k != cols + 1]  # every panel but the PSNR plot
        for k in image_axes:  # one zoom for every image: a crop of one is a crop of all
            fig.layout[f"xaxis{k if k > 1 else ''}"].update(matches="x", showticklabels=False)
            fig.layout[f"yaxis{k if k > 1 else ''}"].update(matches="y", showticklabels=False)
        fig.layout[f"xaxis{cols + 1}"].update(title_text="frame")
        fig.layout[f"yaxis{cols + 1}"].update(title_text="PSNR (dB)")
        aspect = self.video.height / self.video.width
        fig.update_layout(title=self._title(index, frames), showlegend=False, margin=dict(t=80, b=40, l=40, r=20),
                          height=int(2 * 300 * cols * aspect / max(cols, 2) + 200), template="plotly_white")
        self.fig, self.index = fig, index
        return fig

    def show(self, index: int) -> None:
        """Move the viewer's figure to frame ``index`` (the slider calls this)."""
        if self.fig is None:
            self.figure(index)
        frames = self.frame(index)
        names = list(self.models)
        with self.fig.batch_update():
            for trace, name in zip(self.fig.data[:1 + len(names)], ["original", *names]):
                trace.source = _data_uri(frames[name])
            for trace, name in zip(self.fig.data[1 + len(names):1 + 2 * len(names)], names):
                trace.source = _data_uri(_error_image(frames[name], frames["original"]))
            self.fig.layout.shapes[0].update(x0=index + 1, x1=index + 1)
            self.fig.layout.title.text = self._title(index, frames)
        self.index = index

    def widget(self, index: int = 0) -> Any:
        """The viewer for JupyterLab: a frame slider above the live figure."""
        import ipywidgets

        fig = self.figure(index, widget=True)
        slider = ipywidgets.IntSlider(value=index + 1, min=1, max=self.video.num_frames, description="frame",
                                      continuous_update=False, layout=ipywidgets.Layout(width="60%"))
        slider.observe(lambda change: self.show(change["new"] - 1), names="value")
        return ipywidgets.VBox([slider, fig])

    def save(self, folder: str | os.PathLike, indices: Sequence[int] | None = None) -> list[str]:
        """Static PNGs (``frame_00001.png`` ...) of the frames at ``indices`` (default: the first, the
        one where the first model is worst, and the last), each written atomically; returns the names."""
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        first = self.psnr[next(iter(self.models))]
        indices = sorted(set(indices if indices is not None else
                             [0, int(np.argmin(first)) if first else 0, self.video.num_frames - 1]))
        names, written = list(self.models), []
        for index in indices:
            frames = self.frame(index)
            cols = 1 + len(names)
            aspect = self.video.height / self.video.width
            plot, axes = plt.subplots(2, cols, figsize=(4 * cols, 8 * aspect + 1.5), squeeze=False)
            for ax, name in zip(axes[0], ["original", *names]):
                ax.imshow(frames[name])
                ax.set_title(name, fontsize=9)
            for ax, name in zip(axes[1][1:], names):
                ax.imshow(_error_image(frames[name], frames["original"]))
                ax.set_title(f"error: {name} (full scale {ERROR_RANGE} levels)", fontsize=9)
            for ax in [*axes[0], *axes[1][1:]]:
                ax.set_axis_off()
            chart = axes[1][0]
            for i, name in enumerate(names):
                chart.plot(range(1, len(self.psnr[name]) + 1), self.psnr[name], color=COLOURS[i % len(COLOURS)],
                           label=name, linewidth=1)
            chart.axvline(index + 1, color="#7f7f7f", linestyle=":")
            chart.set_xlabel("frame")
            chart.set_ylabel("PSNR (dB)")
            chart.legend(fontsize=7)
            plot.suptitle(self._title(index, frames), fontsize=10)
            plot.tight_layout()
            name = f"frame_{index + 1:05d}.png"
            with atomic_path(Path(folder) / name) as tmp:
                plot.savefig(tmp, dpi=110, format="png")
            plt.close(plot)
            written.append(name)
        return written
