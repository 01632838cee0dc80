"""Kinds of experiment: typed, validated configs that own what their experiment does.

``ExperimentConfig`` is what every experiment shares (the clip, the model, the schedule) and is
itself the simplest kind, ``"train"``: one model trained, checkpointed, evaluated on every frame
and its reconstruction written. ``GuideConfig`` (``guide.py``) adds compression-guided training,
``InitConfig`` (``init_study.py``) the initialisation study. A kind answers every question the
planner, the runner, the sweep and the command line ask: its arms, the compressors it uses, what
it holds in memory, its stages and their estimated time, and how one seed of it runs
(``run_seed``); none of them branches on the kind.

Each config is built from a notebook's parameters by ``from_params``
(``GuideConfig.from_params(globals())`` after the parameters cell) or from the command line
(``python -m nvpkit guide --period 10000``) and validated before anything trains. ``to_dict``
is what results.json and the arm cache keys record.
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from .._checks import check_choice, check_int, is_int, show
from .._device import resolve_device
from .._files import runs_root
from ..compress import Compressor
from ..config import NVPConfig, load_config, size_sparse_grid
from ..data import Video, load_video
from ..metrics import METRICS
from ..provenance import provenance
from ..rendering import evaluate
from ..train import CPU_BATCH, Checkpoint, TrainConfig, Trainer
from .arms import Monitor, train_arm, video_record
from .cache import BASELINE_KEYS, arm_key
from .params import parse_fields
from .results import Results
from .tensorboard import LOGGERS

if TYPE_CHECKING:
    from ..model import NVP

__all__ = ["ExperimentConfig", "Timing", "Stage", "AUTO"]

AUTO = "auto"
"""The ``batch`` that lets the planner choose (see ``ExperimentConfig.batch``)."""
Stage = tuple[str, float, str]
"""An estimated stage of a run: its name, seconds and what it does."""


@dataclass(frozen=True)
class Timing:
    """What ``plan`` measured on this machine, for a kind to estimate its stages from."""

    step: float
    """Seconds per training step."""
    frame: float
    """Seconds to render and score one frame (without MS-SSIM)."""
    frame_ms_ssim: float
    """The same with MS-SSIM."""
    checks: dict
    """Seconds of each round trip (and initialisation) of ``check``, by label."""
    event: float = 0.0
    """Seconds of one guidance event as it runs (round trip and probe passes; 0 for kinds without)."""
    guided_step: float = 0.0
    """Seconds per step of the kind's guided arm where its steps cost more (``timed_trainer``), else 0."""


@dataclass(frozen=True)
class ExperimentConfig:
    """Plain training (the ``train`` kind), and what every experiment shares: the clip, the model,
    the training schedule and where the results go."""

    kind: ClassVar[str] = "train"
    """The name of the kind: the command line's subcommand and results.json's ``kind``."""
    notebooks: ClassVar[tuple[str, ...]] = ("quickstart",)
    """nvpkit's notebooks that build this kind from their parameters."""
    cpu_batch: ClassVar[int] = CPU_BATCH
    """The batch ``"auto"`` means on the CPU."""

    dataset: str = "sample"
    """'sample', 'uvg/NAME' (after ``python -m nvpkit data fetch uvg/NAME``), a folder of frames, a
    video file, a raw .yuv or a .npy."""
    num_frames: int = 16
    """Frames used from the start of the clip."""
    downscale: int = 4
    """Integer area downscale of the frames (1 for the published experiments)."""
    config: str = "cpu_s"
    """Model preset or JSON path ('nvp_s' for the published experiments); the sparse grid is sized to the clip."""
    steps: int = 500
    """Training steps of every arm (published: 144,700)."""
    batch: int | str = AUTO
    """Pixels per step; 'auto': the published 1,245,184 on a GPU when its memory allows (else the
    largest that fits, which the plan states), the kind's CPU batch on the CPU."""
    lr: float = 1e-2
    """Peak AdamW learning rate (cosine decay to 1e-5)."""
    seed: int = 0
    """Seeds the model initialisation and the pixel sampler of every arm."""
    seeds: tuple = ()
    """Seeds to repeat the experiment with (e.g. (0, 1, 2)): every arm is trained once per seed, each
    seed's run in ``out_dir/seed-<s>``, and the tables give mean, spread and paired differences over
    seeds; empty: ``seed`` alone, in ``out_dir``."""
    device: str = "auto"
    """'auto', 'cpu', 'cuda' or 'cuda:N'."""
    compile: bool = False
    """Run the decoder through ``torch.compile`` (see ``TrainConfig.compile``)."""
    log_every: int = 100
    """Steps between logged loss points."""
    checkpoint_every: int = 1000
    """Steps between checkpoints of each arm: a crash or kill costs at most this many; a re-run with
    the same parameters resumes."""
    out_dir: str = ""
    """Where results.json, the figures and the checkpoints go; empty: ``<runs>/<folder_name()>``,
    where ``<runs>`` is ``$NVPKIT_RUNS`` or ``runs/`` at the project root (``nvpkit.runs_root``)."""
    overwrite: bool = False
    """Allow replacing results in out_dir made with other parameters."""
    log: str = ""
    """An extra logger: 'tensorboard' writes the curves, guidance events and final numbers under
    ``out_dir/tensorboard`` (needs ``pip install "nvpkit[tensorboard]"``); empty: none."""
    allow_code_change: bool = False
    """Resume checkpoints and use cached arms trained by other code (another nvpkit version, an edit
    of a module on the training or compression path, another torch): with a warning, both code
    versions recorded in results.json (``provenance.code_changes``). Without it such a run stops
    before training and says so (or starts again with ``overwrite``)."""

    def __post_init__(self) -> None:
        name = type(self).__name__
        for field in ("num_frames", "downscale", "checkpoint_every"):
            check_int(name, field, getattr(self, field), 1)
        check_choice(name, "log", self.log, LOGGERS)
        if self.batch != AUTO and not (is_int(self.batch) and self.batch >= 1):
            raise ValueError(f"{name}: batch={self.batch!r} is not allowed; use an int >= 1 or 'auto'")
        if not isinstance(self.seeds, tuple) or not all(is_int(s) for s in self.seeds) \
                or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"{name}: seeds={show(self.seeds)} is not allowed; give distinct ints, e.g. (0, 1, 2)")
        self._default_dirs()
        self.train_config()  # the schedule and the device, validated now

    def _default_dirs(self) -> None:
        """Empty folders become their defaults under the runs root."""
        if not self.out_dir:
            object.__setattr__(self, "out_dir", str(runs_root() / self.folder_name()))

    # -- what every kind shares --------------------------------------------------------------------

    def seed_list(self) -> tuple[int, ...]:
        """The seeds the experiment runs: ``seeds``, or ``seed`` alone."""
        return tuple(self.seeds) or (self.seed,)

    def for_seed(self, seed: int):
        """This config for one seed of ``seeds``: that ``seed``, out_dir ``out_dir/seed-<seed>``."""
        return replace(self, seed=seed, seeds=(), out_dir=str(Path(self.out_dir) / f"seed-{seed}"))

    def train_config(self) -> TrainConfig:
        """The training settings of every arm (``batch="auto"`` as the published batch on CUDA and
        ``cpu_batch`` on the CPU; ``with_batch`` makes the planner's choice)."""
        batch = self.batch
        if batch == AUTO:
            batch = None if resolve_device(self.device).type == "cuda" else self.cpu_batch
        return TrainConfig(steps=self.steps, batch=batch, lr=self.lr, seed=self.seed, device=self.device,
                           log_every=self.log_every, compile=self.compile)

    def with_batch(self, batch: int):
        """This config with ``batch`` chosen (what a run records when ``batch`` was ``"auto"``)."""
        return replace(self, batch=batch)

    @classmethod
    def from_params(cls, params: Mapping[str, Any], **overrides: Any):
        """The config from a notebook's parameters (``globals()`` after its parameters cell, or any
        mapping): every field found by name, strings converted to the field's type ("2,3,3" for a
        tuple, "5000" for an int); other names are ignored. ``overrides`` win over ``params``."""
        return cls(**{**parse_fields(cls, params), **overrides})

    def to_dict(self) -> dict[str, Any]:
        """The config as plain JSON values (what results.json and cache keys record)."""
        return json.loads(json.dumps(asdict(self)))

    RUN_CONTROLS: ClassVar[tuple[str, ...]] = ("overwrite", "allow_code_change", "log")
    """Fields that say how to run, not what: a re-run that differs only in them is the same experiment."""

    def load_video(self) -> Video:
        return load_video(self.dataset, self.num_frames, downscale=self.downscale)

    def model_config(self, video: Video, num_frames: int | None = None) -> NVPConfig:
        """The model of ``config`` with its sparse grid sized to ``video`` (what every arm trains), or
        to ``num_frames`` frames of its size."""
        return size_sparse_grid(load_config(self.config), num_frames or video.num_frames, video.height, video.width)

    def new_trainer(self, video: Video) -> Trainer:
        """A fresh trainer of this config's model and schedule (the model seeded by ``seed``)."""
        return Trainer.from_config(video, self.config, **asdict(self.train_config()))

    # -- what the kind answers: planner, runner, sweep and command line ask these -----------------

    def folder_name(self) -> str:
        """The folder under the runs root that an empty ``out_dir`` means."""
        return self.kind

    def arm_names(self) -> list[str]:
        """The arms of one seed, in training order."""
        return ["model"]

    def held_arms(self) -> int:
        """Trainers held in memory at once (a seed's results keep every arm)."""
        return len(self.arm_names())

    def checkpointed_arms(self) -> int:
        """Arms whose checkpoints stay on disk, per seed."""
        return len(self.arm_names())

    def decoded_models(self) -> int:
        """Models kept in memory beside the trainers (decoded after a compression)."""
        return 1

    def compressors(self) -> dict[str, Compressor]:
        """Every compressor a run uses, by the parameter that names it (``check`` round-trips each)."""
        return {}

    def final(self) -> tuple[str, Compressor] | None:
        """The name and compressor of the final compression, if the kind has one."""
        return None

    def check_model(self, model: NVPConfig) -> None:
        """Checks of settings against the model sized for the clip, from shapes alone (``ValueError``)."""

    def check_signature(self) -> tuple:
        """What ``check`` looks at besides the clip, model and seed: configs equal in it are checked once."""
        return tuple(self.compressors())

    def extra_checks(self, model: "NVP", video: Video) -> dict[str, float]:
        """Work a run does before training that can fail, run once on ``model``; its seconds by label."""
        return {}

    def timed_trainer(self, video: Video) -> Trainer | None:
        """A trainer whose steps cost what this kind's guided steps cost, where they cost more than
        plain training's (``plan`` times it beside a plain one); None: no such arm."""
        return None

    def time_event(self, trainer: Trainer, video: Video) -> float:
        """Seconds of one of this kind's periodic events on ``trainer`` (after its timed steps), as a
        run does it; 0 for kinds without."""
        return 0.0

    def training_memory(self, model_config: NVPConfig) -> dict[str, int]:
        """Bytes this kind's training holds beyond the arms' state and activations, by item."""
        return {}

    def _per_seed(self) -> tuple[int, str]:
        """How many seeds a run trains, and what a stage's description adds for them."""
        seeds = len(self.seed_list())
        return seeds, f" x {seeds} seeds" if self.seeds else ""

    def stages(self, video: Video, timing: Timing) -> tuple[list[Stage], dict[str, float]]:
        """The estimated stages of one run of every seed, and what the kind measured for them."""
        seeds, per_seed = self._per_seed()
        frames = video.num_frames
        return [("training", seeds * self.steps * timing.step, f"{self.steps:,} steps{per_seed}"),
                ("evaluation", seeds * frames * timing.frame_ms_ssim, f"{frames} frames{per_seed}")], {}

    def prepare(self, video: Video) -> dict[str, Any]:
        """What every seed of a run shares, measured once before the first (``Results`` fields)."""
        return {}

    def run_seed(self, video: Video, live: Monitor | None, label: Callable[[str], str],
                 shared: dict[str, Any]) -> Results:
        """One seed of the experiment into ``out_dir``; ``label`` names an arm for ``live``."""
        out = Path(self.out_dir)
        started = time.perf_counter()
        (name,) = self.arm_names()
        trainer = train_arm(self, video, label(name), live=live,
                            checkpoint=Checkpoint(out / "checkpoint.pt", self.checkpoint_every),
                            key=arm_key(self, video, BASELINE_KEYS))
        # out_dir holds no results of other parameters (checked): a re-run replaces its own
        measured = evaluate(trainer.model, video, write=out / "reconstruction.mp4", overwrite=True)
        row = {"arm": name, "psnr": measured.psnr, "psnr_float": measured.psnr_float, "yuv_psnr": measured.yuv_psnr,
               "ms_ssim": measured.ms_ssim, "train_seconds": trainer.elapsed}
        return Results(
            kind=self.kind, config=self.to_dict(), video=video_record(video),
            arms={name: {"history": trainer.history, "train_seconds": trainer.elapsed}}, table=[row],
            final={name: measured.to_dict()}, metrics=dict(METRICS), checkpoints={name: str(out / "checkpoint.pt")},
            seconds=time.perf_counter() - started, plot_seconds=getattr(live, "plot_seconds", 0.0),
            provenance=provenance(trainer.device), trainers={name: trainer}, decoded={name: trainer.model}, clip=video)
