"""Markdown tables of results: one writer, and the tables of each experiment and of a sweep."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..experiments import Results

__all__ = ["markdown_table", "format_table", "format_events", "format_init_table", "format_sweep_table"]


def markdown_table(rows: Sequence[Mapping[str, Any]], columns: Mapping[str, str],
                   formats: Mapping[str, str] = {}) -> str:
    """``rows`` as a markdown table: ``columns`` maps each key to its header, ``formats`` a key to
    its format (``"{:.2f}"``, for numbers); a missing value is a dash."""
    def cell(key: str, value: Any) -> str:
        if value is None:
            return "-"
        return formats[key].format(value) if key in formats and not isinstance(value, str) else str(value)

    lines = ["| " + " | ".join(columns.values()) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(k, row.get(k)) for k in columns) + " |" for row in rows]
    return "\n".join(lines)


_FORMATS = {"bpp": "{:.4f}", "psnr": "{:.2f}", "psnr_float": "{:.2f}", "yuv_psnr": "{:.2f}", "delta_bpp": "{:+.4f}", "delta_psnr": "{:+.2f}",
            "bd_rate": "{:+.2f}", "bd_psnr": "{:+.3f}", "train_seconds": "{:.0f}", "tucker_bpp": "{:.4f}",
            "tucker_psnr": "{:.2f}", "steps_to_level": "{:,}"}


SCORING = ("PSNR and YUV PSNR (BT.709, 6:1:1) of the decoded uint8 frames, as a decoder outputs them; float PSNR: "
           "of the unrounded render, the published evaluation. Δ columns use PSNR.")
"""The line under every table of scores that says which PSNR is which."""


def format_table(results: Results) -> str:
    """A guided-training experiment's table in the seed notes' shape, with its BD metrics and notes."""
    lines = [markdown_table(results.table, {"method": "method", "bpp": "bpp", "psnr": "PSNR (dB)",
                                            "psnr_float": "float PSNR (dB)", "yuv_psnr": "YUV PSNR (dB)",
                                            "delta_bpp": "Δbpp", "delta_psnr": "ΔPSNR (dB)"}, _FORMATS),
             SCORING]
    bd = results.bd
    if bd:
        shown = ", ".join(p for p in (f"BD-rate {bd['bd_rate']:+.2f} %" if bd.get("bd_rate") is not None else "",
                                      f"BD-PSNR {bd['bd_psnr']:+.3f} dB" if bd.get("bd_psnr") is not None else "")
                          if p)
        if shown:
            lines.append(f"{shown} (guided against no guidance, {bd['method']})")
        lines += bd.get("notes", [])
    return "\n\n".join(lines)


def format_events(results: Results) -> str:
    """The guidance events: step, PSNR just before and after the reload, bpp, seconds."""
    if not results.events:
        return "no guidance events"
    return markdown_table(results.events, {"step": "step", "psnr_before": "PSNR before (dB)",
                                           "psnr_after": "PSNR after (dB)", "bpp": "bpp", "seconds": "seconds"},
                          {"step": "{:,}", "psnr_before": "{:.2f}", "psnr_after": "{:.2f}", "bpp": "{:.4f}",
                           "seconds": "{:.1f}"})


def format_init_table(results: Results) -> str:
    """The initialisation study's arms."""
    level = results.config["psnr_level"]
    rows = [{**r, "steps_to_level": "never" if r["steps_to_level"] is None else r["steps_to_level"]}
            for r in results.table]
    table = markdown_table(rows, {"arm": "arm", "steps_to_level": f"steps to {level:g} dB", "psnr": "PSNR (dB)",
                                  "tucker_bpp": "Tucker bpp", "tucker_psnr": "Tucker PSNR (dB)"}, _FORMATS)
    return f"{table}\n\nPSNR of the uint8 frames, as a decoder outputs them; steps to {level:g} dB: training PSNR."


def format_sweep_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """A sweep's table (``nvpkit.sweep_table`` rows), numbers rounded."""
    if not rows:
        return "no finished combinations"
    return f"{markdown_table(rows, {c: c for c in rows[0] if c != 'name'}, _FORMATS)}\n\n{SCORING}"
