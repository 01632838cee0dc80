"""Experiment configs: what a notebook's parameters cell holds, as typed, validated dataclasses.

``ExperimentConfig`` is what every experiment shares (the clip, the model, the schedule);
``GuideConfig`` adds compression-guided training, ``InitConfig`` the initialisation study. Each
is built from a notebook's parameters by ``from_params`` (``GuideConfig.from_params(globals())``
after the parameters cell) and validated before anything trains. ``to_dict`` is what results.json
and the arm cache keys record.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from .._checks import check_choice, check_int
from ..compress import COMPRESSORS, Compressor, Tucker, make_compressor, preset_settings
from ..compress.rd import check_anchor
from ..config import NVPConfig, load_config, size_sparse_grid
from ..data import Video, load_video
from ..parts import GRIDS, check_parts
from ..train import TrainConfig, Trainer
from .guidance import MODES
from .initialize import MAPPINGS
from .params import parse_fields, parse_list, parse_setting

__all__ = ["ExperimentConfig", "GuideConfig", "InitConfig", "NOTEBOOK_CONFIGS"]


@dataclass(frozen=True)
class ExperimentConfig:
    """What every experiment notebook shares: the clip, the model and the training schedule."""

    dataset: str = "sample"
    """'sample', a folder of frames, a video file, a raw .yuv or a .npy."""
    num_frames: int = 16
    """Frames used from the start of the clip."""
    downscale: int = 4
    """Integer area downscale of the frames (1 for the published experiments)."""
    config: str = "cpu_s"
    """Model preset or JSON path ('nvp_s' for the published experiments); the sparse grid is sized to the clip."""
    steps: int = 25_000
    """Training steps of every arm (published: 144,700)."""
    batch: int = 1024
    """Pixels per step (published: 1,245,184 on a GPU)."""
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
    log_every: int = 250
    """Steps between logged loss points."""
    out_dir: str = "runs/experiment"
    """Where results.json and the figures go."""
    overwrite: bool = False
    """Allow replacing results in out_dir made with other parameters."""

    def __post_init__(self) -> None:
        for name in ("num_frames", "downscale"):
            check_int(type(self).__name__, name, getattr(self, name), 1)
        if not isinstance(self.seeds, tuple) or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"{type(self).__name__}: seeds={self.seeds!r} is not allowed; give distinct ints, "
                             "e.g. (0, 1, 2)")
        for seed in self.seeds:
            check_int(type(self).__name__, "seeds", seed)
        self.train_config()  # the schedule and the device, validated now

    def seed_list(self) -> tuple[int, ...]:
        """The seeds the experiment runs: ``seeds``, or ``seed`` alone."""
        return tuple(self.seeds) or (self.seed,)

    def for_seed(self, seed: int):
        """This config for one seed of ``seeds``: that ``seed``, out_dir ``out_dir/seed-<seed>``."""
        return replace(self, seed=seed, seeds=(), out_dir=str(Path(self.out_dir) / f"seed-{seed}"))

    def train_config(self) -> TrainConfig:
        """The training settings of every arm."""
        return TrainConfig(steps=self.steps, batch=self.batch, lr=self.lr, seed=self.seed, device=self.device,
                           log_every=self.log_every, compile=self.compile)

    @classmethod
    def from_params(cls, params: Mapping[str, Any], **overrides: Any):
        """The config from a notebook's parameters (``globals()`` after its parameters cell, or any
        mapping): every field found by name, strings converted to the field's type ("2,3,3" for a
        tuple, "5000" for an int); other names are ignored. ``overrides`` win over ``params``."""
        return cls(**{**parse_fields(cls, params), **overrides})

    def to_dict(self) -> dict[str, Any]:
        """The config as plain JSON values (what results.json and cache keys record)."""
        return json.loads(json.dumps(asdict(self)))

    def load_video(self) -> Video:
        return load_video(self.dataset, self.num_frames, downscale=self.downscale)

    def model_config(self, video: Video, num_frames: int | None = None) -> NVPConfig:
        """The model of ``config`` with its sparse grid sized to ``video`` (what every arm trains), or
        to ``num_frames`` frames of its size."""
        return size_sparse_grid(load_config(self.config), num_frames or video.num_frames, video.height, video.width)

    def new_trainer(self, video: Video) -> Trainer:
        """A fresh trainer of this config's model and schedule (the model seeded by ``seed``)."""
        return Trainer.from_config(video, self.config, **asdict(self.train_config()))


@dataclass(frozen=True)
class GuideConfig(ExperimentConfig):
    """One guided-training experiment: the shared settings, plus guidance and evaluation."""

    period: int = 5_000
    """Steps between guidance events (published: 10,000 for HEVC, 5,000 for Tucker)."""
    compressor: str = "hevc"
    """Guidance and final compressor preset: 'hevc', 'h264', 'av1', 'tucker', 'quantize', 'float'."""
    settings: dict = field(default_factory=dict)
    """Keyword settings of the compressor preset (crf, qscale, framerate, preset; ranks, storage)."""
    mode: str = "reload"
    """'reload' (compress and reload every period) or 'straight_through' (also 8-bit quantized
    grids in every forward pass)."""
    reset_optimizer: bool = False
    """Clear AdamW's moments after each reload (by default they are kept, and the schedule goes on)."""
    sweep: tuple = ()
    """Setting overrides for the final RD sweep of both arms, e.g. ({"crf": 15}, {"crf": 27})."""
    anchor_crfs: tuple = (20, 26, 32, 38, 44)
    """crf values of the plain x265 curve of the clip (empty: no anchor)."""
    anchor_codec: str = "hevc"
    """Codec of the anchor curve: 'hevc' (x265), 'h264', 'vvc' (vvenc), 'svtav1'."""
    anchor_preset: str = ""
    """Preset of the anchor; empty: the guidance codec's when it is the same codec (else the anchor
    codec's default, slow for x265), so the clip and the grids are encoded alike."""
    anchor_chroma: str = "420"
    """Chroma format of the anchor: '420' (as codecs are used) or '444' (an RGB-fair comparison)."""
    probe_pixels: int = 2**18
    """Pixels of the fixed set on which event PSNRs are measured."""
    checkpoint_every: int = 5_000
    """Steps between checkpoints of each arm: a crash or kill costs at most this many; a re-run with
    the same parameters resumes."""
    out_dir: str = "runs/guide"
    """Where results.json, the figures and the guided arm's checkpoint go (and the no-guidance arm's
    while it trains; finished, it moves to ``cache_dir``)."""
    cache_dir: str = "runs/cache"
    """Where the no-guidance arm is cached, keyed by everything that determines it, the code included
    (with a ``.lock`` file naming the run that trains it meanwhile); runs that share it need a
    shared filesystem."""

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("period", "probe_pixels", "checkpoint_every"):
            check_int("GuideConfig", name, getattr(self, name), 1)
        if self.period >= self.steps:
            raise ValueError(f"GuideConfig: period={self.period} must be smaller than steps={self.steps}: no "
                             "guidance event would happen before the final compression")
        check_choice("GuideConfig", "compressor", self.compressor, COMPRESSORS)
        check_choice("GuideConfig", "mode", self.mode, MODES)
        self.anchor()  # validates the anchor's settings
        if not isinstance(self.settings, dict) or not all(isinstance(o, dict) for o in self.sweep):
            raise ValueError(f"GuideConfig: settings={self.settings!r}, sweep={self.sweep!r}: give the settings as a "
                             "dict and the sweep as dicts of overrides, e.g. ({'crf': 15}, {'crf': 27})")
        self.final_compressor()  # validates the settings now, not hours later
        for override in self.sweep:
            self.final_compressor(**override)

    @classmethod
    def from_params(cls, params: Mapping[str, Any], **overrides: Any) -> "GuideConfig":
        """As ``ExperimentConfig.from_params``; in addition, parameters named like a setting of the
        chosen compressor preset (``crf``, ``qscale``, ``preset``; ``ranks``, ``storage``) go into
        ``settings``, and one ``sweep_<setting>`` list (or its plural: ``sweep_crfs = "15,21,27"``)
        becomes ``sweep``."""
        values = {**parse_fields(cls, params), **overrides}
        name = values.get("compressor", cls.compressor)
        check_choice("GuideConfig", "compressor", name, COMPRESSORS)
        accepted = preset_settings(name)
        settings = {**{k: parse_setting(params[k]) for k in accepted if k in params}, **values.get("settings", {})}
        swept = [(k, name) for k in accepted for name in (f"sweep_{k}", f"sweep_{k}s") if name in params]
        if len(swept) > 1:
            raise ValueError(f"GuideConfig: sweep one setting at a time, got {[name for _, name in swept]}")
        if swept and "sweep" not in values:
            key, name = swept[0]
            values["sweep"] = tuple({key: v} for v in parse_list(params[name], name))
        return cls(**{**values, "settings": settings})

    def final_compressor(self, **override: Any) -> Compressor:
        """The compressor of the guidance events and the final compression (with ``override`` settings)."""
        return make_compressor(self.compressor, **{**self.settings, **override})

    def arm_names(self) -> tuple[str, str]:
        return "no guidance", f"{self.compressor} guidance"

    def anchor(self) -> dict[str, str]:
        """The anchor's ``codec``, ``preset`` (resolved, see ``anchor_preset``) and ``chroma``."""
        sparse = self.final_compressor().sparse
        preset = self.anchor_preset or (str(sparse.preset) if sparse.name == self.anchor_codec else None)
        return {"codec": self.anchor_codec, "preset": check_anchor(self.anchor_codec, preset, self.anchor_chroma),
                "chroma": self.anchor_chroma}


@dataclass(frozen=True)
class InitConfig(ExperimentConfig):
    """Random initialisation against Tucker initialisation, with and without the pull-to-init term."""

    steps: int = 15_000
    """Training steps of every arm."""
    log_every: int = 100
    """Steps between logged loss points."""
    out_dir: str = "runs/tucker_init"
    """Where results.json and the figures go."""
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

    def arm_names(self) -> list[str]:
        return [name for name, _, _ in self.arms()]


NOTEBOOK_CONFIGS: dict[str, type[ExperimentConfig]] = {
    "codec_guide": GuideConfig, "tucker_guide": GuideConfig, "tucker_init": InitConfig}
"""The config each of nvpkit's experiment notebooks builds from its parameters, by notebook name."""
