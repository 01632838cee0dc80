"""The ``init`` kind: random against Tucker initialisation, with and without the pull-to-init term.

Every arm trains with the same seed, steps and batch (checkpointed, resumed when the run is
repeated), is evaluated on every frame and compressed with Tucker at the ranks of the
initialisation; the table gives steps to a PSNR level, PSNR, and the Tucker-compressed bpp and PSNR.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from .._checks import check_choice
from ..compress import Compressor, Tucker, make_compressor
from ..config import NVPConfig
from ..data import Video
from ..metrics import METRICS
from ..parts import GRIDS, check_parts, flat_values
from ..provenance import provenance
from ..rendering import evaluate
from ..train import Checkpoint, Trainer
from .arms import Monitor, train_arm, video_record
from .cache import BASELINE_KEYS, arm_key
from .config import ExperimentConfig, Stage, Timing
from .initialize import MAPPINGS, PullToInit, steps_to_reach, tucker_init
from .results import Results

if TYPE_CHECKING:
    from ..model import NVP

__all__ = ["InitConfig"]

INIT_KEYS = (*BASELINE_KEYS, "ranks", "mapping", "scale", "lam", "pull_grids", "decay")
"""The config fields that determine an arm of the initialisation study (with its name)."""


@dataclass(frozen=True)
class InitConfig(ExperimentConfig):
    """Random initialisation against Tucker initialisation, with and without the pull-to-init term."""

    kind: ClassVar[str] = "init"
    notebooks: ClassVar[tuple[str, ...]] = ("tucker_init",)
    cpu_batch: ClassVar[int] = 1024

    steps: int = 15_000
    """Training steps of every arm."""
    checkpoint_every: int = 5_000
    """Steps between checkpoints of each arm: a crash or kill costs at most this many; a re-run with
    the same parameters resumes."""
    ranks: tuple = (0.8, 0.8, 0.8)
    """Tucker ranks (t, x, y) of the initialisation and of the final compression: ints or fractions."""
    mapping: str = "all"
    """'sparse' (sparse grid only) or 'all' (also the 2D grids' planes); see ``tucker_init``."""
    scale: float = 0.1
    """Standard deviation of the initial grid values."""
    lam: float = 0.1
    """Weight of the pull-to-init term (on the mean squared distance)."""
    pull_grids: tuple = ("sparse",)
    """Grids the pull applies to."""
    decay: bool = True
    """Decay the pull to zero with a cosine over the steps."""
    compare_mappings: bool = True
    """Add an arm initialised with the other mapping (no pull), to compare the two."""
    psnr_level: float = 30.0
    """The PSNR whose first crossing (training PSNR) is reported as steps-to-reach."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice("InitConfig", "mapping", self.mapping, MAPPINGS)
        if not self.lam >= 0 or not self.scale > 0:
            raise ValueError(f"InitConfig: lam must be >= 0 and scale > 0, got lam={self.lam!r}, scale={self.scale!r}")
        check_parts("InitConfig.pull_grids", self.pull_grids, GRIDS)
        if not self.pull_grids:
            raise ValueError(f"InitConfig: pull_grids={self.pull_grids!r} is empty; name some of {list(GRIDS)}")
        Tucker(ranks=tuple(self.ranks))  # validates the ranks now

    def arms(self) -> list[tuple[str, str | None, bool]]:
        """(name, mapping or None for random, pull) of every arm, in training order."""
        arms = [("random init", None, False), (f"Tucker init ({self.mapping})", self.mapping, False),
                (f"Tucker init ({self.mapping}) + pull", self.mapping, True)]
        if self.compare_mappings:
            other = next(m for m in MAPPINGS if m != self.mapping)
            arms.append((f"Tucker init ({other})", other, False))
        return arms

    # -- the kind ----------------------------------------------------------------------------------

    def folder_name(self) -> str:
        return "tucker_init"

    def arm_names(self) -> list[str]:
        return [name for name, _, _ in self.arms()]

    def compressors(self) -> dict[str, Compressor]:
        return {f"ranks={self.ranks!r} (the final Tucker compression)": self.final()[1]}

    def final(self) -> tuple[str, Compressor]:
        return "tucker", make_compressor("tucker", ranks=tuple(self.ranks))

    def check_model(self, model: NVPConfig) -> None:
        try:
            Tucker(ranks=tuple(self.ranks)).ranks_for(model.sparse.shape[:3])
        except ValueError as err:
            raise ValueError(f"InitConfig: ranks={self.ranks!r} do not fit the sparse grid sized for the clip "
                             f"({model.sparse.shape[:3]}): {err}") from None

    def check_signature(self) -> tuple:
        return (*super().check_signature(), self.ranks, self.mapping, self.scale)

    def extra_checks(self, model: "NVP", video: Video) -> dict[str, float]:
        started = time.perf_counter()
        tucker_init(model, video, tuple(self.ranks), mapping=self.mapping, scale=self.scale)
        return {"tucker_init": time.perf_counter() - started}

    def stages(self, video: Video, timing: Timing) -> tuple[list[Stage], dict[str, float]]:
        seeds, per_seed = self._per_seed()
        arms, frames = len(self.arms()), video.num_frames
        final = timing.checks[next(k for k in timing.checks if k.startswith("ranks"))]
        init = timing.checks["tucker_init"]
        return ([("arms", seeds * arms * (self.steps * timing.step + init),
                  f"{arms} arms x {self.steps:,} steps{per_seed}"),
                 ("Tucker compression and evaluation", seeds * arms * (final + 2 * frames * timing.frame),
                  f"{arms} arms x (round trip + {frames} frames twice){per_seed}")],
                {"Tucker init": init, "Tucker compression": final})

    def run_seed(self, video: Video, live: Monitor | None, label: Callable[[str], str],
                 shared: dict[str, Any]) -> Results:
        out = Path(self.out_dir)
        started = time.perf_counter()
        key = arm_key(self, video, INIT_KEYS)
        arms, rows, checkpoints = {}, [], {}
        for i, (name, mapping, pull) in enumerate(self.arms()):
            def prepare(trainer: Trainer, mapping: str | None = mapping, pull: bool = pull) -> None:
                if mapping is not None:
                    init = tucker_init(trainer.model, video, tuple(self.ranks), mapping=mapping, scale=self.scale)
                    if pull:  # kept with the checkpoints, so that a resumed arm is pulled to the same values
                        trainer.extra["pull_init"] = {g: init[g] for g in self.pull_grids}

            def attach(trainer: Trainer) -> None:
                if "pull_init" in trainer.extra:  # from a checkpoint (on the CPU) or prepare
                    init = {}
                    for grid in self.pull_grids:
                        values = flat_values(trainer.model, grid)
                        saved = trainer.extra["pull_init"].get(grid)
                        if not isinstance(saved, torch.Tensor) or saved.shape != values.shape:
                            raise ValueError(f"InitConfig: the checkpoint's pull-to-init values of grid {grid!r} do "
                                             f"not fit the model ({tuple(values.shape)}); start the arm again "
                                             "(overwrite=True)")
                        init[grid] = saved.to(device=values.device, dtype=values.dtype)
                    trainer.regularizer = PullToInit(init, self.lam, tuple(self.pull_grids),
                                                     self.steps if self.decay else None)

            checkpoints[name] = str(out / f"arm-{i}.pt")
            trainer = train_arm(self, video, label(name), live=live, prepare=prepare, attach=attach,
                                checkpoint=Checkpoint(checkpoints[name], self.checkpoint_every), key=f"{key}:{name}")
            compressed = self.final()[1].roundtrip(trainer.model)
            rows.append({"arm": name, "steps_to_level": steps_to_reach(trainer.history, self.psnr_level),
                         "psnr": evaluate(trainer.model, video, ms_ssim=False, progress=False).psnr,
                         "tucker_bpp": compressed.bpp(video),
                         "tucker_psnr": evaluate(compressed.to_model(trainer.device), video, ms_ssim=False,
                                                 progress=False).psnr,
                         "train_seconds": trainer.elapsed})
            arms[name] = trainer
        return Results(
            kind=self.kind, config=self.to_dict(), video=video_record(video),
            arms={n: {"history": t.history, "train_seconds": t.elapsed} for n, t in arms.items()}, table=rows,
            metrics=dict(METRICS), checkpoints=checkpoints,
            seconds=time.perf_counter() - started, plot_seconds=getattr(live, "plot_seconds", 0.0),
            provenance=provenance(next(iter(arms.values())).device), trainers=arms)
