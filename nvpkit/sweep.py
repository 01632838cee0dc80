"""Sweeps: run a notebook over a grid of parameters as Ray tasks, then collect every result.

``sweep(notebook, grid, out_dir)`` executes the notebook with papermill once per combination
of the grid's values, each combination a Ray task with its resource needs (one GPU per job
when the cluster has GPUs, ``cpus_per_job`` CPUs otherwise), each writing into its own folder
``out_dir/<name>/`` (the executed notebook, the notebook's own results.json, and
``sweep.json``: the parameters, attempts and seconds). It runs on a local Ray cluster by
default or on an existing one with ``address=`` (the folders must then be on a filesystem
every node sees, and nvpkit installed on every node).

A combination whose folder already holds results of the same parameters is skipped, so a
re-run only does what is missing; a failed job is retried once and then reported, and the
others go on. Progress (done / running / failed / skipped) is a live bar in the notebook.

``collect`` reads every finished combination back; ``sweep_table`` and the figure helpers
turn guided-training results (``run_experiment``'s results.json) into the comparison a paper
needs: RD curves per video with and without guidance, BD-rate per video and on average, and
PSNR against training step.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
import socket
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import papermill
import plotly.graph_objects as go
from tqdm.auto import tqdm

from ._files import atomic_path
from ._runs import parse_value
from .live import _COLOURS, figure_png

__all__ = ["sweep", "parse_grid", "combinations", "collect", "sweep_table", "format_sweep_table", "rd_by_video",
           "bd_by_video", "psnr_by_step", "save_figures"]

_RECORD = "sweep.json"
_NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def parse_grid(**values: str | int | float) -> dict[str, list]:
    """A grid from notebook parameters: ``parse_grid(period="2500,5000", codec="hevc")`` ->
    ``{"period": [2500, 5000], "codec": ["hevc"]}`` (comma-separated; numbers become numbers)."""
    grid = {}
    for name, text in values.items():
        items = [text] if isinstance(text, (int, float)) else [t.strip() for t in str(text).split(",") if t.strip()]
        if not items:
            raise ValueError(f"parse_grid: {name}={text!r} has no values; give comma-separated values")
        grid[name] = [parse_value(t) for t in items]
    return grid


def combinations(grid: dict[str, Iterable] | list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The parameter sets of a grid: the product of ``{name: [values]}``, or a list of dicts as given."""
    if isinstance(grid, dict):
        values = {}
        for name, options in grid.items():
            options = [options] if isinstance(options, (str, int, float, bool)) else list(options)
            if not options:
                raise ValueError(f"sweep: grid[{name!r}] is empty; give at least one value")
            values[name] = options
        return [dict(zip(values, combo)) for combo in itertools.product(*values.values())]
    combos = [dict(c) for c in grid]
    if not combos or not all(isinstance(c, dict) for c in grid):
        raise ValueError(f"sweep: grid must be a dict of value lists or a non-empty list of dicts, got {grid!r}")
    return combos


def _name(combo: dict[str, Any], varying: list[str]) -> str:
    """Folder name: the varying parameters, readable, plus a hash of all of them (unique, stable)."""
    label = "-".join(f"{k}={combo[k]}" for k in varying if k in combo) or "run"
    label = re.sub(r"[^A-Za-z0-9._=,+-]+", "_", label)[:80]
    digest = hashlib.sha1(json.dumps(combo, sort_keys=True, default=str).encode()).hexdigest()[:8]
    return f"{label}-{digest}"


def _finished(folder: Path, notebook: str, parameters: dict[str, Any]) -> bool:
    record = folder / _RECORD
    if not record.exists() or not (folder / "results.json").exists():
        return False
    try:
        saved = json.loads(record.read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return saved.get("parameters") == json.loads(json.dumps(parameters)) and saved.get("notebook") == notebook


def _execute(notebook: str, output: str, parameters: dict[str, Any], cwd: str, threads: int) -> dict[str, Any]:
    """One job, on a Ray worker: run the notebook with papermill (the kernel inherits the thread limit)."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)
    Path(parameters["out_dir"]).mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    papermill.execute_notebook(notebook, output, parameters=parameters, cwd=cwd, progress_bar=False)
    return {"seconds": time.perf_counter() - started, "host": socket.gethostname()}


def _error_text(err: BaseException, lines: int = 12) -> str:
    """The useful end of a (Ray-wrapped) papermill error: the notebook's own exception."""
    text = str(err).strip().splitlines()
    return "\n".join(text[-lines:])


def sweep(notebook: str | os.PathLike, grid: dict[str, Iterable] | list[dict[str, Any]], out_dir: str | os.PathLike,
          *, parameters: dict[str, Any] | None = None, address: str | None = None, num_cpus: int | None = None,
          cpus_per_job: int = 1, gpus_per_job: float | None = None, retries: int = 1,
          progress: bool = True) -> dict[str, Any]:
    """Run ``notebook`` (a path, or the name of one of nvpkit's notebooks) once per combination of
    ``grid`` (plus the fixed ``parameters``) as Ray tasks.

    ``out_dir/<name>/`` gets each job's executed notebook and outputs (the notebook's ``out_dir``
    parameter is set to it; a ``cache_dir`` parameter, when the notebook has one and it is not
    given, to ``out_dir/cache``, so the jobs share their cached baselines). ``address`` joins an
    existing Ray cluster; otherwise a fresh local one with ``num_cpus`` (default: all cores) runs
    the jobs and stops at the end (a Ray this process already started is used as it is). Jobs
    take ``gpus_per_job`` GPUs (default 1 when the cluster has GPUs, else 0) and ``cpus_per_job``
    CPUs (their torch threads too). A failed job is retried ``retries`` times, then reported.
    Returns ``{"done", "skipped", "failed", "records", "table"}``: folder names, failures with
    their error, and what ``collect``/``sweep_table`` give."""
    import ray

    path = Path(notebook)
    if not path.is_file() and (_NOTEBOOKS / path).is_file():  # one of nvpkit's own notebooks, by name
        path = _NOTEBOOKS / path
    if not path.is_file():
        raise FileNotFoundError(f"sweep: no notebook at {str(notebook)!r} (nor in {str(_NOTEBOOKS)!r})")
    notebook = str(path.resolve())
    known = papermill.inspect_notebook(notebook)
    combos = combinations(grid)
    fixed = dict(parameters or {})
    for name in sorted({k for c in combos for k in c} | set(fixed)):
        if name not in known:
            raise ValueError(f"sweep: {Path(notebook).name} has no parameter {name!r}; it takes {sorted(known)}")
    if "out_dir" not in known:
        raise ValueError(f"sweep: {Path(notebook).name} has no out_dir parameter, so its jobs cannot keep apart")
    if isinstance(cpus_per_job, bool) or not isinstance(cpus_per_job, int) or cpus_per_job < 1:
        raise ValueError(f"sweep: cpus_per_job must be an int >= 1, got {cpus_per_job!r}")
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ValueError(f"sweep: retries must be an int >= 0, got {retries!r}")
    root = Path(out_dir).resolve()
    root.mkdir(parents=True, exist_ok=True)
    if "cache_dir" in known and "cache_dir" not in fixed:
        fixed["cache_dir"] = str(root / "cache")

    varying = _varying_keys(combos)
    jobs = {}
    for combo in combos:
        folder = root / _name(combo, varying)
        jobs[folder.name] = (folder, {**fixed, **combo, "out_dir": str(folder)})
    skipped = [n for n, (folder, params) in jobs.items() if _finished(folder, notebook, params)]
    done: list[str] = []
    failed: list[dict[str, Any]] = []
    pending: dict[Any, tuple[str, int]] = {}
    started = len(skipped) < len(jobs) and not ray.is_initialized()  # nothing to run: no cluster
    if started:
        local = {} if address else {"num_cpus": num_cpus, "include_dashboard": False}
        ray.init(address=address or "local", logging_level="ERROR", log_to_driver=False, **local)
    bar = tqdm(total=len(jobs), initial=len(skipped), disable=not progress, desc="sweep", unit="job")

    def show() -> None:
        bar.set_postfix(done=len(done), running=len(pending), failed=len(failed), skipped=len(skipped))

    try:
        if len(skipped) < len(jobs):
            if gpus_per_job is None:
                gpus_per_job = 1 if ray.cluster_resources().get("GPU", 0) > 0 else 0
            job = ray.remote(_execute).options(num_cpus=cpus_per_job, num_gpus=gpus_per_job)

        def submit(name: str, attempt: int) -> None:
            folder, params = jobs[name]
            ref = job.remote(notebook, str(folder / "notebook.ipynb"), params, str(root), cpus_per_job)
            pending[ref] = (name, attempt)

        for name in jobs:
            if name not in skipped:
                submit(name, 1)
        show()
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            ref = ready[0]
            name, attempt = pending.pop(ref)
            folder, params = jobs[name]
            try:
                info = ray.get(ref)
            except (ray.exceptions.RayError, OSError) as err:
                if attempt <= retries:
                    submit(name, attempt + 1)
                else:
                    failed.append({"name": name, "parameters": params, "attempts": attempt,
                                   "error": _error_text(err), "notebook": str(folder / "notebook.ipynb")})
                    bar.update(1)
                show()
                continue
            with atomic_path(folder / _RECORD) as tmp:
                tmp.write_text(json.dumps({"notebook": notebook, "parameters": params, "attempts": attempt,
                                           "seconds": info["seconds"], "host": info["host"],
                                           "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}, indent=1))
            done.append(name)
            bar.update(1)
            show()
    except KeyboardInterrupt:
        for ref in pending:
            ray.cancel(ref, force=True)
        raise
    finally:
        bar.close()
        if started:  # leave a cluster we joined running, and stop one we started
            ray.shutdown()
    records = collect(root)
    for failure in failed:
        print(f"failed after {failure['attempts']} attempts: {failure['name']}\n{failure['error']}\n"
              f"(the partly executed notebook: {failure['notebook']})")
    return {"done": done, "skipped": skipped, "failed": failed, "records": records, "table": sweep_table(records)}


def collect(out_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """Every finished combination under ``out_dir``: ``{"name", "parameters", "results"}``, by name."""
    records = []
    for record in sorted(Path(out_dir).glob(f"*/{_RECORD}")):
        results = record.parent / "results.json"
        if results.exists():
            saved = json.loads(record.read_text())
            records.append({"name": record.parent.name, "parameters": saved["parameters"],
                            "results": json.loads(results.read_text())})
    return records


def _video(record: dict[str, Any]) -> str:
    video = record["results"].get("video", {})
    return video.get("name") or str(record["parameters"].get("dataset", "video"))


def _setting(record: dict[str, Any], keys: list[str]) -> str:
    return ", ".join(f"{k}={record['parameters'][k]}" for k in keys) or record["name"]


def _varying_keys(params: list[dict[str, Any]], exclude: tuple[str, ...] = ()) -> list[str]:
    """The parameter names whose values differ between the given parameter sets, in first-seen order."""
    keys = [k for k in dict.fromkeys(k for p in params for k in p) if k not in exclude]
    return [k for k in keys if len({json.dumps(p.get(k), default=str) for p in params}) > 1]


def _varying(records: list[dict[str, Any]]) -> list[str]:
    """The records' varying parameters, sorted; the video has its own column and out_dir is derived."""
    return sorted(_varying_keys([r["parameters"] for r in records], exclude=("out_dir", "dataset")))


def sweep_table(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per combination and arm of guided-training results: the varying parameters, video,
    arm, bpp, PSNR, deltas to the no-guidance arm, BD-rate and BD-PSNR (guided rows), train time.
    ``pandas.DataFrame(rows)`` makes it a frame."""
    keys = _varying(records)
    rows = []
    for record in records:
        results = record["results"]
        bd = results.get("bd") or {}
        arms = results.get("arms", {})
        for i, row in enumerate(results.get("table", [])):
            guided = i > 0
            rows.append({**{k: record["parameters"].get(k) for k in keys}, "video": _video(record),
                         "arm": row["method"], "bpp": row["bpp"], "psnr": row["psnr"],
                         "delta_bpp": row["delta_bpp"], "delta_psnr": row["delta_psnr"],
                         "bd_rate": bd.get("bd_rate") if guided else None,
                         "bd_psnr": bd.get("bd_psnr") if guided else None,
                         "train_seconds": arms.get(row["method"], {}).get("train_seconds"), "name": record["name"]})
    return rows


def format_sweep_table(rows: list[dict[str, Any]]) -> str:
    """``sweep_table`` rows as markdown (numbers rounded, missing values as a dash)."""
    if not rows:
        return "no finished combinations"
    columns = [c for c in rows[0] if c != "name"]
    formats = {"bpp": "{:.4f}", "psnr": "{:.2f}", "delta_bpp": "{:+.4f}", "delta_psnr": "{:+.2f}",
               "bd_rate": "{:+.2f}", "bd_psnr": "{:+.3f}", "train_seconds": "{:.0f}"}

    def cell(column: str, value: Any) -> str:
        if value is None:
            return "-"
        return formats[column].format(value) if column in formats else str(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(c, row[c]) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def _first_arm_labels(records: list[dict[str, Any]], curve) -> dict[str, str]:
    """Label the no-guidance arm once per distinct curve: combinations that share it (the cached
    baseline) show it once, named by the parameters that tell the distinct ones apart."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        groups.setdefault(json.dumps(curve(record), sort_keys=True, default=str), []).append(record)
    keys = [k for k in _varying(records)
            if all(len({json.dumps(r["parameters"].get(k), default=str) for r in g}) == 1 for g in groups.values())]
    labels = {}
    for group in groups.values():
        first = group[0]
        arm = next(iter(first["results"].get("arms") or first["results"].get("rd") or {"no guidance": 0}))
        labels[first["name"]] = f"{arm} ({_setting(first, keys)})" if keys and len(groups) > 1 else arm
    return labels


def rd_by_video(records: list[dict[str, Any]]) -> dict[str, go.Figure]:
    """Per video, the RD curves of the final compressor: the no-guidance arm (once per distinct
    curve), each guided setting, and the x265 anchor when measured."""
    keys = _varying(records)
    figures: dict[str, go.Figure] = {}
    by_video: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        by_video.setdefault(_video(record), []).append(record)
    for video, group in by_video.items():
        fig = figures[video] = go.Figure(layout=dict(
            title=f"{video}: final compression, with and without guidance", template="plotly_white",
            xaxis_title="bits per pixel", yaxis_title="PSNR (dB)"))
        baselines = _first_arm_labels(group, lambda r: [(p["bpp"], p["psnr"]) for p in next(
            iter(r["results"].get("rd", {}).values()), [])])  # the points, not their timings
        for record in group:
            curves = list(record["results"].get("rd", {}).items())
            for i, (arm, points) in enumerate(curves):
                if i == 0 and record["name"] not in baselines:
                    continue
                label = baselines[record["name"]] if i == 0 else f"{arm} ({_setting(record, keys)})"
                points = sorted(points, key=lambda p: p["bpp"])
                fig.add_scatter(x=[p["bpp"] for p in points], y=[p["psnr"] for p in points], mode="lines+markers",
                                name=label, line=dict(color=_COLOURS[len(fig.data) % len(_COLOURS)],
                                                      dash="dash" if i == 0 else "solid"))
        anchor = next((r["results"]["anchor"] for r in group if r["results"].get("anchor")), None)
        if anchor:
            points = sorted(anchor, key=lambda p: p["bpp"])
            fig.add_scatter(x=[p["bpp"] for p in points], y=[p["psnr"] for p in points], mode="lines+markers",
                            name="x265 on the video", line=dict(color="#7f7f7f", dash="dot"))
    return figures


def bd_by_video(records: list[dict[str, Any]]) -> go.Figure:
    """BD-rate of each guided setting against no guidance, one marker per video, and the mean over
    the videos where it could be measured (lower is better)."""
    keys = _varying(records)
    by_setting: dict[str, dict[str, float]] = {}
    for record in records:
        value = (record["results"].get("bd") or {}).get("bd_rate")
        if value is not None:
            by_setting.setdefault(_setting(record, keys), {})[_video(record)] = value
    fig = go.Figure(layout=dict(title="BD-rate of guidance against no guidance", template="plotly_white",
                                xaxis_title="setting", yaxis_title="BD-rate (%)"))
    videos = sorted({v for values in by_setting.values() for v in values})
    settings = sorted(by_setting)
    for i, video in enumerate(videos):
        xs = [s for s in settings if video in by_setting[s]]
        fig.add_scatter(x=xs, y=[by_setting[s][video] for s in xs], mode="markers", name=video,
                        marker=dict(color=_COLOURS[i % len(_COLOURS)], size=9))
    if settings:
        means = [sum(by_setting[s].values()) / len(by_setting[s]) for s in settings]
        fig.add_scatter(x=settings, y=means, mode="lines+markers", name="mean over videos",
                        line=dict(color="black"))
    return fig


def psnr_by_step(records: list[dict[str, Any]]) -> go.Figure:
    """Training PSNR against step for every arm (the no-guidance arm once per distinct run)."""
    keys = _varying(records)
    fig = go.Figure(layout=dict(title="training PSNR against step", template="plotly_white",
                                xaxis_title="step", yaxis_title="training PSNR (dB)"))

    def first_history(record: dict[str, Any]) -> Any:
        arms = record["results"].get("arms", {})
        return [_video(record), next(iter(arms.values()), {}).get("history")]

    baselines = _first_arm_labels(records, first_history)
    for record in records:
        video = _video(record)
        for i, (arm, data) in enumerate(record["results"].get("arms", {}).items()):
            if i == 0 and record["name"] not in baselines:
                continue
            label = f"{video}: {baselines[record['name']] if i == 0 else f'{arm} ({_setting(record, keys)})'}"
            history = data.get("history", {})
            colour = _COLOURS[len(fig.data) % len(_COLOURS)]
            fig.add_scatter(x=history.get("step", []), y=history.get("psnr", []), mode="lines", name=label,
                            line=dict(color=colour, dash="dash" if i == 0 else "solid"))
    return fig


def save_figures(records: list[dict[str, Any]], out_dir: str | os.PathLike) -> dict[str, list[str]]:
    """Write the sweep's figures as HTML (interactive, offline) and PNG into ``out_dir``; returns them."""
    out = Path(out_dir)
    figures = {f"rd_{re.sub(r'[^A-Za-z0-9._-]+', '_', video)}": fig for video, fig in rd_by_video(records).items()}
    figures["bd_rate"] = bd_by_video(records)
    figures["psnr_by_step"] = psnr_by_step(records)
    written = {}
    out.mkdir(parents=True, exist_ok=True)
    for name, fig in figures.items():  # drawn from the records again on every call
        fig.write_html(out / f"{name}.html", include_plotlyjs=True)
        figure_png(fig, out / f"{name}.png")
        written[name] = [f"{name}.html", f"{name}.png"]
    return written
