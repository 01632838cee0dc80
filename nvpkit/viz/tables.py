"""Markdown tables of results: one writer, and the tables of each experiment and of a sweep."""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .._files import write_csv

from ..experiments import Results, aggregate, interval, paired, summary

__all__ = ["save_table", "markdown_table", "format_table", "format_events", "format_init_table", "format_train_table",
           "format_results", "format_sweep_table"]


def save_table(rows: Sequence[Mapping[str, Any]], folder: str | os.PathLike, name: str) -> Path:
    """``rows`` as ``folder/<name>.csv`` (every key a column; written atomically): the table a
    spreadsheet, pandas or a plotting script reads."""
    return write_csv(Path(folder) / f"{name}.csv", [dict(r) for r in rows])


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
            "bd_rate": "{:+.2f}", "bd_psnr": "{:+.3f}", "bd_rate_pchip": "{:+.2f}", "bd_psnr_pchip": "{:+.3f}", "train_seconds": "{:.0f}", "tucker_bpp": "{:.4f}",
            "tucker_psnr": "{:.2f}", "steps_to_level": "{:,.0f}"}


SCORING = ("PSNR and YUV PSNR (6:1:1; against the source planes for a raw .yuv clip, else BT.709 of the RGB frames) "
           "of the decoded uint8 frames, as a decoder outputs them; float PSNR: "
           "of the unrounded render, the published evaluation. Δ columns use PSNR.")
"""The line under every table of scores that says which PSNR is which."""


def _pm(mean: float | None, std: float | None, fmt: str) -> str:
    """``mean ± std`` (the mean alone for one value, a dash for none)."""
    if mean is None:
        return "-"
    return fmt.format(mean) + (f" ± {fmt.format(std).lstrip('+')}" if std is not None else "")


def _excludes_zero(low: float, high: float) -> bool:
    return low > 0 or high < 0


def _interval(diff: dict[str, Any], fmt: str, unit: str) -> str:
    """A paired difference: mean, 95% interval and whether it excludes zero."""
    if diff["mean"] is None:
        return "-"
    text = f"{fmt.format(diff['mean'])}{unit}"
    if diff["low"] is None:
        return f"{text} (one seed: no interval)"
    verdict = "excludes 0" if _excludes_zero(diff["low"], diff["high"]) else "includes 0"
    return (f"{text}, 95% CI [{fmt.format(diff['low'])}, {fmt.format(diff['high'])}]{unit}: {verdict} "
            f"(n={diff['n']})")


def _seeds_table(rows: Sequence[Mapping[str, Any]], by: str, columns: Mapping[str, str]) -> str:
    """Rows with a ``seed`` column as one row per ``by`` value: mean ± std of each column, and n."""
    summed = aggregate(rows, [by], list(columns))
    cells = [{by: r[by], "n": r["n"], **{k: _pm(r[k], r[f"{k}_std"], _FORMATS[k])
                                         + (f" (n={r[f'{k}_n']})" if 0 < r[f"{k}_n"] < r["n"] else "")
                                         for k in columns}} for r in summed]
    return markdown_table(cells, {by: by, "n": "seeds", **columns})


def _by_seed(rows: Sequence[Mapping[str, Any]], by: str, name: str, key: str) -> list[Any]:
    """``key`` of the rows whose ``by`` is ``name``, in seed order."""
    return [r.get(key) for r in sorted((r for r in rows if r[by] == name), key=lambda r: r["seed"])]


def format_table(results: Results) -> str:
    """A guided-training experiment's table in the seed notes' shape, with its BD metrics and notes;
    over several seeds: mean ± std per arm, and the guided arm's paired differences."""
    if results.runs:
        return _format_seeds_table(results)
    lines = [markdown_table(results.table, {"method": "method", "bpp": "bpp", "psnr": "PSNR (dB)",
                                            "psnr_float": "float PSNR (dB)", "yuv_psnr": "YUV PSNR (dB)",
                                            "delta_bpp": "Δbpp", "delta_psnr": "ΔPSNR (dB)"}, _FORMATS),
             SCORING]
    bd = results.bd
    if bd:
        shown = "; ".join(_bd_text(bd, f"bd_rate{s}", f"bd_psnr{s}", how)
                          for s, how in (("", METHODS.get(bd.get("method"), bd.get("method"))), ("_pchip", "PCHIP"))
                          if bd.get(f"bd_rate{s}") is not None or bd.get(f"bd_psnr{s}") is not None)
        if shown:
            lines.append(f"{shown} (guided against no guidance)")
        lines += bd.get("notes", [])
    return "\n\n".join(lines)


METHODS = {"akima": "Akima", "pchip": "PCHIP"}
"""How tables name the BD interpolation methods; PCHIP is the JVET common test conditions' template's."""


def _bd_text(bd: Mapping[str, Any], rate: str, psnr: str, how: str) -> str:
    parts = [f"BD-rate {bd[rate]:+.2f} %" if bd.get(rate) is not None else "",
             f"BD-PSNR {bd[psnr]:+.3f} dB" if bd.get(psnr) is not None else ""]
    return ", ".join(p for p in parts if p) + f" ({how})"


def _format_seeds_table(results: Results) -> str:
    runs = results.per_seed()
    bd_keys = ("bd_rate", "bd_psnr", "bd_rate_pchip", "bd_psnr_pchip")
    rows = [{**row, **({k: run.bd.get(k) for k in bd_keys} if i else {})}
            for run in runs for i, row in enumerate(({"seed": run.config["seed"], **r} for r in run.table))]
    method = METHODS.get(runs[0].bd.get("method"), "Akima")
    table = _seeds_table(rows, "method", {"bpp": "bpp", "psnr": "PSNR (dB)", "psnr_float": "float PSNR (dB)",
                                          "yuv_psnr": "YUV PSNR (dB)", "delta_bpp": "Δbpp", "delta_psnr": "ΔPSNR (dB)",
                                          "bd_rate": f"BD-rate (%, {method})", "bd_psnr": f"BD-PSNR (dB, {method})",
                                          "bd_rate_pchip": "BD-rate (%, PCHIP)", "bd_psnr_pchip": "BD-PSNR (dB, PCHIP)"})
    base, guided = runs[0].table[0]["method"], runs[0].table[1]["method"]
    bd = summary(r.get("bd_rate") for r in rows if r["method"] == guided)  # BD-rate is paired already
    lines = [table, f"mean ± standard deviation over {len(runs)} seeds (seeds {[r.config['seed'] for r in runs]}). "
             + SCORING,
             f"{guided} against {base}, paired by seed:",
             "- Δbpp " + _interval(paired(_by_seed(rows, "method", base, "bpp"), _by_seed(rows, "method", guided, "bpp")),
                                   "{:+.4f}", ""),
             "- ΔPSNR " + _interval(paired(_by_seed(rows, "method", base, "psnr"),
                                           _by_seed(rows, "method", guided, "psnr")), "{:+.3f}", " dB")]
    if bd["n"]:
        for key, how in (("bd_rate", method), ("bd_rate_pchip", "PCHIP")):
            lines.append(f"- BD-rate ({how}) " + _interval(interval(r.get(key) for r in rows if r["method"] == guided),
                                                           "{:+.2f}", " %"))
    return "\n\n".join(lines[:3]) + "\n\n" + "\n".join(lines[3:])


def format_events(results: Results) -> str:
    """The guidance events: step, PSNR just before and after the reload, bpp, seconds."""
    if not results.events:
        return "no guidance events"
    return markdown_table(results.events, {"step": "step", "psnr_before": "PSNR before (dB)",
                                           "psnr_after": "PSNR after (dB)", "bpp": "bpp", "seconds": "seconds"},
                          {"step": "{:,}", "psnr_before": "{:.2f}", "psnr_after": "{:.2f}", "bpp": "{:.4f}",
                           "seconds": "{:.1f}"})


def format_init_table(results: Results) -> str:
    """The initialisation study's arms; over several seeds: mean ± std per arm, and each Tucker arm's
    paired difference to random initialisation."""
    level = results.config["psnr_level"]
    if results.runs:
        rows = results.table
        table = _seeds_table(rows, "arm", {"steps_to_level": f"steps to {level:g} dB", "psnr": "PSNR (dB)",
                                           "tucker_bpp": "Tucker bpp", "tucker_psnr": "Tucker PSNR (dB)"})
        first = rows[0]["arm"]
        lines = [f"- {arm}: ΔPSNR " + _interval(paired(_by_seed(rows, "arm", first, "psnr"),
                                                         _by_seed(rows, "arm", arm, "psnr")), "{:+.3f}", " dB")
                 + "; ΔTucker PSNR " + _interval(paired(_by_seed(rows, "arm", first, "tucker_psnr"),
                                                        _by_seed(rows, "arm", arm, "tucker_psnr")), "{:+.3f}", " dB")
                 for arm in dict.fromkeys(r["arm"] for r in rows) if arm != first]
        return (f"{table}\n\nmean ± standard deviation over the seeds; steps to {level:g} dB over the seeds that "
                f"reached it. PSNR of the uint8 frames.\n\nAgainst {first}, paired by seed:\n" + "\n".join(lines))
    rows = [{**r, "steps_to_level": "never" if r["steps_to_level"] is None else r["steps_to_level"]}
            for r in results.table]
    table = markdown_table(rows, {"arm": "arm", "steps_to_level": f"steps to {level:g} dB", "psnr": "PSNR (dB)",
                                  "tucker_bpp": "Tucker bpp", "tucker_psnr": "Tucker PSNR (dB)"}, _FORMATS)
    return f"{table}\n\nPSNR of the uint8 frames, as a decoder outputs them; steps to {level:g} dB: training PSNR."


def format_train_table(results: Results) -> str:
    """Plain training's table: the model's PSNR, float PSNR, YUV PSNR and MS-SSIM (mean ± std over
    several seeds)."""
    columns = {"psnr": "PSNR (dB)", "psnr_float": "float PSNR (dB)", "yuv_psnr": "YUV PSNR (dB)",
               "ms_ssim": "MS-SSIM", "train_seconds": "training (s)"}
    if results.runs:
        return _seeds_table(results.table, "arm", columns) + "\n\nmean ± standard deviation over the seeds. " + SCORING
    return markdown_table(results.table, {"arm": "arm", **columns}, {**_FORMATS, "ms_ssim": "{:.4f}"}) + "\n\n" + SCORING


_TABLES = {"train": format_train_table, "guide": format_table, "init": format_init_table}


def format_results(results: Results) -> str:
    """The table of any experiment's results, by its kind."""
    return _TABLES[results.kind](results)


def _bounds(low: float | None, high: float | None, fmt: str) -> str:
    """An interval as ``[low, high]``, a dash for none."""
    return "-" if low is None else f"[{fmt.format(low)}, {fmt.format(high)}]"


def format_sweep_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """A sweep's table (``nvpkit.sweep_table`` rows), numbers rounded; rows aggregated over seeds
    show mean ± std, the number of seeds and the 95% intervals of the paired numbers."""
    if not rows:
        return "no finished combinations"
    if "n" not in rows[0]:
        return f"{markdown_table(rows, {c: c for c in rows[0] if c != 'name'}, _FORMATS)}\n\n{SCORING}"
    numbers = [c for c in rows[0] if f"{c}_std" in rows[0]]
    keys = [c for c in rows[0] if c not in numbers and c != "n"
            and not (c.endswith(("_std", "_low", "_high", "_n")) and c.rsplit("_", 1)[0] in numbers)]
    intervals = [c for c in numbers if f"{c}_low" in rows[0]]  # the paired ones (sweep_table's PAIRED)
    cells = [{**{k: r[k] for k in keys}, "n": r["n"],
              **{c: _pm(r[c], r[f"{c}_std"], _FORMATS[c]) + (f" (n={r[f'{c}_n']})" if 0 < r[f"{c}_n"] < r["n"] else "")
                 for c in numbers},
              **{f"{c}_ci": _bounds(r[f"{c}_low"], r[f"{c}_high"], _FORMATS[c]) for c in intervals}} for r in rows]
    table = markdown_table(cells, {**{k: k for k in keys}, "n": "seeds", **{c: c for c in numbers},
                                   **{f"{c}_ci": f"{c} 95% CI" for c in intervals}})
    return (f"{table}\n\nmean ± standard deviation over the seeds; Δ and BD-rate intervals paired by seed (each "
            f"seed's guided arm against its own no-guidance arm). {SCORING}")


def _difference(mean: float | None, low: float | None, high: float | None, fmt: str) -> str:
    """A paired difference as ``mean [low, high]``, starred when the interval excludes 0."""
    if mean is None:
        return "-"
    if low is None:
        return fmt.format(mean)
    return f"{fmt.format(mean)} {_bounds(low, high, fmt)}" + (" *" if _excludes_zero(low, high) else "")


def format_differences(rows: Sequence[Mapping[str, Any]]) -> str:
    """Settings compared with one another (``nvpkit.sweep_differences`` rows): each paired
    difference's mean, its 95% interval, and whether the interval excludes 0."""
    if not rows:
        return "no pairs: no seed ran both settings on the same video"
    numbers = [c for c in rows[0] if f"{c}_low" in rows[0]]
    keys = [c for c in rows[0] if c not in numbers and not c.endswith(("_low", "_high")) and c != "n"]
    cells = [{**{k: r[k] for k in keys}, "n": r["n"],
              **{c: _difference(r[c], r[f"{c}_low"], r[f"{c}_high"], _FORMATS[c]) for c in numbers}} for r in rows]
    table = markdown_table(cells, {**{k: k for k in keys}, "n": "seeds", **{c: f"{c} [95% CI]" for c in numbers}})
    return (f"{table}\n\nsetting minus the `against` setting, guided arms, paired by seed; * the interval excludes 0. "
            "Δ columns use PSNR.")
