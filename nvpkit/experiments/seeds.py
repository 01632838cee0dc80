"""Seeds as an axis: every seed's numbers kept, summaries and paired comparisons computed from them.

An experiment run over several seeds (``seeds = (0, 1, 2)``) trains every arm once per seed; its
results keep each seed's rows. ``summary`` gives mean, standard deviation (n - 1) and n of a list
of numbers, ``interval`` adds a 95% t interval of the mean; ``paired`` the per-seed differences between two arms (same seed: same initialisation
and pixel batches), their mean and a 95% t interval (scipy's one-sample t test on the differences,
which is the paired t test). ``aggregate`` turns rows with a ``seed`` column into one row per group.
"""
from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = ["seed_label", "summary", "interval", "paired", "aggregate", "mean_curve", "CONFIDENCE"]

CONFIDENCE = 0.95
"""Level of the intervals of paired differences."""


def seed_label(arm: str, seed: int) -> str:
    """The name of one seed's run of an arm, as the live plot and the results show it."""
    return f"{arm} · seed {seed}"


def _numbers(values: Iterable[Any]) -> list[float]:
    return [float(v) for v in values if v is not None and math.isfinite(float(v))]


def summary(values: Iterable[Any]) -> dict[str, float | int | None]:
    """``mean``, ``std`` (sample standard deviation; None for one value) and ``n`` of the finite
    numbers in ``values`` (None are left out: a BD-rate that could not be computed)."""
    x = _numbers(values)
    if not x:
        return {"mean": None, "std": None, "n": 0}
    mean = statistics.mean(x)  # correctly rounded: equal values have themselves as mean, a zero spread
    return {"mean": mean, "std": statistics.stdev(x, mean) if len(x) > 1 else None, "n": len(x)}


def interval(values: Iterable[Any]) -> dict[str, Any]:
    """``summary`` of the finite values and a ``CONFIDENCE`` interval of their mean (``low``,
    ``high``: scipy's t interval; the point itself when every value is equal; None for fewer than 2)."""
    x = _numbers(values)
    out = {**summary(x), "low": None, "high": None}
    if len(x) > 1:
        if max(x) == min(x):
            out["low"] = out["high"] = x[0]
        else:
            from scipy import stats

            found = stats.ttest_1samp(x, 0.0).confidence_interval(CONFIDENCE)
            out["low"], out["high"] = float(found.low), float(found.high)
    return out


def paired(first: Sequence[Any], second: Sequence[Any]) -> dict[str, Any]:
    """``second - first`` seed by seed (pairs with a missing value are left out): the differences
    (``diffs``) and their ``interval`` (the paired t test's interval)."""
    if len(first) != len(second):
        raise ValueError(f"paired: {len(first)} values against {len(second)}; give one per seed on both sides")
    diffs = [b - a for a, b in zip(first, second) if a is not None and b is not None]
    return {"diffs": diffs, **interval(diffs)}


def aggregate(rows: Sequence[Mapping[str, Any]], by: Sequence[str], values: Sequence[str]) -> list[dict[str, Any]]:
    """One row per distinct ``by`` values (in first-seen order): ``by``, ``n`` (rows in the group)
    and, for each of ``values``, its mean (``<value>``), standard deviation (``<value>_std``) and the
    count they come from (``<value>_n``: rows without the value, a BD-rate that could not be
    computed, are left out of it)."""
    groups: dict[tuple, list[Mapping[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(row.get(k) for k in by), []).append(row)
    out = []
    for key, group in groups.items():
        row: dict[str, Any] = {**dict(zip(by, key)), "n": len(group)}
        for name in values:
            s = summary(r.get(name) for r in group)
            row[name], row[f"{name}_std"], row[f"{name}_n"] = s["mean"], s["std"], s["n"]
        out.append(row)
    return out


def mean_curve(curves: Sequence[Sequence[Mapping[str, Any]]], metric: str = "psnr") -> list[dict[str, Any]]:
    """Seeds' RD curves at the same settings (point ``i`` of each from the same setting) as one:
    per setting the mean bpp and the mean and standard deviation of ``metric``."""
    if not curves:
        return []
    count = len(curves[0])
    if any(len(c) != count for c in curves):
        raise ValueError(f"mean_curve: the curves have {sorted({len(c) for c in curves})} points; every seed "
                         "must be swept over the same settings")
    out = []
    for i in range(count):
        points = [c[i] for c in curves]
        value = summary(p.get(metric) for p in points)
        out.append({"label": points[0].get("label"), "bpp": summary(p["bpp"] for p in points)["mean"],
                    metric: value["mean"], f"{metric}_std": value["std"], "n": value["n"]})
    return out
