"""TensorBoard as an optional logger of experiments (``log="tensorboard"``, ``--log tensorboard``).

``TensorBoardLog`` follows the arms as the live plot does (it is a ``Monitor``): every logged loss
and PSNR point of each arm (``<arm>/loss``, ``<arm>/psnr`` by step), every guidance event
(``<arm>/event bpp``, ``<arm>/event psnr before`` and ``after``), and at the end the final
compression of each arm (``final/<arm>/bpp``, ``final/<arm>/psnr``) and the RD curves as a text
table. It writes event files under ``out_dir/tensorboard``; ``tensorboard --logdir runs`` shows every
run. It needs the ``tensorboard`` package (``pip install "nvpkit[tensorboard]"``).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..train import Trainer
from .results import Results

__all__ = ["TensorBoardLog", "Monitors", "LOGGERS"]

LOGGERS = ("", "tensorboard")
"""What ``log`` may name: nothing, or TensorBoard."""


class TensorBoardLog:
    """Writes an experiment's curves, events and final numbers as TensorBoard event files."""

    plot_seconds = 0.0

    def __init__(self, folder: str | Path):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ValueError("log='tensorboard' needs the tensorboard package: pip install \"nvpkit[tensorboard]\"") \
                from None
        self.folder = Path(folder)
        self.writer = SummaryWriter(str(self.folder))
        self._logged: dict[str, tuple[int, int]] = {}  # per arm: history points and events written

    def update(self, arm: str, history: dict[str, list[float]], events: Sequence[dict] = ()) -> None:
        points, done = self._logged.get(arm, (0, 0))
        for i in range(points, len(history["step"])):
            for key in ("loss", "psnr"):
                self.writer.add_scalar(f"{arm}/{key}", history[key][i], history["step"][i])
        for event in events[done:]:
            self.writer.add_scalar(f"{arm}/event bpp", event["bpp"], event["step"])
            self.writer.add_scalar(f"{arm}/event psnr before", event["psnr_before"], event["step"])
            self.writer.add_scalar(f"{arm}/event psnr after", event["psnr_after"], event["step"])
        self._logged[arm] = (len(history["step"]), len(events))

    def callback(self, arm: str, events: Sequence[dict] = ()) -> Callable[[Trainer], None]:
        return lambda trainer: self.update(arm, trainer.history, events)

    def results(self, results: Results) -> None:
        """The final compression of each arm and the RD curves; then the files are flushed."""
        for arm, final in results.final.items():
            for key in ("bpp", "psnr", "yuv_psnr", "ms_ssim"):
                if isinstance(final.get(key), (int, float)):
                    self.writer.add_scalar(f"final/{arm}/{key}", final[key], 0)
        for name, rows in results.rd_curves().items():
            lines = ["| setting | bpp | PSNR (dB) |", "|---|---|---|"]
            lines += [f"| {r.get('label')} | {r['bpp']:.4f} | {r['psnr']:.2f} |" for r in rows]
            self.writer.add_text(f"rd/{name}", "\n".join(lines), 0)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class Monitors:
    """Several monitors as one (the live plot and the TensorBoard log)."""

    def __init__(self, *monitors: Any):
        self.monitors = [m for m in monitors if m is not None]

    @property
    def plot_seconds(self) -> float:
        return sum(m.plot_seconds for m in self.monitors)

    def update(self, arm: str, history: dict[str, list[float]], events: Sequence[dict] = ()) -> None:
        for m in self.monitors:
            m.update(arm, history, events)

    def callback(self, arm: str, events: Sequence[dict] = ()) -> Callable[[Trainer], None]:
        calls = [m.callback(arm, events) for m in self.monitors]

        def call(trainer: Trainer) -> None:
            for c in calls:
                c(trainer)
        return call
