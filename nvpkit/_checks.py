"""Argument checks shared by every layer: errors that name the parameter, its value and what is allowed."""
from __future__ import annotations

import math
from collections.abc import Collection


def is_int(value: object) -> bool:
    """Whether ``value`` is an int proper (``True`` and ``False`` are not)."""
    return isinstance(value, int) and not isinstance(value, bool)


def show(value: object) -> str:
    """``repr(value)`` for an error message, short: an int of many digits is named by its size
    (its repr alone may be megabytes, or beyond Python's int-string limit)."""
    if is_int(value) and value.bit_length() > 130:
        return f"<an int of about {int(value.bit_length() * 0.30103) + 1:,} digits>"
    text = repr(value)
    return text if len(text) <= 200 else text[:200] + "…"


def check_int(where: str, name: str, value: object, lo: int | None = None, hi: int | None = None) -> int:
    """``value`` if it is an int in ``[lo, hi]`` (either bound may be open), else ``ValueError``."""
    if not is_int(value) or (lo is not None and value < lo) or (hi is not None and value > hi):
        allowed = ("an int" + (f" in [{lo}, {hi}]" if lo is not None and hi is not None
                               else f" >= {lo}" if lo is not None else f" <= {hi}" if hi is not None else ""))
        raise ValueError(f"{where}: {name}={show(value)} is not allowed; use {allowed}")
    return value


def check_number(where: str, name: str, value: object, lo: float = 0.0, hi: float = math.inf, *,
                 above: bool = False, note: str = "") -> float:
    """``value`` as a float if it is a real number (not a bool) in ``[lo, hi)`` (``(lo, hi)`` with
    ``above``), else ``ValueError`` saying what is allowed (and ``note``)."""
    if not (is_number(value) and (lo < value if above else lo <= value) and value < hi):
        low = f"> {lo:g}" if above else f">= {lo:g}"
        bound = low if hi == math.inf else f"in {'(' if above else '['}{lo:g}, {hi:g})"
        raise ValueError(f"{where}: {name}={show(value)} is not allowed; use a number {bound}{note}")
    return float(value)


def is_number(value: object) -> bool:
    """Whether ``value`` is a real number proper (an int or a float, not a bool)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_choice(where: str, name: str, value: object, allowed: Collection) -> object:
    """``value`` if it is one of ``allowed``, else ``ValueError`` listing them."""
    try:
        known = value in allowed
    except TypeError:  # an unhashable value (a dict, a list) is none of them
        known = False
    if not known:
        raise ValueError(f"{where}: {name}={show(value)} is not allowed; use one of {sorted(allowed, key=str)}")
    return value
