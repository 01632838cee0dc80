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

``collect`` (``collect.py``) reads every finished combination back; ``sweep_table`` and the
figures (``figures.py``) turn guided-training results into the comparison a paper needs.
"""
from __future__ import annotations

import ast
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

from .._progress import progress_bar
from .._checks import check_int
from .._files import read_json, write_csv, write_json
from .._resources import notebook_path
from ..experiments import NOTEBOOK_CONFIGS, check_all, parse_list
from .collect import MAX_RECORD_BYTES, RECORD, SEED_KEYS, collect, sweep_table, varying_keys

__all__ = ["sweep", "parse_grid", "parse_compare", "combinations", "notebook_grid", "forwarded", "SWEEP_PARAMETERS"]

SWEEP_PARAMETERS = ("notebook", "datasets", "periods", "compressors", "modes", "rate_weights", "rate_estimators",
                    "seeds", "compare", "address", "num_cpus", "cpus_per_job", "out_dir")
"""The sweep notebook's own parameters: never forwarded to the jobs."""


def parse_grid(**values: str | int | float) -> dict[str, list]:
    """A grid from notebook parameters: ``parse_grid(period="2500,5000", codec="hevc")`` ->
    ``{"period": [2500, 5000], "codec": ["hevc"]}`` (comma-separated; numbers become numbers)."""
    return {name: list(parse_list(text, f"parse_grid: {name}")) for name, text in values.items()}


def notebook_grid(notebook: str | os.PathLike, **axes: str | int | float) -> dict[str, list]:
    """``parse_grid`` of the ``axes`` that ``notebook`` takes as parameters; the others are left
    out, with a printed note (a tucker_init sweep has no guidance period)."""
    known = papermill.inspect_notebook(str(notebook_path(notebook)))
    dropped = [name for name in axes if name not in known]
    if dropped:
        print(f"{Path(notebook).name} has no parameter {', '.join(dropped)}: left out of the grid")
    return parse_grid(**{name: text for name, text in axes.items() if name in known})


def forwarded(notebook: str | os.PathLike, values: dict[str, Any], exclude: Iterable[str] = ()) -> dict[str, Any]:
    """The entries of ``values`` (a notebook's ``globals()``) named like parameters of ``notebook``,
    but those in ``exclude``: what the sweep notebook passes to every job."""
    known = papermill.inspect_notebook(str(notebook_path(notebook)))
    skip = set(exclude)
    return {name: values[name] for name in known if name in values and name not in skip}


def parse_compare(text: str, grid: dict[str, list]) -> tuple[str, str] | None:
    """The sweep notebook's ``compare`` parameter, checked against the grid before anything runs:
    ``"mode=reload"`` -> ``("mode", "reload")`` (every other mode against reload, by
    ``sweep_differences``); ``""`` -> None."""
    if not text:
        return None
    key, equals, base = text.partition("=")
    axes = [k for k, v in grid.items() if len(v) > 1 and k not in (*SEED_KEYS, "dataset")]  # videos are not paired
    if key not in axes or not equals:
        raise ValueError(f"compare={text!r} is not allowed; give <parameter>=<value> with a parameter that takes "
                         f"several values in the grid: {axes}")
    if base not in [str(v) for v in grid[key]]:
        raise ValueError(f"compare={text!r} is not allowed; {key} takes the values {grid[key]}")
    return key, base


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


def _name(params: dict[str, Any], varying: list[str]) -> str:
    """Folder name: the varying parameters, readable, plus a hash of every parameter of the job
    (fixed ones too, so a study re-run with another fixed value gets folders of its own)."""
    label = "-".join(f"{k}={params[k]}" for k in varying if k in params) or "run"
    label = re.sub(r"[^A-Za-z0-9._=,+-]+", "_", label)[:80]
    digest = hashlib.sha1(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()[:8]
    return f"{label}-{digest}"


def _finished(folder: Path, notebook: str, parameters: dict[str, Any]) -> bool:
    record = folder / RECORD
    if not record.exists() or not (folder / "results.json").exists():
        return False
    try:
        saved = read_json(record, MAX_RECORD_BYTES, RECORD)
    except (OSError, ValueError):
        return False
    return (isinstance(saved, dict) and saved.get("parameters") == json.loads(json.dumps(parameters))
            and saved.get("notebook") == notebook)


def _check_jobs(notebook: str, known: dict[str, dict], jobs: list[dict[str, Any]]) -> None:
    """Every job of one of nvpkit's experiment notebooks, checked here before any is submitted:
    its config built from the notebook's defaults and the job's parameters, then ``check_all``
    (on the CPU, without the memory check: the workers' machines may differ)."""
    cls = NOTEBOOK_CONFIGS.get(notebook)
    if cls is None or not jobs:
        return
    defaults = {}
    for name, info in known.items():
        try:
            defaults[name] = ast.literal_eval(info["default"])
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            pass  # not a literal: the notebook computes it
    configs = []
    for params in jobs:
        try:
            configs.append(cls.from_params({**defaults, **params}, device="cpu"))
        except ValueError as err:
            raise ValueError(f"sweep: the job {params!r} of {notebook}: {err}") from None
    check_all(configs)


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
    CPUs (their torch threads too). A failed job is retried ``retries`` times (so it gets
    ``1 + retries`` attempts; Ray's own task retries are off), then reported.
    Returns ``{"done", "skipped", "failed", "records", "table"}``: folder names, failures with
    their error, and what ``collect``/``sweep_table`` give; the table is also ``out_dir/sweep.csv``."""
    import ray

    path = notebook_path(notebook)
    notebook = str(path.resolve())
    known = papermill.inspect_notebook(notebook)
    combos = combinations(grid)
    fixed = dict(parameters or {})
    for name in sorted({k for c in combos for k in c} | set(fixed)):
        if name not in known:
            raise ValueError(f"sweep: {Path(notebook).name} has no parameter {name!r}; it takes {sorted(known)}")
    if "out_dir" not in known:
        raise ValueError(f"sweep: {Path(notebook).name} has no out_dir parameter, so its jobs cannot keep apart")
    check_int("sweep", "cpus_per_job", cpus_per_job, 1)
    check_int("sweep", "retries", retries, 0)
    root = Path(out_dir).resolve()
    root.mkdir(parents=True, exist_ok=True)
    derived = {"cache_dir": str(root / "cache")} if "cache_dir" in known and "cache_dir" not in fixed else {}

    varying = varying_keys(combos)
    jobs = {}
    for combo in combos:
        params = {**fixed, **combo}
        folder = root / _name(params, varying)
        jobs[folder.name] = (folder, {**derived, **params, "out_dir": str(folder)})
    skipped = [n for n, (folder, params) in jobs.items() if _finished(folder, notebook, params)]
    _check_jobs(path.stem, known, [params for n, (_, params) in jobs.items() if n not in skipped])
    done: list[str] = []
    failed: list[dict[str, Any]] = []
    pending: dict[Any, tuple[str, int]] = {}
    started = len(skipped) < len(jobs) and not ray.is_initialized()  # nothing to run: no cluster
    if started:
        local = {} if address else {"num_cpus": num_cpus, "include_dashboard": False}
        ray.init(address=address or "local", logging_level="ERROR", log_to_driver=False, **local)
    bar = progress_bar(total=len(jobs), initial=len(skipped), disable=not progress, desc="sweep", unit="job")

    def show() -> None:
        bar.set_postfix(refresh=False, done=len(done), running=len(pending), failed=len(failed),
                        skipped=len(skipped))

    try:
        if len(skipped) < len(jobs):
            if gpus_per_job is None:
                gpus_per_job = 1 if ray.cluster_resources().get("GPU", 0) > 0 else 0
            job = ray.remote(_execute).options(num_cpus=cpus_per_job, num_gpus=gpus_per_job, max_retries=0,
                                               retry_exceptions=False)  # retries are ours, counted above

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
            write_json(folder / RECORD, {"notebook": notebook, "parameters": params, "attempts": attempt,
                                         "seconds": info["seconds"], "host": info["host"],
                                         "finished": time.strftime("%Y-%m-%dT%H:%M:%S")})
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
    table = sweep_table(records)
    if table:
        write_csv(root / "sweep.csv", table)
    return {"done": done, "skipped": skipped, "failed": failed, "records": records, "table": table}


