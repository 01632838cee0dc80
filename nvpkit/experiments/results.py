"""``Results``: what an experiment measured, written to and read from results.json."""
from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from .._files import MAX_RESULTS_BYTES, read_json, write_csv, write_json
from ..compress.rd import anchor_label, write_rd
from .seeds import seed_label

__all__ = ["Results", "MAX_RESULTS_BYTES"]


@dataclass
class Results:
    """One experiment's results; results.json holds exactly the saved fields."""

    kind: str
    """The kind of experiment: 'train' (plain training), 'guide' (compression-guided training) or
    'init' (initialisation study)."""
    config: dict
    """The experiment config (``to_dict``)."""
    video: dict
    """Name, shape ``[T, H, W, 3]`` and content hash of the clip."""
    arms: dict
    """Per arm: training history and seconds."""
    table: list
    """One row per arm: the summary a paper's table shows."""
    events: list = field(default_factory=list)
    """Guidance events of the guided arm: step, bits, bpp, PSNR before and after, seconds."""
    final: dict = field(default_factory=dict)
    """Per arm, the final measurement: of the final compression (bits per part, bpp, PSNR, MS-SSIM,
    per-frame PSNR) or, for plain training, the evaluation of the model."""
    rd: dict = field(default_factory=dict)
    """Per arm, the RD sweep of the final compressor."""
    anchor: list = field(default_factory=list)
    """The plain-codec curve of the clip itself."""
    anchor_settings: dict = field(default_factory=dict)
    """The anchor's codec, preset and chroma format."""
    metrics: dict = field(default_factory=dict)
    """What each reported metric is (``nvpkit.metrics.METRICS``)."""
    bd: dict = field(default_factory=dict)
    """Bjøntegaard deltas of the guided arm against no guidance (with notes when not computed)."""
    checkpoints: dict = field(default_factory=dict)
    """Per arm, the checkpoint it ended in."""
    seconds: float = 0.0
    """Wall-clock seconds of the whole experiment."""
    plot_seconds: float = 0.0
    """Seconds of it spent drawing the live plot."""
    provenance: dict = field(default_factory=dict)
    """Code (nvpkit version, git commit, source hash, torch), Python and device."""
    runs: list = field(default_factory=list)
    """With several seeds: every seed's results, whole (as in its ``seed-<s>/results.json``); ``table``
    and ``events`` are then their rows tagged with ``seed``, ``arms`` named ``"<arm> · seed <s>"``,
    and what is aggregated over seeds is computed from these, never stored alone."""
    trainers: dict = field(default_factory=dict, repr=False, compare=False)
    """The arms' trainers (in memory only, not saved)."""
    decoded: dict = field(default_factory=dict, repr=False, compare=False)
    """The arms' models as they were evaluated: after the final compression, as a decoder rebuilds
    them (plain training: the trained model; in memory only)."""
    clip: Any = field(default=None, repr=False, compare=False)
    """The video the arms were trained on (in memory only)."""

    def per_seed(self) -> list["Results"]:
        """One ``Results`` per seed: those of ``runs``, or these results themselves (one seed)."""
        return [Results(**{k: v for k, v in run.items() if k in _SAVED}) for run in self.runs] or [self]

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in _MEMORY_ONLY}

    @property
    def out_dir(self) -> Path:
        return Path(self.config["out_dir"])

    def rd_curves(self) -> dict[str, list[dict]]:
        """Every RD curve of the results by name: each arm's sweep (with several seeds, each seed's,
        named ``"<arm> · seed <s>"``) and the anchor."""
        runs = self.per_seed()
        curves = {(seed_label(arm, run.config["seed"]) if len(runs) > 1 else arm): rows
                  for run in runs for arm, rows in run.rd.items()}
        if self.anchor:
            curves[anchor_label(**self.anchor_settings)] = self.anchor
        return curves

    def save(self, path: str | os.PathLike | None = None) -> Path:
        """Write results.json (atomically) to ``path``, default ``out_dir/results.json``, and beside it
        what other tools read: ``table.csv``, ``events.csv`` (guidance events, where there are some)
        and the RD curves in CompressAI's results format (``rd/<curve>.json``, ``write_rd``)."""
        path = Path(path or self.out_dir / "results.json")
        write_csv(path.parent / "table.csv", self.table)
        if self.events:
            write_csv(path.parent / "events.csv", self.events)
        curves = self.rd_curves()
        if curves:
            write_rd(curves, path.parent, f"nvpkit {self.kind} experiment on {self.video.get('name')}: bits per pixel "
                                          "of every bit a decoder reads; PSNR of the decoded uint8 RGB frames")
        return write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Results":
        """Read a results.json; ``ValueError`` naming the file when it is not one."""
        path = Path(path)
        data = read_json(path, MAX_RESULTS_BYTES, "results.json")
        if not isinstance(data, dict) or not _REQUIRED <= set(data):
            raise ValueError(f"{str(path)!r}: not an nvpkit results.json (needs {sorted(_REQUIRED)})")
        return cls(**{k: v for k, v in data.items() if k in _SAVED})


_MEMORY_ONLY = {"trainers", "decoded", "clip"}
_SAVED = {f.name for f in fields(Results) if f.name not in _MEMORY_ONLY}
_REQUIRED = {"kind", "config", "video", "arms", "table"}
