"""Bjøntegaard deltas between two RD curves, with the checks that keep them meaningful."""
from __future__ import annotations

import math
import warnings
from typing import Any

import bjontegaard

__all__ = ["bd_metrics"]


def _overlap(a: list[float], b: list[float]) -> float:
    """Overlap of two value ranges as a fraction of the narrower one."""
    width = min(max(a) - min(a), max(b) - min(b))
    return (min(max(a), max(b)) - max(min(a), min(b))) / width if width > 0 else 0.0


def _curve(rows: list[dict]) -> list[dict]:
    """The rows by rate, one point per rate (the best), as BD needs."""
    best: dict[float, dict] = {}
    for r in rows:
        if r["bpp"] not in best or r["psnr"] > best[r["bpp"]]["psnr"]:
            best[r["bpp"]] = r
    return [best[k] for k in sorted(best)]


def bd_metrics(anchor: list[dict], test: list[dict], min_overlap: float = 0.5,
               min_rate_span: float = 0.05) -> dict[str, Any]:
    """BD-rate (%) and BD-PSNR (dB) of ``test`` against ``anchor`` (rows with bpp and psnr), with the
    ``bjontegaard`` package: ``bd_rate``/``bd_psnr`` by ``method`` (Akima interpolation; PCHIP with
    three points), and ``bd_rate_pchip``/``bd_psnr_pchip`` by piecewise cubic (PCHIP) interpolation,
    the method of the JVET common test conditions' reporting template. Each needs three or more
    points per curve. BD-rate is reported when the PSNR ranges overlap by ``min_overlap`` of the
    narrower one; BD-PSNR when the log-rate ranges do and each curve spans at least
    ``min_rate_span`` in log rate (a near-vertical curve makes BD-PSNR a measure of its slope)."""
    a, t = _curve(anchor), _curve(test)
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
    out: dict[str, Any] = {"bd_rate": None, "bd_psnr": None, "bd_rate_pchip": None, "bd_psnr_pchip": None,
                           "method": method, "psnr_overlap": _overlap(pa, pt), "rate_overlap": _overlap(la, lt),
                           "notes": []}
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
        for name, how in ((key, method), (f"{key}_pchip", "pchip")):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    value = float(measure(*args, method=how, require_matching_points=False, min_overlap=0))
            except (ValueError, AssertionError) as err:  # the package's own checks on the curves
                out["notes"].append(f"{name}: not computed ({err or type(err).__name__})")
                continue
            if math.isfinite(value):
                out[name] = value
            else:
                out["notes"].append(f"{name}: interpolation failed")
    return out
