"""Argument checks shared by every layer: errors that name the parameter, its value and what is allowed."""
from __future__ import annotations

from collections.abc import Collection


def is_int(value: object) -> bool:
    """Whether ``value`` is an int proper (``True`` and ``False`` are not)."""
    return isinstance(value, int) and not isinstance(value, bool)


def check_int(where: str, name: str, value: object, lo: int | None = None, hi: int | None = None) -> int:
    """``value`` if it is an int in ``[lo, hi]`` (either bound may be open), else ``ValueError``."""
    if not is_int(value) or (lo is not None and value < lo) or (hi is not None and value > hi):
        allowed = ("an int" + (f" in [{lo}, {hi}]" if lo is not None and hi is not None
                               else f" >= {lo}" if lo is not None else f" <= {hi}" if hi is not None else ""))
        raise ValueError(f"{where}: {name}={value!r} is not allowed; use {allowed}")
    return value


def check_choice(where: str, name: str, value: object, allowed: Collection) -> object:
    """``value`` if it is one of ``allowed``, else ``ValueError`` listing them."""
    if value not in allowed:
        raise ValueError(f"{where}: {name}={value!r} is not allowed; use one of {sorted(allowed, key=str)}")
    return value
