"""A sweep's figures: RD curves per video with and without guidance, the guided arms' points along
an axis (the rate weight λ: an RD curve per mode), BD-rate per video and on average, and training
PSNR against step."""
from __future__ import annotations

import json
import os
import re
from typing import Any

import plotly.graph_objects as go

from ..compress import anchor_label
from ..experiments import Results, mean_curve, summary
from ..viz import COLOURS, add_band, save_figure
from .collect import SEED_KEYS, Record, seed_rows, setting_label, varying, video_name

__all__ = ["rd_by_video", "rd_along", "bd_by_video", "psnr_by_step", "save_figures", "CURVE_AXES"]

CURVE_AXES = ("rate_weight",)
"""Parameters whose values trace an RD curve of their own (``rd_along``) when a sweep varies them."""


def _first_arm_labels(records: list[Record], curve) -> dict[str, str]:
    """Label the no-guidance arm once per distinct curve: combinations that share it (the cached
    baseline) show it once, named by the parameters that tell the distinct ones apart."""
    groups: dict[str, list[Record]] = {}
    for record in records:
        groups.setdefault(json.dumps(curve(record), sort_keys=True, default=str), []).append(record)
    keys = [k for k in varying(records)
            if all(len({json.dumps(r.parameters.get(k), default=str) for r in g}) == 1 for g in groups.values())]
    labels = {}
    for group in groups.values():
        first = group[0]
        arm = next(iter(first.results.arms or first.results.rd or {"no guidance": 0}))
        labels[first.name] = f"{arm} ({setting_label(first, keys)})" if keys and len(groups) > 1 else arm
    return labels


def _mean_records(records: list[Record]) -> list[Record]:
    """Records that differ only in their seeds (and every seed of a record run over several) as one
    record per combination: its RD curves the mean over seeds with their spread (``mean_curve``), its
    BD-rate the mean (``bd_rate_std`` beside it). A combination of one seed keeps its results. Every
    record's seed parameters become ``seeds``, the seeds it holds ("0,1,2"), so that a combination
    with fewer seeds than the others (a partly finished sweep) is told apart in the labels."""
    groups: dict[str, list[Record]] = {}
    for record in records:
        params = {k: v for k, v in record.parameters.items() if k not in (*SEED_KEYS, "out_dir")}
        groups.setdefault(json.dumps(params, sort_keys=True, default=str), []).append(record)
    out = []
    for group in groups.values():
        runs = [run for record in group for run in record.results.per_seed()]
        params = {**{k: v for k, v in group[0].parameters.items() if k not in SEED_KEYS},
                  "seeds": ",".join(str(run.config.get("seed")) for run in runs)}
        if len(runs) == 1:
            out.append(Record(group[0].name, params, group[0].results))
            continue
        first = runs[0]
        rd = {arm: mean_curve([run.rd[arm] for run in runs]) for arm in first.rd} if all(r.rd for r in runs) else {}
        bd = summary(run.bd.get("bd_rate") for run in runs)
        results = Results(first.kind, first.config, first.video, first.arms, first.table, rd=rd,
                          bd={"bd_rate": bd["mean"], "bd_rate_std": bd["std"]} if bd["n"] else {},
                          anchor=first.anchor, anchor_settings=first.anchor_settings)
        out.append(Record(group[0].name, params, results))
    return out


def rd_by_video(records: list[Record]) -> dict[str, go.Figure]:
    """Per video, the RD curves of the final compressor: the no-guidance arm (once per distinct
    curve), each guided setting, and the x265 anchor when measured; over several seeds each curve
    is the mean with a band of ± one standard deviation."""
    records = _mean_records(records)
    keys = varying(records)
    figures: dict[str, go.Figure] = {}
    by_video: dict[str, list[Record]] = {}
    for record in records:
        by_video.setdefault(video_name(record), []).append(record)
    for video, group in by_video.items():
        fig = figures[video] = go.Figure(layout=dict(
            title=f"{video}: final compression, with and without guidance", template="plotly_white",
            xaxis_title="bits per pixel", yaxis_title="PSNR (dB)"))
        baselines = _first_arm_labels(group, lambda r: [(p["bpp"], p["psnr"]) for p in next(
            iter(r.results.rd.values()), [])])  # the points, not their timings
        for record in group:
            curves = list(record.results.rd.items())
            for i, (arm, points) in enumerate(curves):
                if i == 0 and record.name not in baselines:
                    continue
                label = baselines[record.name] if i == 0 else f"{arm} ({setting_label(record, keys)})"
                points = sorted(points, key=lambda p: p["bpp"])
                colour = COLOURS[len([t for t in fig.data if t.fill != "toself"]) % len(COLOURS)]
                add_band(fig, points, "psnr", colour, label)
                fig.add_scatter(x=[p["bpp"] for p in points], y=[p["psnr"] for p in points], mode="lines+markers",
                                name=label, line=dict(color=colour, dash="dash" if i == 0 else "solid"))
        measured = next((r.results for r in group if r.results.anchor), None)
        if measured is not None:
            points = sorted(measured.anchor, key=lambda p: p["bpp"])
            name = anchor_label(**measured.anchor_settings) if measured.anchor_settings else "x265 on the video"
            fig.add_scatter(x=[p["bpp"] for p in points], y=[p["psnr"] for p in points], mode="lines+markers",
                            name=name, line=dict(color="#7f7f7f", dash="dot"))
    return figures


def rd_along(records: list[Record], axis: str) -> dict[str, go.Figure]:
    """Per video, each guided setting's final compression (bpp and PSNR at the final compressor's
    own setting) at every value of ``axis``, joined in the axis' order: one curve per combination of
    the other parameters (with ``rate_weight``, an RD curve per mode), each point the mean over
    seeds with ± one standard deviation in both; the no-guidance arm's setting sweep (mean over
    seeds) and the anchor beside them."""
    rows = seed_rows(records)
    keys = [k for k in varying(records) if k not in (*SEED_KEYS, axis)]
    means = {video_name(r): r for r in _mean_records(records)}  # one record per video: its baseline and anchor
    figures: dict[str, go.Figure] = {}
    for video in dict.fromkeys(r["video"] for r in rows):
        fig = figures[video] = go.Figure(layout=dict(
            title=f"{video}: final compression along {axis}", template="plotly_white",
            xaxis_title="bits per pixel", yaxis_title="PSNR (dB)"))
        first = means[video].results
        base_name, base = next(iter(first.rd.items()), ("no guidance", []))
        base = sorted(base, key=lambda p: p["bpp"])
        add_band(fig, base, "psnr", "#7f7f7f", base_name)
        fig.add_scatter(x=[p["bpp"] for p in base], y=[p["psnr"] for p in base], mode="lines+markers",
                        name=f"{base_name} (setting sweep)", line=dict(color="#7f7f7f", dash="dash"))
        curves: dict[tuple, dict[Any, list[dict]]] = {}
        for row in (r for r in rows if r["video"] == video and r["guided"]):
            curves.setdefault(tuple(row[k] for k in keys), {}).setdefault(row[axis], []).append(row)
        for i, (other, points) in enumerate(curves.items()):
            values = sorted(points, key=lambda v: (float(v) if isinstance(v, (int, float)) else str(v)))
            bpp = [summary(r["bpp"] for r in points[v]) for v in values]
            psnr = [summary(r["psnr"] for r in points[v]) for v in values]
            fig.add_scatter(
                x=[b["mean"] for b in bpp], y=[q["mean"] for q in psnr], mode="lines+markers+text",
                text=[f"{v:g}" if isinstance(v, (int, float)) else str(v) for v in values], textposition="top center",
                name=", ".join(f"{k}={v}" for k, v in zip(keys, other) if v is not None) or "guided",
                line=dict(color=COLOURS[i % len(COLOURS)]),
                error_x=dict(array=[b["std"] or 0 for b in bpp], visible=any(b["std"] for b in bpp)),
                error_y=dict(array=[q["std"] or 0 for q in psnr], visible=any(q["std"] for q in psnr)))
        if first.anchor:
            points = sorted(first.anchor, key=lambda p: p["bpp"])
            fig.add_scatter(x=[p["bpp"] for p in points], y=[p["psnr"] for p in points], mode="lines+markers",
                            name=anchor_label(**first.anchor_settings) if first.anchor_settings else "x265 on the video",
                            line=dict(color="#7f7f7f", dash="dot"))
    return figures


def bd_by_video(records: list[Record]) -> go.Figure:
    """BD-rate of each guided setting against no guidance, one marker per video (over several seeds
    their mean, with ± one standard deviation), and the mean over the videos where it could be
    measured (lower is better)."""
    records = _mean_records(records)
    keys = varying(records)
    by_setting: dict[str, dict[str, float]] = {}
    spread: dict[tuple[str, str], float | None] = {}
    for record in records:
        value = record.results.bd.get("bd_rate")
        if value is not None:
            by_setting.setdefault(setting_label(record, keys), {})[video_name(record)] = value
            spread[setting_label(record, keys), video_name(record)] = record.results.bd.get("bd_rate_std")
    fig = go.Figure(layout=dict(title="BD-rate of guidance against no guidance", template="plotly_white",
                                xaxis_title="setting", yaxis_title="BD-rate (%)"))
    videos = sorted({v for values in by_setting.values() for v in values})
    settings = sorted(by_setting)
    for i, video in enumerate(videos):
        xs = [s for s in settings if video in by_setting[s]]
        errors = [spread[s, video] for s in xs]
        fig.add_scatter(x=xs, y=[by_setting[s][video] for s in xs], mode="markers", name=video,
                        marker=dict(color=COLOURS[i % len(COLOURS)], size=9),
                        error_y=dict(array=[e or 0 for e in errors], visible=any(e is not None for e in errors)))
    if settings:
        means = [summary(by_setting[s].values())["mean"] for s in settings]
        fig.add_scatter(x=settings, y=means, mode="lines+markers", name="mean over videos",
                        line=dict(color="black"))
    return fig


def psnr_by_step(records: list[Record]) -> go.Figure:
    """Training PSNR against step for every arm (the no-guidance arm once per distinct run)."""
    keys = varying(records)
    fig = go.Figure(layout=dict(title="training PSNR against step", template="plotly_white",
                                xaxis_title="step", yaxis_title="training PSNR (dB)"))

    def first_history(record: Record) -> Any:
        arms = record.results.arms
        return [video_name(record), next(iter(arms.values()), {}).get("history")]

    baselines = _first_arm_labels(records, first_history)
    for record in records:
        video = video_name(record)
        for i, (arm, data) in enumerate(record.results.arms.items()):
            if i == 0 and record.name not in baselines:
                continue
            label = f"{video}: {baselines[record.name] if i == 0 else f'{arm} ({setting_label(record, keys)})'}"
            history = data.get("history", {})
            colour = COLOURS[len(fig.data) % len(COLOURS)]
            fig.add_scatter(x=history.get("step", []), y=history.get("psnr", []), mode="lines", name=label,
                            line=dict(color=colour, dash="dash" if i == 0 else "solid"))
    return fig


def save_figures(records: list[Record], out_dir: str | os.PathLike) -> dict[str, list[str]]:
    """Write the sweep's figures as HTML (interactive, offline) and PNG into ``out_dir``, each
    atomically; returns the file names by figure."""
    figures = {f"rd_{re.sub(r'[^A-Za-z0-9._-]+', '_', video)}": fig for video, fig in rd_by_video(records).items()}
    for axis in (a for a in CURVE_AXES if a in varying(records)):
        figures.update({f"rd_along_{axis}_{re.sub(r'[^A-Za-z0-9._-]+', '_', video)}": fig
                        for video, fig in rd_along(records, axis).items()})
    figures["bd_rate"] = bd_by_video(records)
    figures["psnr_by_step"] = psnr_by_step(records)
    return {name: save_figure(fig, out_dir, name) for name, fig in figures.items()}
