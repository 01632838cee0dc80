"""The command line: ``python -m nvpkit COMMAND`` (or ``nvpkit COMMAND``).

    train | guide | init      run an experiment of that kind: its plan, the run (resumed when repeated),
                              results.json, the table and the figures; the same as its notebook
    plan KIND                 the plan alone: memory, disk, batch, measured times, estimated stages
    compress RUN              a trained model through a compressor into an artifact
    decode ARTIFACT           an artifact decoded and evaluated against its clip
    sweep NOTEBOOK            a notebook over a grid of parameters on Ray
    data fetch|list|path      datasets by name (UVG)
    notebooks DIR             copies of nvpkit's notebooks

The options of the experiment commands are generated from the fields of their configs
(``ExperimentConfig``, ``GuideConfig``, ``InitConfig``): the same names, defaults and help texts
as the notebooks' parameters. Every error ends in one line and a non-zero exit status.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
import typing
from pathlib import Path
from typing import Any

from ._resources import NOTEBOOKS_DIR
from ._version import __version__

__all__ = ["main", "build_parser"]

EXIT_ERROR = 1
"""Exit status of every reported error (argparse's usage errors exit with 2)."""
EXIT_INTERRUPTED = 130


def _option(name: str) -> str:
    return "--" + name.replace("_", "-")


def _shown(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value) or "none"
    return repr(value) if isinstance(value, str) else str(value)


def _add_config_options(parser: argparse.ArgumentParser, cls: type) -> None:
    """One option per field of the config ``cls``, with the field's docstring as help; ``GuideConfig``
    also gets its compressor settings (``--crf``) and RD sweeps (``--sweep-crfs``)."""
    from .experiments import field_docs

    docs, hints = field_docs(cls), typing.get_type_hints(cls)
    fixed = parser.add_argument_group(f"{cls.__name__} ({cls.kind})")
    for f in dataclasses.fields(cls):
        if f.name in ("settings", "sweep"):
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        text = f"{docs.get(f.name, '')} (default: {_shown(default)})".replace("%", "%%")
        if hints[f.name] is bool:
            fixed.add_argument(_option(f.name), action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS,
                               help=text)
        else:
            fixed.add_argument(_option(f.name), default=argparse.SUPPRESS, metavar=f.name.upper(), help=text)
    if "settings" in hints:
        from .compress import COMPRESSORS, SETTING_HELP, preset_settings

        settings = parser.add_argument_group("compressor settings (of the chosen --compressor)")
        takes: dict[str, list[str]] = {}
        for name in COMPRESSORS:
            for setting in preset_settings(name):
                takes.setdefault(setting, []).append(name)
        for setting, names in takes.items():
            settings.add_argument(_option(setting), default=argparse.SUPPRESS, metavar="VALUE",
                                  help=f"{SETTING_HELP[setting]} ({', '.join(names)})")
            swept = f"sweep_{setting}" if setting.endswith("s") else f"sweep_{setting}s"
            settings.add_argument(_option(swept), default=argparse.SUPPRESS, metavar="V1,V2,...",
                                  help=f"the final RD sweep of both arms over these values of {setting}")
        settings.add_argument(_option("sweep_ladder"), default=argparse.SUPPRESS, metavar="'S=V S=V; S=V S=V'",
                              help="the final RD sweep over points that set several settings at once, e.g. "
                                   "'crf=15 qscale=1,2,2; crf=27 qscale=3,5,5' (replaces a --sweep-<setting>)")


def _config(cls: type, args: argparse.Namespace):
    """The config from the options given (the others keep the config's defaults)."""
    params = {k: v for k, v in vars(args).items() if k not in ("command", "handler", "kind")}
    if "compressor" in {f.name for f in dataclasses.fields(cls)}:
        from .compress import COMPRESSORS, preset_settings

        compressor = params.get("compressor", cls.compressor)
        if compressor in COMPRESSORS:  # an unknown one is named by the config
            accepted = preset_settings(compressor)
            others = {s for n in COMPRESSORS for s in preset_settings(n)} - set(accepted)
            given = [k for k in params if k in others or k.startswith("sweep_")
                     and {k[6:], k[6:-1]} & others]
            if given:
                raise ValueError(f"{', '.join(_option(k) for k in given)} is not a setting of compressor="
                                 f"{compressor!r}; it takes {', '.join(_option(s) for s in accepted)}")
    return cls.from_params(params)


def _experiment(args: argparse.Namespace) -> None:
    """``train``, ``guide``, ``init``: the plan, the run, the table and the figures."""
    from .experiments import KINDS, plan, run_experiment, seed_label

    cfg = _config(KINDS[args.command], args)
    video = cfg.load_video()
    print(plan(cfg, video), flush=True)  # refuses, with the numbers, what does not fit
    results = run_experiment(cfg, video=video)
    try:
        from .viz import FrameViewer, LivePlot, format_events, format_results, save_experiment_figures
    except ImportError:  # the notebook extra is not installed: the numbers alone
        print(json.dumps(results.table, indent=1))
        print(f"results.json in {results.out_dir} (figures need `pip install nvpkit[notebook]`)")
        return
    curves = LivePlot(cfg.arm_names(), seeds=cfg.seeds, widget=False)  # as the notebook's live plot ends
    for run in results.per_seed():
        for arm, record in run.arms.items():
            label = seed_label(arm, run.config["seed"]) if cfg.seeds else arm
            curves.update(label, record["history"], run.events if arm == cfg.arm_names()[-1] else ())
    figures = save_experiment_figures(results, curves)
    if results.decoded:  # what the notebook's frame viewer saves
        figures["frames"] = FrameViewer.for_experiment(results).save(results.out_dir)
    print(format_results(results))
    if results.events:
        print(format_events(results))
    print(f"results.json and {', '.join(f for files in figures.values() for f in files)} in {results.out_dir}")


def _plan(args: argparse.Namespace) -> None:
    from .experiments import KINDS, plan

    print(plan(_config(KINDS[args.kind], args)))


def _clip_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", default=None, help="the clip ('sample', 'uvg/NAME', a path); default: the "
                        "run's own (from its results.json), else the experiments' default")
    parser.add_argument("--num-frames", type=int, default=None, help="frames of the clip (default: as --dataset)")
    parser.add_argument("--downscale", type=int, default=None, help="area downscale (default: as --dataset)")
    parser.add_argument("--device", default="auto", help="'auto', 'cpu', 'cuda', 'cuda:N' (default: 'auto')")


def _clip(args: argparse.Namespace, config: dict[str, Any] | None = None):
    """The clip the options name, else the run's (its results.json), else the configs' default."""
    from .data import load_video
    from .experiments import ExperimentConfig

    config = config or {}
    return load_video(args.dataset or config.get("dataset", ExperimentConfig.dataset),
                      args.num_frames or config.get("num_frames", ExperimentConfig.num_frames),
                      downscale=args.downscale or config.get("downscale", ExperimentConfig.downscale))


def _compress(args: argparse.Namespace) -> None:
    """A run folder's (or a checkpoint's) model through a compressor into an artifact."""
    from .compress import make_compressor, save_compressed
    from .experiments import Results, parse_setting
    from .rendering import evaluate
    from .train import Trainer

    source = Path(args.source)
    config: dict[str, Any] = {}
    if source.is_dir():
        results = Results.load(source / "results.json")
        config = results.config
        arms = results.per_seed()[0].checkpoints
        arm = args.arm or list(arms)[-1]
        if arm not in arms:
            raise ValueError(f"--arm {arm!r} is not an arm of {str(source)!r}; its arms are {list(arms)}")
        source = Path(arms[arm])
    video = _clip(args, config)
    trainer = Trainer.load(source, video, device=args.device)
    settings = dict(_pair(s) for s in args.setting)
    result = make_compressor(args.compressor, **{k: parse_setting(v) for k, v in settings.items()}
                             ).roundtrip(trainer.model)
    info = save_compressed(result, args.out, overwrite=args.overwrite)
    measured = evaluate(result.to_model(trainer.device), video, ms_ssim=False)
    print(f"{args.out}: {info['file_bytes']:,} bytes, {result.bpp(video):.4f} bpp; PSNR {measured.psnr:.2f} dB "
          f"(float {measured.psnr_float:.2f}) after decoding {video}")


def _pair(text: str) -> tuple[str, str]:
    """``"crf=21"`` -> ``("crf", "21")``: a ``--setting`` of ``compress``, a ``--grid`` or ``--set`` of ``sweep``."""
    name, equals, value = text.partition("=")
    if not equals or not name.strip():
        raise ValueError(f"{text!r} is not NAME=VALUE (e.g. crf=21, qscale=2,3,3)")
    return name.strip(), value.strip()


def _decode(args: argparse.Namespace) -> None:
    from .compress import load_compressed
    from .rendering import evaluate

    video = _clip(args)
    model, result = load_compressed(args.artifact, device=args.device)
    measured = evaluate(model, video, write=args.write, overwrite=args.overwrite)
    written = f"; reconstruction: {args.write}" if args.write else ""
    print(f"{args.artifact}: {result.bpp(video):.4f} bpp; PSNR {measured.psnr:.2f} dB (float {measured.psnr_float:.2f}), "
          f"YUV PSNR {measured.yuv_psnr:.2f} dB on {video}{written}")


def _sweep(args: argparse.Namespace) -> None:
    from . import sweeps
    from ._files import runs_root

    grid = sweeps.parse_grid(**dict(_pair(a) for a in args.grid))
    fixed = dict(_pair(s) for s in args.set)
    compared = sweeps.parse_compare(args.compare, grid)
    out = args.out or str(runs_root() / "sweep")
    result = sweeps.sweep(args.notebook, grid, out, parameters=fixed, address=args.address, num_cpus=args.num_cpus,
                          cpus_per_job=args.cpus_per_job, retries=args.retries)
    print(f"{len(result['done'])} ran, {len(result['skipped'])} skipped, {len(result['failed'])} failed")
    from .viz import format_differences, format_sweep_table

    print(format_sweep_table(result["table"]))
    if compared:
        print(format_differences(sweeps.sweep_differences(result["records"], *compared)))
    sweeps.save_figures(result["records"], out)
    if result["failed"]:
        raise ValueError(f"{len(result['failed'])} of the sweep's {len(result['failed']) + len(result['done'])} jobs "
                         "failed (see above); the same command runs only what is missing")


def _data(args: argparse.Namespace) -> None:
    from . import datasets

    if args.action == "list":
        for name, clip in datasets.DATASETS.items():
            try:
                where = str(datasets.dataset_path(name))
            except FileNotFoundError:
                where = "not fetched"
            print(f"{name:16s} {clip.frames} frames of {clip.width}x{clip.height}, {clip.fps:g} fps, "
                  f"{clip.archive_bytes / 2**20:,.0f} MiB to download: {where}")
        print(f"cache: {datasets.data_root()} (${datasets.DATA_ENV} sets it)")
        return
    if not args.names:
        raise ValueError(f"data {args.action}: name the datasets, e.g. uvg/Jockey (known: {sorted(datasets.DATASETS)})")
    names = [n for a in args.names for n in (sorted(k for k in datasets.DATASETS if k.startswith("uvg/"))
                                              if a == "uvg" else [a])]
    for name in names:
        path = datasets.fetch(name) if args.action == "fetch" else datasets.dataset_path(name)
        print(f"{name}: {path}")


def _notebooks(args: argparse.Namespace) -> None:
    target = Path(args.folder)
    target.mkdir(parents=True, exist_ok=True)
    sources = sorted(NOTEBOOKS_DIR.glob("*.ipynb"))
    clashes = [s.name for s in sources if (target / s.name).exists()]
    if clashes and not args.overwrite:
        raise FileExistsError(f"{str(target)!r} already holds {', '.join(clashes)}; pass --overwrite to replace them")
    for source in sources:
        shutil.copyfile(source, target / source.name)
    print(f"{len(sources)} notebooks in {target}: {', '.join(s.name for s in sources)}")


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command (``--help`` of each lists its options with their help)."""
    from .experiments import KINDS

    parser = argparse.ArgumentParser(prog="nvpkit", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n")[1])
    parser.add_argument("--version", action="version", version=f"nvpkit {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for kind, cls in KINDS.items():
        summary = " ".join(cls.__doc__.split("\n\n")[0].split())
        sub = commands.add_parser(kind, help=summary, description=summary)
        _add_config_options(sub, cls)
        sub.set_defaults(handler=_experiment)
    planned = commands.add_parser("plan", help="the plan of an experiment, without running it")
    kinds = planned.add_subparsers(dest="kind", required=True, metavar="KIND")
    for kind, cls in KINDS.items():
        _add_config_options(kinds.add_parser(kind, help=f"the plan of `nvpkit {kind}`"), cls)
    planned.set_defaults(handler=_plan)

    compress = commands.add_parser("compress", help="compress a trained model into an artifact (.nvp)")
    compress.add_argument("source", help="a run folder (its results.json names the clip and checkpoints) or a "
                          "checkpoint file")
    compress.add_argument("--arm", default=None, help="which arm of a run folder (default: the last, e.g. the guided)")
    compress.add_argument("--compressor", default="hevc", help="compressor preset (default: 'hevc')")
    compress.add_argument("--setting", action="append", default=[], metavar="NAME=VALUE",
                          help="a setting of the compressor, e.g. crf=21 or qscale=2,3,3 (repeatable)")
    compress.add_argument("--out", required=True, help="the artifact to write")
    compress.add_argument("--overwrite", action="store_true", help="replace an existing artifact")
    _clip_options(compress)
    compress.set_defaults(handler=_compress)

    decode = commands.add_parser("decode", help="decode an artifact and evaluate it against its clip")
    decode.add_argument("artifact", help="a .nvp file written by `nvpkit compress` or save_compressed")
    decode.add_argument("--write", default=None, help="also write the reconstruction (an .mp4, or a folder of PNGs)")
    decode.add_argument("--overwrite", action="store_true", help="replace an existing --write")
    _clip_options(decode)
    decode.set_defaults(handler=_decode)

    sweep = commands.add_parser("sweep", help="run a notebook over a grid of parameters on Ray")
    sweep.add_argument("notebook", help="a notebook path, or one of nvpkit's by name (codec_guide, tucker_guide, ...)")
    sweep.add_argument("--grid", action="append", default=[], metavar="NAME=V1,V2",
                       help="an axis of the grid, e.g. period=5000,10000 (repeatable)")
    sweep.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                       help="a parameter of every job, e.g. steps=144700 (repeatable)")
    sweep.add_argument("--compare", default="", help="NAME=VALUE: the other values of an axis against this one, "
                       "paired by seed")
    sweep.add_argument("--out", default=None, help="the study's folder (default: <runs>/sweep)")
    sweep.add_argument("--address", default=None, help="an existing Ray cluster ('auto', 'ray://host:10001')")
    sweep.add_argument("--num-cpus", type=int, default=None, help="size of a local cluster (default: every core)")
    sweep.add_argument("--cpus-per-job", type=int, default=1, help="CPUs per job without GPUs (default: 1)")
    sweep.add_argument("--retries", type=int, default=1, help="attempts after a job's first failure (default: 1)")
    sweep.set_defaults(handler=_sweep)

    data = commands.add_parser("data", help="datasets by name: fetch, list, path")
    data.add_argument("action", choices=("fetch", "list", "path"), help="fetch: download, check and extract; "
                      "list: every known dataset and where it is; path: where a fetched one is")
    data.add_argument("names", nargs="*", help="e.g. uvg/Jockey, or uvg for all seven UVG sequences")
    data.set_defaults(handler=_data)

    notebooks = commands.add_parser("notebooks", help="copy nvpkit's notebooks into a folder")
    notebooks.add_argument("folder", help="where the copies go (created if missing)")
    notebooks.add_argument("--overwrite", action="store_true", help="replace notebooks already there")
    notebooks.set_defaults(handler=_notebooks)
    return parser


def _one_line(err: BaseException) -> str:
    text = " ".join(line.strip() for line in str(err).splitlines() if line.strip())
    return text or type(err).__name__


def main(argv: list[str] | None = None) -> None:
    """Run one command; every error is one line on stderr and exit status 1."""
    args = build_parser().parse_args(argv)
    try:
        args.handler(args)
    except KeyboardInterrupt:
        print("nvpkit: interrupted; the same command resumes from the last checkpoint", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)
    except _errors() as err:  # anything else is a bug: its traceback is what a report needs
        import torch

        if isinstance(err, torch.OutOfMemoryError):
            message = (f"out of memory ({_one_line(err)[:200]}); lower batch, num_frames or the model, or run "
                       "`nvpkit plan` to see what the run needs")
        else:
            message = _one_line(err)
        print(f"nvpkit: error: {message}", file=sys.stderr)
        sys.exit(EXIT_ERROR)


def _errors() -> tuple[type[BaseException], ...]:
    """The errors a command reports in one line: bad input and settings (``ValueError``, among them
    ``ArtifactError``), files (``OSError``), encoders (``CodecError``), downloads (``FetchError``),
    a diverged run (``FloatingPointError``) and out of memory."""
    import torch

    from .compress import CodecError
    from .datasets import FetchError

    return (ValueError, OSError, FloatingPointError, CodecError, FetchError, torch.OutOfMemoryError)
