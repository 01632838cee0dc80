"""Where nvpkit's own files are: the sample clips and the notebooks.

In a checkout (an editable install) they are the repository's ``data/`` and ``notebooks/``; an
installed wheel carries copies of both inside the package (``nvpkit/shipped/``).
"""
from __future__ import annotations

import os
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent
_CHECKOUT = _PACKAGE.parent


def _shipped(folder: str) -> Path:
    if (_CHECKOUT / "pyproject.toml").is_file() and (_CHECKOUT / folder).is_dir():
        return _CHECKOUT / folder
    return _PACKAGE / "shipped" / folder


DATA_DIR = _shipped("data")
"""The shipped sample clips (``data/README.md`` gives their sources and licences)."""
NOTEBOOKS_DIR = _shipped("notebooks")
"""nvpkit's notebooks."""


def notebook_path(notebook: str | os.PathLike) -> Path:
    """``notebook`` as a path: a file that exists, or the name of one of nvpkit's notebooks (with or
    without ``.ipynb``); ``FileNotFoundError`` naming both places otherwise."""
    path = Path(notebook)
    if path.is_file():
        return path
    own = NOTEBOOKS_DIR / (path.name if path.suffix == ".ipynb" else f"{path.name}.ipynb")
    if own.is_file():
        return own
    names = sorted(p.stem for p in NOTEBOOKS_DIR.glob("*.ipynb"))
    raise FileNotFoundError(f"no notebook at {str(notebook)!r}; nvpkit's notebooks are {names}")
