"""A sweep's finished combinations, read back as typed records, and the table that compares them."""
from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._files import read_json
from ..experiments import Results, aggregate, interval, paired

__all__ = ["RECORD", "Record", "collect", "seed_rows", "sweep_table", "sweep_differences", "SEED_KEYS", "NUMBERS", "PAIRED", "varying_keys", "varying", "video_name", "setting_label"]

RECORD = "sweep.json"
"""The file a finished job leaves in its folder: notebook, parameters, attempts, seconds, host."""


@dataclass
class Record:
    """One finished combination: its folder name, the notebook's parameters and its results."""

    name: str
    parameters: dict
    results: Results


MAX_RECORD_BYTES = 2**20
"""Largest sweep.json read."""


def collect(out_dir: str | os.PathLike) -> list[Record]:
    """Every finished combination under ``out_dir``, by folder name. A job whose sweep.json or
    results.json cannot be read is reported (a warning naming the file and the problem) and left
    out; the others are collected."""
    records = []
    for record in sorted(Path(out_dir).glob(f"*/{RECORD}")):
        results = record.parent / "results.json"
        if not results.exists():
            continue
        try:
            saved = read_json(record, MAX_RECORD_BYTES, RECORD)
            if not isinstance(saved, dict) or not isinstance(saved.get("parameters"), dict):
                raise ValueError(f"{str(record)!r}: not an nvpkit {RECORD} (needs an object of parameters)")
            records.append(Record(record.parent.name, saved["parameters"], Results.load(results)))
        except (OSError, ValueError) as err:
            warnings.warn(f"collect: left out {record.parent.name!r}: {err}", stacklevel=2)
    return records


def video_name(record: Record) -> str:
    return record.results.video.get("name") or str(record.parameters.get("dataset", "video"))


def setting_label(record: Record, keys: list[str]) -> str:
    """``keys=values`` of the record's parameters (a parameter its job does not have is left out:
    sweeps of different modes collected from one folder), else its folder name."""
    return ", ".join(f"{k}={record.parameters[k]}" for k in keys if k in record.parameters) or record.name


def varying_keys(params: list[dict[str, Any]], exclude: tuple[str, ...] = ()) -> list[str]:
    """The parameter names whose values differ between the given parameter sets, in first-seen order."""
    keys = [k for k in dict.fromkeys(k for p in params for k in p) if k not in exclude]
    return [k for k in keys if len({json.dumps(p.get(k), default=str) for p in params}) > 1]


def varying(records: list[Record]) -> list[str]:
    """The records' varying parameters, sorted; the video has its own column and out_dir is derived."""
    return sorted(varying_keys([r.parameters for r in records], exclude=("out_dir", "dataset")))


SEED_KEYS = ("seed", "seeds")
"""Parameters that choose seeds: a sweep aggregates over them instead of listing them."""
NUMBERS = ("bpp", "psnr", "psnr_float", "yuv_psnr", "delta_bpp", "delta_psnr", "bd_rate", "bd_psnr", "bd_rate_pchip",
           "bd_psnr_pchip", "train_seconds")
"""The numbers of a sweep table's rows."""
PAIRED = ("delta_bpp", "delta_psnr", "bd_rate", "bd_psnr", "bd_rate_pchip", "bd_psnr_pchip")
"""The numbers that compare an arm with the no-guidance arm of the same seed: they get 95% intervals."""


def seed_rows(records: list[Record]) -> list[dict[str, Any]]:
    """One row per combination, seed and arm of guided-training results (other results are left
    out): the varying parameters but the seeds, video, arm, ``guided`` (False for the no-guidance
    arm), seed, ``NUMBERS`` (BD on guided rows)."""
    keys = [k for k in varying(records) if k not in SEED_KEYS]
    rows = []
    for record in records:
        if record.results.kind != "guide":
            continue
        for run in record.results.per_seed():
            for i, row in enumerate(run.table):
                guided = i > 0
                rows.append({**{k: record.parameters.get(k) for k in keys}, "video": video_name(record),
                             "arm": row["method"], "guided": guided, "seed": run.config.get("seed"),
                             "bpp": row["bpp"], "psnr": row["psnr"], "psnr_float": row.get("psnr_float"),
                             "yuv_psnr": row.get("yuv_psnr"), "delta_bpp": row["delta_bpp"],
                             "delta_psnr": row["delta_psnr"],
                             **{k: run.bd.get(k) if guided else None
                                for k in ("bd_rate", "bd_psnr", "bd_rate_pchip", "bd_psnr_pchip")},
                             "train_seconds": run.arms.get(row["method"], {}).get("train_seconds"),
                             "name": record.name})
    return rows


def sweep_table(records: list[Record]) -> list[dict[str, Any]]:
    """The comparison a paper needs, from a sweep's records: one row per combination and arm (the
    varying parameters, video, arm, bpp, PSNR, deltas to the no-guidance arm of the same seed,
    BD-rate and BD-PSNR on guided rows, train time). When the seeds vary (a ``seed`` axis, or
    experiments run over several ``seeds``), one row per video, arm and other parameters instead:
    every number's mean and ``<number>_std`` over the seeds, ``n``, and the 95% intervals
    (``<number>_low``/``_high``) of the paired Δbpp and ΔPSNR and of the BD-rate (each seed's
    guided arm against its own no-guidance arm, so paired too).
    ``pandas.DataFrame(rows)`` makes it a frame."""
    rows = seed_rows(records)
    if len({r["seed"] for r in rows}) < 2:
        return [{k: v for k, v in r.items() if k not in ("seed", "guided")} for r in rows]
    by = [k for k in rows[0] if k not in (*NUMBERS, "seed", "name", "guided")]
    out = []
    for row in aggregate(rows, by, NUMBERS):
        group = [r for r in rows if all(r[k] == row[k] for k in by)]
        for name in PAIRED:
            found = interval(r[name] for r in group)
            row[f"{name}_low"], row[f"{name}_high"] = found["low"], found["high"]
        out.append(row)
    return out


def sweep_differences(records: list[Record], key: str, base: Any) -> list[dict[str, Any]]:
    """Every other value of the varying parameter ``key`` against the value ``base`` (compared as
    text: ``sweep_differences(records, "mode", "reload")``), on each video and combination of the
    other parameters: the guided arms' ``PAIRED`` numbers, value minus base, paired by seed (same
    seed: same initialisation and batches), as the mean and 95% interval of the per-seed
    differences (``<number>``, ``<number>_low``, ``<number>_high``) and ``n``, the seeds paired."""
    choices = [k for k in varying(records) if k not in SEED_KEYS]
    if key not in choices:
        raise ValueError(f"sweep_differences: key={key!r} is not a varying parameter of these records; "
                         f"choose from {choices}")
    rows = [r for r in seed_rows(records) if r["guided"]]
    values = sorted({str(r[key]) for r in rows})
    if str(base) not in values:
        raise ValueError(f"sweep_differences: base={base!r} is not a value of {key!r}; the values are {values}")
    others = [k for k in rows[0] if k not in (*NUMBERS, key, "arm", "guided", "seed", "name")]
    at_base = {(tuple(r[k] for k in others), r["seed"]): r for r in rows if str(r[key]) == str(base)}
    pairs: dict[tuple, list[tuple[dict, dict]]] = {}
    for row in (r for r in rows if str(r[key]) != str(base)):
        other = tuple(row[k] for k in others)
        if (other, row["seed"]) in at_base:
            pairs.setdefault((other, row[key]), []).append((at_base[other, row["seed"]], row))
    out = []
    for (other, value), group in pairs.items():
        row = {**dict(zip(others, other)), key: value, "against": base, "n": len(group)}
        for name in PAIRED:
            found = paired([a[name] for a, _ in group], [b[name] for _, b in group])
            row[name], row[f"{name}_low"], row[f"{name}_high"] = found["mean"], found["low"], found["high"]
        out.append(row)
    return out
