"""Compression-guided training: compress the latent grids every ``period`` steps and train on.

``Guidance`` is a ``Trainer`` callback. Every ``period`` steps (but not at the last one,
where the final compression follows) it round-trips the grids
(``xy``, ``xt``, ``yt``, sparse) through a compressor, loads the decoded values into the
live model in place (the optimizer keeps its state unless ``reset_optimizer``), and
records the event: step, bits and bpp, PSNR just before and just after (on a fixed
random set of pixels), seconds spent. In ``straight_through`` mode the forward pass also
sees 8-bit quantized grids at every step (gradients pass straight through).

``run_experiment`` trains the arms of the published experiment with the same seed,
data, steps and schedule (the no-guidance arm cached on disk by its parameters; both arms
checkpointed, and resumed when a run is repeated with the same parameters), then
compresses both with the same final compressor, evaluates every frame, sweeps both
over a range of settings with the plain-x265 curve beside them, and reports
Bjøntegaard deltas, a table and ``results.json``.
"""
from __future__ import annotations

import hashlib
import json
import math
import platform
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import bjontegaard
import numpy as np
import torch

from . import __version__
from ._device import resolve_device
from ._files import Claim, atomic_path, publish
from ._runs import check_out_dir, git_commit, parse_value
from .compress import Compressor, make_compressor, rd_figure, rd_sweep, video_anchor
from .compress.compressor import COMPRESSORS
from .data import Video, load_video
from .live import LivePlot, figure_png
from .model import NVP
from .render import chunk_for, evaluate
from .train import CHECKPOINT_FORMAT, Checkpoint, PixelSampler, Trainer

__all__ = ["Guidance", "PixelProbe", "ExperimentConfig", "GuideConfig", "run_experiment", "bd_metrics",
           "format_table", "parse_numbers"]

GRIDS = ("xy", "xt", "yt", "sparse")
MODES = ("reload", "straight_through")


class PixelProbe:
    """PSNR of a model on a fixed random set of pixels (drawn with replacement; every pixel once
    when the video has fewer): ``10 log10(1 / MSE)`` of the clamped prediction against
    frames / 255. Built from a video, or from a trainer's sampler to share its copy of the frames."""

    def __init__(self, source: Video | PixelSampler, pixels: int = 2**18, seed: int = 0,
                 device: torch.device | str = "cpu"):
        sampler = source if isinstance(source, PixelSampler) else PixelSampler(source, torch.device(device), seed)
        frames = sampler.frames  # [T*H*W, 3] uint8, on the GPU or in (pinned) host memory
        generator = torch.Generator(device=frames.device).manual_seed(seed)
        if pixels >= frames.shape[0]:
            index = torch.arange(frames.shape[0], device=frames.device)
        else:
            index = torch.randint(frames.shape[0], (pixels,), generator=generator, device=frames.device)
        self.coords, self.steps = sampler.coords(index.to(sampler.device))
        self.target = frames[index].to(sampler.device).float() / 255  # [N, 3]

    @torch.inference_mode()
    def psnr(self, model: NVP, chunk: int | None = None) -> float:
        """PSNR in dB over the probe's pixels, ``chunk`` pixels per forward pass (default by device)."""
        chunk = chunk or chunk_for(self.target.device)
        error = torch.zeros((), device=self.target.device, dtype=torch.float64)
        for lo in range(0, len(self.target), chunk):
            out = model(self.coords[lo:lo + chunk], self.steps[lo:lo + chunk])
            error += ((out + 1) / 2).clamp(0, 1).sub(self.target[lo:lo + chunk]).square().sum()
        return 10 * math.log10(self.target.numel() / max(error.item(), 1e-20))


class Guidance:
    """Trainer callback for compression-guided training (see the module docstring)."""

    def __init__(self, compressor: Compressor, period: int, video: Video, *, mode: str = "reload",
                 reset_optimizer: bool = False, probe_pixels: int = 2**18, seed: int = 0):
        if isinstance(period, bool) or not isinstance(period, int) or period < 1:
            raise ValueError(f"Guidance: period must be an int >= 1, got {period!r}")
        if mode not in MODES:
            raise ValueError(f"Guidance: mode={mode!r} is not allowed; use one of {list(MODES)}")
        self.compressor, self.period, self.video = compressor, period, video
        self.mode, self.reset_optimizer = mode, reset_optimizer
        self.probe_pixels, self.seed = probe_pixels, seed
        self.events: list[dict[str, Any]] = []
        self._probe: PixelProbe | None = None

    def attach(self, trainer: Trainer) -> None:
        """Prepare a trainer (straight-through quantization of its grids in that mode)."""
        self._fake_quant(trainer, 8 if self.mode == "straight_through" else None)

    def detach(self, trainer: Trainer) -> None:
        """Undo ``attach``: the grids are read as they are again."""
        self._fake_quant(trainer, None)

    @staticmethod
    def _fake_quant(trainer: Trainer, bits: int | None) -> None:
        for name in GRIDS:
            trainer.model.grids()[name].fake_quant_bits = bits

    def __call__(self, trainer: Trainer) -> None:
        # no event at the planned last step: the final compression is the run's last round trip
        if trainer.step_count % self.period or trainer.step_count >= trainer.config.steps:
            return
        started = time.perf_counter()
        if self._probe is None:
            self._probe = PixelProbe(trainer.sampler, self.probe_pixels, self.seed)
        before = self._probe.psnr(trainer.model)
        result = self.compressor.roundtrip(trainer.model)
        result.load_into(trainer.model, parts=GRIDS)
        if self.reset_optimizer:
            trainer.optimizer.state.clear()
        after = self._probe.psnr(trainer.model)
        bits = result.bits()
        self.events.append({"step": trainer.step_count, "bits": bits["total"], "bpp": result.bpp(self.video),
                            "psnr_before": before, "psnr_after": after,
                            "seconds": time.perf_counter() - started})


# -- the experiment -------------------------------------------------------------------------------------

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
    device: str = "auto"
    """'auto', 'cpu', 'cuda' or 'cuda:N'."""
    log_every: int = 250
    """Steps between logged loss points."""
    out_dir: str = "runs/experiment"
    """Where results.json and the figures go."""
    overwrite: bool = False
    """Allow replacing results in out_dir made with other parameters."""

    def _check_ints(self, *names: str) -> None:
        for name in ("num_frames", "downscale", "steps", "batch", "log_every", *names):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{type(self).__name__}.{name} must be an int >= 1, got {value!r}")

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self)))


@dataclass(frozen=True)
class GuideConfig(ExperimentConfig):
    """One guided-training experiment: the shared settings, plus guidance and evaluation."""

    period: int = 5_000
    """Steps between guidance events (published: 10,000 for HEVC, 5,000 for Tucker)."""
    compressor: str = "hevc"
    """Guidance and final compressor preset: 'hevc', 'h264', 'av1', 'tucker', 'quantize'."""
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
    probe_pixels: int = 2**18
    """Pixels of the fixed set on which event PSNRs are measured."""
    checkpoint_every: int = 5_000
    """Steps between checkpoints of each arm: a crash or kill costs at most this many; a re-run with
    the same parameters resumes."""
    out_dir: str = "runs/guide"
    """Where results.json, the figures and the guided arm's checkpoint go (and the no-guidance arm's
    while it trains; finished, it moves to ``cache_dir``)."""
    cache_dir: str = "runs/cache"
    """Where the no-guidance arm is cached, keyed by everything that determines it (with a ``.lock``
    file naming the run that trains it meanwhile); runs that share it need a shared filesystem."""

    def __post_init__(self) -> None:
        self._check_ints("period", "probe_pixels", "checkpoint_every")
        if self.period >= self.steps:
            raise ValueError(f"GuideConfig.period={self.period} must be smaller than steps={self.steps}: no "
                             "guidance event would happen before the final compression")
        if self.compressor not in COMPRESSORS:
            raise ValueError(f"GuideConfig.compressor={self.compressor!r} is not allowed; use one of "
                             f"{sorted(COMPRESSORS)}")
        if self.mode not in MODES:
            raise ValueError(f"GuideConfig.mode={self.mode!r} is not allowed; use one of {list(MODES)}")
        make_compressor(self.compressor, **self.settings)  # validates the settings now, not hours later
        for override in self.sweep:
            make_compressor(self.compressor, **{**self.settings, **override})

    @classmethod
    def codec(cls, *, codec: str = "hevc", crf: int = 21, qscale: str | tuple = "2,3,3", framerate: float = 25,
              preset: str = "slow", sweep_crfs: str | tuple = "15,21,27,33,39",
              anchor_crfs: str | tuple = "20,26,32,38,44", **common: Any) -> "GuideConfig":
        """Codec guidance from notebook parameters (``qscale`` and the crf lists as "2,3,3" strings)."""
        settings = {"crf": crf, "qscale": parse_numbers(qscale, "qscale"), "framerate": framerate}
        if codec != "av1":
            settings["preset"] = preset
        sweep = tuple({"crf": c} for c in parse_numbers(sweep_crfs, "sweep_crfs"))
        return cls(compressor=codec, settings=settings, sweep=sweep,
                   anchor_crfs=parse_numbers(anchor_crfs, "anchor_crfs"), **common)

    @classmethod
    def tucker(cls, *, ranks: str | tuple = "0.8,0.8,0.8", storage: str = "float32",
               sweep_ranks: str | tuple = "0.4,0.6,0.8,0.9", anchor_crfs: str | tuple = "20,26,32,38,44",
               **common: Any) -> "GuideConfig":
        """Tucker guidance from notebook parameters: ``ranks`` as "480,240,240" or as fractions of the
        sparse grid's modes, "0.8,0.8,0.8" (the published ranks on NVP-S); ``sweep_ranks`` are
        fractions applied to every mode."""
        sweep = tuple({"ranks": (f, f, f)} for f in parse_numbers(sweep_ranks, "sweep_ranks"))
        return cls(compressor="tucker", settings={"ranks": parse_numbers(ranks, "ranks"), "storage": storage},
                   sweep=sweep, anchor_crfs=parse_numbers(anchor_crfs, "anchor_crfs"), **common)

    def final_compressor(self, **override: Any) -> Compressor:
        return make_compressor(self.compressor, **{**self.settings, **override})


def parse_numbers(text: str | tuple | list | int | float, name: str) -> tuple:
    """ "2,3,3" -> (2, 3, 3); "0.8,0.8" -> (0.8, 0.8); sequences and single numbers pass through."""
    if isinstance(text, (int, float)):
        return (text,)
    if isinstance(text, (tuple, list)):
        return tuple(text)
    values = tuple(parse_value(t) for t in str(text).replace(" ", "").split(",") if t)
    if any(isinstance(v, str) for v in values):
        raise ValueError(f"{name}={text!r} is not allowed; give comma-separated numbers, e.g. '2,3,3'")
    return values


def _video_key(video: Video) -> str:
    return hashlib.sha256(np.ascontiguousarray(video.frames).data).hexdigest()[:16]


def _arm_key(cfg: GuideConfig, video: Video, names: set[str]) -> str:
    """Hash of everything that determines an arm's training (and the video and device)."""
    keyed = {k: v for k, v in cfg.to_dict().items() if k in names}
    keyed.update(video=_video_key(video), device=resolve_device(cfg.device).type, format=CHECKPOINT_FORMAT)
    return hashlib.sha256(json.dumps(keyed, sort_keys=True).encode()).hexdigest()[:20]


_BASELINE_KEYS = {"config", "steps", "batch", "lr", "seed", "log_every"}
_GUIDED_KEYS = _BASELINE_KEYS | {"period", "compressor", "settings", "mode", "reset_optimizer", "probe_pixels"}


def _train_arm(cfg: GuideConfig, video: Video, guidance: Guidance | None, live: LivePlot | None, label: str,
               path: Path, key: str, heartbeat: Callable[[Trainer], Any] | None = None) -> Trainer:
    """Train one arm, checkpointing to ``path``; a checkpoint of the same arm there is resumed.
    ``heartbeat`` is called after every step."""
    trainer = None
    if path.exists():
        trainer = Trainer.load(path, video, device=cfg.device)
        if trainer.extra.get("arm_key") != key:
            if not cfg.overwrite:
                raise FileExistsError(f"{str(path)!r} holds a run with other parameters; set overwrite=True or "
                                      "choose another out_dir")
            trainer = None
        else:
            print(f"{label}: resuming from step {trainer.step_count} of {cfg.steps} ({path})")
    if trainer is None:
        trainer = Trainer.from_config(video, cfg.config, steps=cfg.steps, batch=cfg.batch, lr=cfg.lr,
                                      seed=cfg.seed, device=cfg.device, log_every=cfg.log_every)
        trainer.extra["arm_key"] = key
    callbacks = []
    if guidance is not None:
        guidance.events = trainer.extra.setdefault("events", [])  # saved with every checkpoint
        guidance.attach(trainer)
        callbacks.append(guidance)
    callbacks.append(Checkpoint(path, cfg.checkpoint_every))
    if heartbeat is not None:
        callbacks.append(heartbeat)
    if live is not None:
        live.update(label, trainer.history, guidance.events if guidance else ())
        callbacks.append(live.callback(label, guidance.events if guidance else ()))
    trainer.train(callbacks=callbacks)
    if guidance is not None:
        guidance.detach(trainer)
    if live is not None:
        live.update(label, trainer.history, guidance.events if guidance else ())
    return trainer


_POLL_S = 10.0  # seconds between looks at the cache while another run trains the no-guidance arm


def _baseline(cfg: GuideConfig, video: Video, live: LivePlot | None, label: str, out: Path, *, wait: bool
              ) -> tuple[Trainer, Path] | None:
    """The no-guidance arm: from the cache when the same parameters trained it before, else trained
    here, in this run's ``out`` folder (resumed there after a kill), and moved to the cache only
    when finished. Runs in parallel (a sweep) train it once: a claim next to the cache file names
    the run training it, and the others return None (``wait=False``, so they can train their
    guided arm meanwhile) or wait for it, taking it over if that run dies."""
    key = _arm_key(cfg, video, _BASELINE_KEYS)
    path = Path(cfg.cache_dir) / f"baseline-{key}.pt"
    claim = Claim(path.with_name(f"baseline-{key}.lock"))
    waiting = False
    while True:
        trainer = _cached_arm(path, video, cfg)
        if trainer is None and claim.acquire():
            try:
                trainer = _cached_arm(path, video, cfg)  # finished meanwhile by the run that held the claim
                if trainer is None:
                    if path.exists():
                        print(f"{label}: the cached {path} is unfinished; training it again")
                    trainer = _train_arm(cfg, video, None, live, label, out / "baseline.pt", key, claim.refresh)
                    return trainer, publish(out / "baseline.pt", path)
            finally:
                claim.release()
        if trainer is not None:
            print(f"{label}: loaded from the cache {path}")
            if live is not None:
                live.update(label, trainer.history)
            return trainer, path
        holder = claim.holder()
        who = f"process {holder.get('pid')} on {holder.get('host')}" if holder else "another run"
        if not wait:
            print(f"{label}: {who} is training it ({claim.path}); the guided arm goes first")
            return None
        if not waiting:
            print(f"{label}: waiting for {who} to finish it ({claim.path})")
            waiting = True
        time.sleep(_POLL_S)


def _cached_arm(path: Path, video: Video, cfg: GuideConfig) -> Trainer | None:
    """The cached arm at ``path`` if it exists and ran all ``cfg.steps``."""
    if not path.exists():
        return None
    trainer = Trainer.load(path, video, device=cfg.device)
    return trainer if trainer.step_count == cfg.steps else None


def _overlap(a: list[float], b: list[float]) -> float:
    """Overlap of two value ranges as a fraction of the narrower one."""
    width = min(max(a) - min(a), max(b) - min(b))
    return (min(max(a), max(b)) - max(min(a), min(b))) / width if width > 0 else 0.0


def bd_metrics(anchor: list[dict], test: list[dict], min_overlap: float = 0.5,
               min_rate_span: float = 0.05) -> dict[str, Any]:
    """BD-rate (%) and BD-PSNR (dB) of ``test`` against ``anchor`` (rows with bpp and psnr), with the
    ``bjontegaard`` package (Akima interpolation; PCHIP with three points). Each needs three or
    more points per curve. BD-rate is reported when the PSNR ranges overlap by ``min_overlap`` of
    the narrower one; BD-PSNR when the log-rate ranges do and each curve spans at least
    ``min_rate_span`` in log rate (a near-vertical curve makes BD-PSNR a measure of its slope)."""
    def curve(rows: list[dict]) -> list[dict]:  # by rate, one point per rate (the best), as BD needs
        best: dict[float, dict] = {}
        for r in rows:
            if r["bpp"] not in best or r["psnr"] > best[r["bpp"]]["psnr"]:
                best[r["bpp"]] = r
        return [best[k] for k in sorted(best)]

    a, t = curve(anchor), curve(test)
    if len(a) < 3 or len(t) < 3:
        return {"bd_rate": None, "bd_psnr": None, "notes": ["needs three or more distinct rates per curve"]}
    for name, rows in (("anchor", a), ("test", t)):
        if any(q["psnr"] <= p["psnr"] for p, q in zip(rows, rows[1:])):
            return {"bd_rate": None, "bd_psnr": None,
                    "notes": [f"the {name} curve's PSNR does not rise with rate: no BD metrics"]}
    pa, pt = [r["psnr"] for r in a], [r["psnr"] for r in t]
    la, lt = [math.log(r["bpp"]) for r in a], [math.log(r["bpp"]) for r in t]
    method = "akima" if min(len(a), len(t)) >= 4 else "pchip"
    args = ([r["bpp"] for r in a], pa, [r["bpp"] for r in t], pt)
    out: dict[str, Any] = {"bd_rate": None, "bd_psnr": None, "method": method, "psnr_overlap": _overlap(pa, pt),
                           "rate_overlap": _overlap(la, lt), "notes": []}
    span = min(max(la) - min(la), max(lt) - min(lt))
    checks = {
        "bd_rate": (bjontegaard.bd_rate, out["psnr_overlap"] >= min_overlap,
                    f"PSNR ranges overlap {out['psnr_overlap']:.0%} < {min_overlap:.0%}: no BD-rate"),
        "bd_psnr": (bjontegaard.bd_psnr, out["rate_overlap"] >= min_overlap and span >= min_rate_span,
                    f"rate ranges overlap {out['rate_overlap']:.0%}, span {span:.1%} in log rate: no BD-PSNR "
                    f"(needs >= {min_overlap:.0%} and >= {min_rate_span:.0%})"),
    }
    for key, (measure, ok, why) in checks.items():
        if not ok:
            out["notes"].append(why)
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                value = float(measure(*args, method=method, require_matching_points=False, min_overlap=0))
        except (ValueError, AssertionError) as err:  # the package's own checks on the curves
            out["notes"].append(f"{key}: not computed ({err or type(err).__name__})")
            continue
        if math.isfinite(value):
            out[key] = value
        else:
            out["notes"].append(f"{key}: interpolation failed")
    return out


def run_experiment(cfg: GuideConfig, live: LivePlot | None = None, *, arm_names: tuple[str, str] | None = None
                   ) -> dict[str, Any]:
    """Train the no-guidance and guided arms, compress both with the final compressor, evaluate
    every frame, sweep both, and write ``results.json`` and the figures into ``cfg.out_dir``.
    Returns the results dict (also holding the two trainers under ``"trainers"``)."""
    out = check_out_dir(cfg.out_dir, cfg.to_dict(), cfg.overwrite)
    video = load_video(cfg.dataset, cfg.num_frames, downscale=cfg.downscale)
    base_name, guided_name = arm_names or ("no guidance", f"{cfg.compressor} guidance")
    started = time.perf_counter()
    baseline = _baseline(cfg, video, live, base_name, out, wait=False)  # None: another run is training it
    guidance = Guidance(cfg.final_compressor(), cfg.period, video, mode=cfg.mode,
                        reset_optimizer=cfg.reset_optimizer, probe_pixels=cfg.probe_pixels, seed=cfg.seed)
    guided = _train_arm(cfg, video, guidance, live, guided_name, out / "guided.pt",
                        _arm_key(cfg, video, _GUIDED_KEYS))
    baseline, baseline_path = baseline or _baseline(cfg, video, live, base_name, out, wait=True)

    arms = {base_name: baseline, guided_name: guided}
    final, curves = {}, {}
    for name, trainer in arms.items():
        result = cfg.final_compressor().roundtrip(trainer.model)
        model = result.to_model(trainer.device)
        final[name] = {"bits": result.bits(), "bpp": result.bpp(video),
                       **{k: v for k, v in evaluate(model, video, progress=False).to_dict().items()
                          if k in ("psnr", "ms_ssim", "psnr_per_frame")},
                       "uncompressed_psnr": evaluate(trainer.model, video, ms_ssim=False, progress=False).psnr}
        if cfg.sweep:
            settings = {json.dumps(o, sort_keys=True): cfg.final_compressor(**o) for o in cfg.sweep}
            curves[name] = rd_sweep(trainer.model, video, settings, progress=False)
    anchor = video_anchor(video, "hevc", cfg.anchor_crfs, progress=False) if cfg.anchor_crfs else []
    bd = bd_metrics(curves[base_name], curves[guided_name]) if cfg.sweep else {}

    base = final[base_name]
    table = [{"method": name, "bpp": f["bpp"], "psnr": f["psnr"], "delta_bpp": f["bpp"] - base["bpp"],
              "delta_psnr": f["psnr"] - base["psnr"]} for name, f in final.items()]
    figures = {}
    if live is not None:
        live.save(out / "curves.html", out / "curves.png")
        figures["curves"] = ["curves.html", "curves.png"]
    if curves:
        rd = rd_figure({**curves, **({"x265 on the video": anchor} if anchor else {})},
                       title=f"final {cfg.compressor} compression of both arms")
        rd.write_html(out / "rd.html", include_plotlyjs=True)
        figure_png(rd, out / "rd.png")
        figures["rd"] = ["rd.html", "rd.png"]
    results = {
        "config": cfg.to_dict(), "video": {"name": video.name, "shape": list(video.frames.shape),
                                           "sha256_16": _video_key(video)},
        "arms": {name: {"history": t.history, "train_seconds": t.elapsed} for name, t in arms.items()},
        "events": guidance.events, "final": final, "table": table, "rd": curves, "anchor": anchor, "bd": bd,
        "figures": figures, "checkpoints": {base_name: str(baseline_path), guided_name: str(out / "guided.pt")},
        "seconds": time.perf_counter() - started,
        "plot_seconds": live.plot_seconds if live is not None else 0.0,
        "versions": {"nvpkit": __version__, "torch": torch.__version__, "python": platform.python_version()},
        "git_commit": git_commit(),
        "device": torch.cuda.get_device_name(guided.device) if guided.device.type == "cuda"
        else f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)",
    }
    with atomic_path(out / "results.json") as tmp:
        tmp.write_text(json.dumps(results, indent=1))
    return {**results, "trainers": arms}


def format_table(table: list[dict], bd: dict | None = None) -> str:
    """The results table in the seed notes' shape, as markdown."""
    lines = ["| method | bpp | PSNR (dB) | Δbpp | ΔPSNR (dB) |", "|---|---|---|---|---|"]
    for row in table:
        lines.append(f"| {row['method']} | {row['bpp']:.4f} | {row['psnr']:.2f} | {row['delta_bpp']:+.4f} "
                     f"| {row['delta_psnr']:+.2f} |")
    if bd:
        parts = [f"BD-rate {bd['bd_rate']:+.2f} %" if bd.get("bd_rate") is not None else None,
                 f"BD-PSNR {bd['bd_psnr']:+.3f} dB" if bd.get("bd_psnr") is not None else None]
        shown = ", ".join(p for p in parts if p)
        if shown:
            lines.append(f"\n{shown} (guided against no guidance, {bd['method']})")
        for note in bd.get("notes", []):
            lines.append(f"\n{note}")
    return "\n".join(lines)


