"""Progress bars: live in notebooks and terminals, a few lines a minute where nobody watches.

In a Jupyter kernel or on a terminal a bar redraws as usual. Elsewhere (a CI log, a batch job's
output file) every redraw would be a new line, so the bar redraws at most every ``QUIET_S``
seconds; callers set postfixes with ``refresh=False`` so a changing number does not force a line.
"""
from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any

from tqdm.auto import tqdm

__all__ = ["progress_bar", "interactive", "in_kernel", "QUIET_S"]

QUIET_S = 30.0
"""Seconds between redraws of a bar off a terminal and outside a notebook."""


def in_kernel() -> bool:
    """Whether this code runs in a Jupyter kernel (not merely in a process that imported one)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return shell is not None and hasattr(shell, "kernel")


def interactive(stream: Any = None) -> bool:
    """Whether a person watches the bars: a Jupyter kernel, or ``stream`` (stderr) is a terminal."""
    if in_kernel():
        return True
    stream = stream or sys.stderr
    return bool(getattr(stream, "isatty", lambda: False)())


def progress_bar(iterable: Iterable | None = None, *, total: int | None = None, desc: str = "", unit: str = "it",
             disable: bool = False, initial: int = 0, file: Any = None) -> tqdm:
    """A tqdm bar that is quiet off a terminal (see the module docstring)."""
    quiet = not interactive(file)
    return tqdm(iterable, total=total, desc=desc, unit=unit, disable=disable, initial=initial, file=file,
                mininterval=QUIET_S if quiet else 0.1, maxinterval=QUIET_S if quiet else 10.0)
