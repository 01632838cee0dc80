"""A sweep's finished combinations, read back as typed records, and the table that compares them."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..experiments import Results

__all__ = ["RECORD", "Record", "collect", "sweep_table", "varying_keys", "varying", "video_name", "setting_label"]

RECORD = "sweep.json"
"""The file a finished job leaves in its folder: notebook, parameters, attempts, seconds, host."""


@dataclass
class Record:
    """One finished combination: its folder name, the notebook's parameters and its results."""

    name: str
    parameters: dict
    results: Results


def collect(out_dir: str | os.PathLike) -> list[Record]:
    """Every finished combination under ``out_dir``, by folder name."""
    records = []
    for record in sorted(Path(out_dir).glob(f"*/{RECORD}")):
        results = record.parent / "results.json"
        if results.exists():
            saved = json.loads(record.read_text())
            records.append(Record(record.parent.name, saved["parameters"], Results.load(results)))
    return records


def video_name(record: Record) -> str:
    return record.results.video.get("name") or str(record.parameters.get("dataset", "video"))


def setting_label(record: Record, keys: list[str]) -> str:
    return ", ".join(f"{k}={record.parameters[k]}" for k in keys) or record.name


def varying_keys(params: list[dict[str, Any]], exclude: tuple[str, ...] = ()) -> list[str]:
    """The parameter names whose values differ between the given parameter sets, in first-seen order."""
    keys = [k for k in dict.fromkeys(k for p in params for k in p) if k not in exclude]
    return [k for k in keys if len({json.dumps(p.get(k), default=str) for p in params}) > 1]


def varying(records: list[Record]) -> list[str]:
    """The records' varying parameters, sorted; the video has its own column and out_dir is derived."""
    return sorted(varying_keys([r.parameters for r in records], exclude=("out_dir", "dataset")))


def sweep_table(records: list[Record]) -> list[dict[str, Any]]:
    """One row per combination and arm of guided-training results (other results are left out): the varying parameters, video,
    arm, bpp, PSNR, deltas to the no-guidance arm, BD-rate and BD-PSNR (guided rows), train time.
    ``pandas.DataFrame(rows)`` makes it a frame."""
    keys = varying(records)
    rows = []
    for record in records:
        results = record.results
        if results.kind != "guide":
            continue
        for i, row in enumerate(results.table):
            guided = i > 0
            rows.append({**{k: record.parameters.get(k) for k in keys}, "video": video_name(record),
                         "arm": row["method"], "bpp": row["bpp"], "psnr": row["psnr"],
                         "psnr_float": row.get("psnr_float"), "yuv_psnr": row.get("yuv_psnr"),
                         "delta_bpp": row["delta_bpp"], "delta_psnr": row["delta_psnr"],
                         "bd_rate": results.bd.get("bd_rate") if guided else None,
                         "bd_psnr": results.bd.get("bd_psnr") if guided else None,
                         "train_seconds": results.arms.get(row["method"], {}).get("train_seconds"),
                         "name": record.name})
    return rows
