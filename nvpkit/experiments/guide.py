"""The ``guide`` kind: compression-guided training against no guidance, measured alike.

Both arms train with the same seed, data, steps and schedule, both checkpointed and resumed when
a run is repeated with the same parameters; the no-guidance arm is cached (``cache``) and shared
by every run that needs it. Both are compressed with the same final compressor, every frame is
evaluated, both are swept over a range of settings with the plain-codec anchor of the clip beside
them, and the Bjøntegaard deltas of the guided arm against no guidance are reported.
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from .._checks import check_choice, check_int, check_number
from .._files import runs_root
from ..compress import COMPRESSORS, Compressor, container_bits, make_compressor, preset_settings, rd_sweep, video_anchor
from ..compress.rd import anchor_decode, anchor_encode, check_anchor
from ..config import NVPConfig
from ..data import Video
from ..memory import FLOAT32, RATE_BYTES, RATE_SAMPLE_BYTES, RESIDUAL_BYTES
from ..metrics import METRICS
from ..parts import GRIDS, count_parameters
from ..provenance import provenance
from ..rate import ESTIMATORS, RateTerm
from ..rendering import evaluate
from ..train import Checkpoint, Trainer
from .arms import Monitor, train_arm, video_record
from .bd import bd_metrics
from .cache import GUIDED_KEYS, RATE_KEYS, arm_key, baseline, baseline_path
from .config import ExperimentConfig, Stage, Timing
from .guidance import MODES, Guidance
from .params import parse_fields, parse_ladder, parse_list, parse_setting
from .results import Results

__all__ = ["GuideConfig"]


@dataclass(frozen=True)
class GuideConfig(ExperimentConfig):
    """One guided-training experiment: the shared settings, plus guidance and evaluation."""

    kind: ClassVar[str] = "guide"
    notebooks: ClassVar[tuple[str, ...]] = ("codec_guide", "tucker_guide")
    cpu_batch: ClassVar[int] = 1024

    steps: int = 25_000
    """Training steps of every arm (published: 144,700)."""
    log_every: int = 250
    """Steps between logged loss points."""
    period: int = 5_000
    """Steps between guidance events (published: 10,000 for HEVC, 5,000 for Tucker)."""
    compressor: str = "hevc"
    """Guidance and final compressor preset: 'hevc', 'h264', 'av1', 'vvc', 'svtav1', 'tucker',
    'quantize', 'float'."""
    settings: dict = field(default_factory=dict)
    """Keyword settings of the compressor preset (crf, qscale, framerate, preset; ranks, storage)."""
    mode: str = "reload"
    """'reload' (compress and reload every period), 'straight_through' (also 8-bit quantized grids
    in every forward pass), 'codec_ste' (the codec's reconstruction in every forward pass, the
    gradient straight to the stored grids; see ``Guidance``) or 'none' (no round trips: the rate
    term alone, which then needs ``rate_weight > 0``)."""
    rate_weight: float = 0.0
    """λ of the rate term: the guided arm trains on MSE + λ x an estimate of the codec's rate on the
    grids (per grid value, in 8-bit quantization steps; see ``nvpkit.rate``), in any mode. 0: no
    rate term."""
    rate_estimator: str = "tv"
    """The rate estimate: 'tv' (total variation in each codec's reading order) or 'entropy' (bits
    under a learned factorized density, fitted by its own optimizer)."""
    drift: float = 0.0
    """codec_ste only: also refresh the residual after any step at which the grids have moved by more
    than this relative L2 change since the last refresh (CATRF uses 0.05); 0: every ``period`` only."""
    codec_from: float = 0.0
    """codec_ste only: the fraction of the steps trained without the codec before it enters (CATRF's
    pretraining stage); 0: the codec from the first step."""
    reset_optimizer: bool = False
    """Clear AdamW's moments after each reload (by default they are kept, and the schedule goes on)."""
    sweep: tuple = ()
    """Setting overrides for the final RD sweep of both arms, e.g. ({"crf": 15}, {"crf": 27})."""
    anchor_crfs: tuple = (20, 26, 32, 38, 44)
    """crf values of the plain-codec curve of the clip (empty: no anchor)."""
    anchor_codec: str = "hevc"
    """Codec of the anchor curve: 'hevc' (x265), 'h264', 'vvc' (vvenc), 'svtav1'."""
    anchor_preset: str = ""
    """Preset of the anchor; empty: the guidance codec's when it is the same codec (else the anchor
    codec's default, slow for x265), so the clip and the grids are encoded alike."""
    anchor_chroma: str = "420"
    """Chroma format of the anchor: '420' (as codecs are used) or '444' (an RGB-fair comparison)."""
    anchor_tune: str = "psnr"
    """What the anchor encoder is tuned for: 'psnr' (the metric scored: x265/x264 --tune psnr,
    vvenc without perceptual QP adaptation, SVT-AV1 tune=1) or 'none' (the encoder's default)."""
    probe_pixels: int = 2**18
    """Pixels of the fixed set on which event PSNRs are measured."""
    checkpoint_every: int = 5_000
    """Steps between checkpoints of each arm: a crash or kill costs at most this many; a re-run with
    the same parameters resumes."""
    cache_dir: str = ""
    """Where the no-guidance arm is cached, keyed by everything that determines it, the code included
    (with a ``.lock`` file naming the run that trains it meanwhile); runs that share it need a
    shared filesystem. Empty: ``<runs>/cache``."""

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("period", "probe_pixels"):
            check_int("GuideConfig", name, getattr(self, name), 1)
        check_choice("GuideConfig", "mode", self.mode, MODES)
        check_choice("GuideConfig", "rate_estimator", self.rate_estimator, ESTIMATORS)
        check_number("GuideConfig", "rate_weight", self.rate_weight, note=" (0: no rate term)")
        if self.mode == "none" and not self.rate_weight:
            raise ValueError("GuideConfig: mode='none' with rate_weight=0 trains the guided arm as the no-guidance "
                             "one; give rate_weight > 0 (in a sweep, leave this combination out of the grid)")
        if self.period >= self.steps and self.mode != "none":
            raise ValueError(f"GuideConfig: period={self.period} must be smaller than steps={self.steps}: no "
                             "guidance event would happen before the final compression")
        check_choice("GuideConfig", "compressor", self.compressor, COMPRESSORS)
        for name, top in (("drift", float("inf")), ("codec_from", 1.0)):
            value = getattr(self, name)
            check_number("GuideConfig", name, value, hi=top)
            if value and self.mode != "codec_ste":
                raise ValueError(f"GuideConfig: {name}={value!r} is an option of mode='codec_ste', not of "
                                 f"mode={self.mode!r}")
        self.anchor()  # validates the anchor's settings
        if not isinstance(self.settings, dict) or not all(isinstance(o, dict) for o in self.sweep):
            raise ValueError(f"GuideConfig: settings={self.settings!r}, sweep={self.sweep!r}: give the settings as a "
                             "dict and the sweep as dicts of overrides, e.g. ({'crf': 15}, {'crf': 27})")
        self.final_compressor()  # validates the settings now, not hours later
        for override in self.sweep:
            self.final_compressor(**override)

    def _default_dirs(self) -> None:
        super()._default_dirs()
        if not self.cache_dir:
            object.__setattr__(self, "cache_dir", str(runs_root() / "cache"))

    @classmethod
    def from_params(cls, params: Mapping[str, Any], **overrides: Any) -> "GuideConfig":
        """As ``ExperimentConfig.from_params``; in addition, parameters named like a setting of the
        chosen compressor preset (``crf``, ``qscale``, ``preset``; ``ranks``, ``storage``) go into
        ``settings``, and one ``sweep_<setting>`` list (or its plural: ``sweep_crfs = "15,21,27"``)
        becomes ``sweep``; a non-empty ``sweep_ladder`` (``parse_ladder``: "crf=15 qscale=1,2,2;
        crf=27 qscale=3,5,5", every codec's quality moved together) replaces that list."""
        values = {**parse_fields(cls, params), **overrides}
        name = values.get("compressor", cls.compressor)
        check_choice("GuideConfig", "compressor", name, COMPRESSORS)
        accepted = preset_settings(name)
        settings = {**{k: parse_setting(params[k]) for k in accepted if k in params}, **values.get("settings", {})}
        ladder = parse_ladder(params.get("sweep_ladder", ""), "sweep_ladder")
        unknown = sorted({k for point in ladder for k in point} - set(accepted))
        if unknown:
            raise ValueError(f"GuideConfig: sweep_ladder sets {', '.join(unknown)}, not settings of compressor="
                             f"{name!r}; it takes {', '.join(accepted)}")
        swept = [(k, name) for k in accepted for name in (f"sweep_{k}", f"sweep_{k}s") if name in params]
        if len(swept) > 1 and not ladder:
            raise ValueError(f"GuideConfig: sweep one setting at a time, got {[name for _, name in swept]}")
        if ladder and "sweep" not in values:
            values["sweep"] = ladder
        elif swept and "sweep" not in values:
            key, name = swept[0]
            values["sweep"] = tuple({key: v} for v in parse_list(params[name], name))
        return cls(**{**values, "settings": settings})

    def final_compressor(self, **override: Any) -> Compressor:
        """The compressor of the guidance events and the final compression (with ``override`` settings)."""
        return make_compressor(self.compressor, **{**self.settings, **override})

    def sweep_settings(self) -> dict[str, Compressor]:
        """The RD sweep's compressors, each labelled by its overrides as JSON (``'{"crf": 15}'``)."""
        return {json.dumps(o, sort_keys=True): self.final_compressor(**o) for o in self.sweep}

    def anchor(self) -> dict[str, str]:
        """The anchor's ``codec``, ``preset`` (resolved, see ``anchor_preset``), ``chroma`` and ``tune``."""
        sparse = self.final_compressor().sparse
        preset = self.anchor_preset or (str(sparse.preset) if sparse.name == self.anchor_codec else None)
        return {"codec": self.anchor_codec,
                "preset": check_anchor(self.anchor_codec, preset, self.anchor_chroma, self.anchor_tune),
                "chroma": self.anchor_chroma, "tune": self.anchor_tune}

    # -- the kind ----------------------------------------------------------------------------------

    def folder_name(self) -> str:
        return f"{self.compressor}_guide"

    def arm_names(self) -> list[str]:
        rate = f"rate term ({self.rate_estimator}, λ={self.rate_weight:g})"
        if self.mode == "none":
            return ["no guidance", rate]
        return ["no guidance", f"{self.compressor} guidance" + (f" + {rate}" if self.rate_weight else "")]

    def guided_keys(self) -> tuple[str, ...]:
        """The config fields that determine the guided arm (its cache and checkpoint key)."""
        return GUIDED_KEYS + (RATE_KEYS if self.rate_weight else ())

    def rate_term(self) -> RateTerm | None:
        """The guided arm's rate term (None when ``rate_weight`` is 0)."""
        return RateTerm(self.rate_estimator, self.rate_weight, seed=self.seed) if self.rate_weight else None

    def decoded_models(self) -> int:
        return 4 if len(self.seed_list()) > 1 else 2  # both arms' (and the first seed's, with several seeds)

    def compressors(self) -> dict[str, Compressor]:
        found = {f"compressor={self.compressor!r}, settings={self.settings!r}": self.final_compressor()}
        for override in self.sweep:
            found[f"sweep setting {override!r}"] = self.final_compressor(**override)
        return found

    def final(self) -> tuple[str, Compressor]:
        return self.compressor, self.final_compressor()

    def guidance(self, video: Video) -> Guidance:
        """The guided arm's callback."""
        return Guidance(self.final_compressor(), self.period, video, mode=self.mode,
                        reset_optimizer=self.reset_optimizer, probe_pixels=self.probe_pixels, seed=self.seed,
                        drift=self.drift, codec_from=round(self.codec_from * self.steps), rate=self.rate_term())

    def timed_trainer(self, video: Video) -> Trainer | None:
        if self.mode == "reload" and not self.rate_weight:
            return None
        trainer = self.new_trainer(video)
        self.guidance(video).attach(trainer)  # quantized grids, the codec residual and/or the rate term
        return trainer

    def time_event(self, trainer: Trainer, video: Video) -> float:
        if self.mode == "none":
            return 0.0
        started = time.perf_counter()
        self.guidance(video).event(trainer)
        return time.perf_counter() - started

    def training_memory(self, model_config: NVPConfig) -> dict[str, int]:
        grids = sum(v for k, v in count_parameters(model_config).items() if k in GRIDS)
        found = {}
        if self.mode == "codec_ste":
            found["codec residual"] = RESIDUAL_BYTES * grids
            if self.drift:
                found["drift reference"] = FLOAT32 * grids
        if self.rate_weight:
            term = self.rate_term()
            draws = len(GRIDS) * term.samples * RATE_SAMPLE_BYTES if self.rate_estimator == "entropy" else 0
            found[f"rate term ({self.rate_estimator})"] = RATE_BYTES[self.rate_estimator] * grids + draws
        return found

    def stages(self, video: Video, timing: Timing) -> tuple[list[Stage], dict[str, float]]:
        seeds, per_seed = self._per_seed()
        frames = video.num_frames
        final = next(iter(timing.checks.values()))
        start = round(self.codec_from * self.steps)  # codec_ste's first refresh; none at the last step
        events = 0 if self.mode == "none" else (self.steps - 1 - start) // self.period + (self.mode == "codec_ste")
        event = timing.event or final
        base_name, guided_name = self.arm_names()
        cached = sum(baseline_path(self.for_seed(s) if self.seeds else self, video).exists() for s in self.seed_list())
        stages = [(base_name, (seeds - cached) * self.steps * timing.step,
                   f"{self.steps:,} steps{per_seed}" + (f" ({cached} cached)" if cached else "")),
                  (guided_name, seeds * (self.steps * (timing.guided_step or timing.step) + events * event),
                   f"{self.steps:,} steps, {events} events{' and drift refreshes' if self.drift else ''}{per_seed}"),
                  ("final compression and evaluation",
                   seeds * 2 * (final + frames * (timing.frame_ms_ssim + timing.frame)),
                   f"2 arms x (round trip + {frames} frames twice){per_seed}")]
        measured = {"guidance event": event}
        if self.sweep:
            sweep = sum(list(timing.checks.values())[1:]) + len(self.sweep) * frames * timing.frame
            stages.append(("RD sweep", seeds * 2 * sweep, f"2 arms x {len(self.sweep)} settings{per_seed}"))
        if self.anchor_crfs:
            measured["anchor frame"] = anchor = self._anchor_frame_seconds(video)
            stages.append(("anchor", len(self.anchor_crfs) * frames * anchor, f"{len(self.anchor_crfs)} crfs"))
        return stages, measured

    def _anchor_frame_seconds(self, video: Video) -> float:
        """Seconds to encode and decode one frame with the anchor (a few frames timed)."""
        clip = video.head(3)
        settings = self.anchor()
        started = time.perf_counter()
        stream = anchor_encode(clip, settings["codec"], sorted(self.anchor_crfs)[len(self.anchor_crfs) // 2],
                               settings["preset"], settings["chroma"], settings["tune"])
        for _ in anchor_decode(stream, clip, settings["codec"], settings["chroma"]):
            pass
        return (time.perf_counter() - started) / clip.num_frames

    def prepare(self, video: Video) -> dict[str, Any]:
        """The plain-codec anchor of the clip, measured once for every seed."""
        settings = self.anchor()
        curve = video_anchor(video, **settings, crfs=self.anchor_crfs, progress=False) if self.anchor_crfs else []
        return {"anchor": curve, "anchor_settings": settings}

    def run_seed(self, video: Video, live: Monitor | None, label: Callable[[str], str],
                 shared: dict[str, Any]) -> Results:
        out = Path(self.out_dir)
        base_name, guided_name = self.arm_names()
        started = time.perf_counter()

        def train_baseline(path: Path, key: str, heartbeat: Callable[[Trainer], Any]) -> Trainer:
            return train_arm(self, video, label(base_name), live=live,
                             checkpoint=Checkpoint(path, self.checkpoint_every), key=key, heartbeat=heartbeat)

        found = baseline(self, video, label(base_name), out, train_baseline, wait=False)  # None: another run trains it
        guidance = self.guidance(video)
        guided = train_arm(self, video, label(guided_name), live=live, guidance=guidance,
                           checkpoint=Checkpoint(out / "guided.pt", self.checkpoint_every),
                           key=arm_key(self, video, self.guided_keys()))
        base, base_path = found or baseline(self, video, label(base_name), out, train_baseline, wait=True)
        if live is not None:
            live.update(label(base_name), base.history)

        arms = {base_name: base, guided_name: guided}
        final, curves, decoded = {}, {}, {}
        for name, trainer in arms.items():
            result = self.final_compressor().roundtrip(trainer.model)
            decoded[name] = result.to_model(trainer.device)
            measured = evaluate(decoded[name], video, progress=False).to_dict()
            raw = evaluate(trainer.model, video, ms_ssim=False, progress=False)
            final[name] = {"bits": {**result.bits(), "container": container_bits(result)}, "bpp": result.bpp(video),
                           **{k: v for k, v in measured.items() if k not in ("shape", "seconds", "path", "note")},
                           "uncompressed_psnr": raw.psnr, "uncompressed_psnr_float": raw.psnr_float}
            if self.sweep:
                curves[name] = rd_sweep(trainer.model, video, self.sweep_settings(), progress=False)
        first = final[base_name]
        table = [{"method": name, "bpp": f["bpp"], "psnr": f["psnr"], "psnr_float": f["psnr_float"],
                  "yuv_psnr": f["yuv_psnr"], "delta_bpp": f["bpp"] - first["bpp"],
                  "delta_psnr": f["psnr"] - first["psnr"]}
                 for name, f in final.items()]
        return Results(
            kind=self.kind, config=self.to_dict(), video=video_record(video),
            arms={name: {"history": t.history, "train_seconds": t.elapsed} for name, t in arms.items()},
            table=table, events=guidance.events, final=final, rd=curves, metrics=dict(METRICS),
            bd=bd_metrics(curves[base_name], curves[guided_name]) if self.sweep else {},
            checkpoints={base_name: str(base_path), guided_name: str(out / "guided.pt")},
            seconds=time.perf_counter() - started, plot_seconds=getattr(live, "plot_seconds", 0.0),
            provenance=provenance(guided.device), trainers=arms, decoded=decoded, clip=video, **shared)
