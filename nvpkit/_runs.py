"""Provenance and the out_dir rule shared by the experiment runners."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any


def git_commit() -> str | None:
    """The commit of the nvpkit checkout in use, if it is one."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                             cwd=Path(__file__).resolve().parent, timeout=10)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def parse_value(text: Any) -> Any:
    """A notebook parameter's text as an int, else a float, else itself ("2" -> 2, "0.8" -> 0.8)."""
    if not isinstance(text, str):
        return text
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def check_out_dir(out_dir: str, config: dict[str, Any], overwrite: bool) -> Path:
    """Create ``out_dir``, refusing one whose results.json came from other parameters (unless
    ``overwrite``): nothing is replaced silently."""
    out = Path(out_dir)
    existing = out / "results.json"
    if existing.exists() and not overwrite:
        saved = json.loads(existing.read_text()).get("config")
        if saved != config:
            raise FileExistsError(f"{str(out)!r} holds results of other parameters; choose another out_dir or "
                                  "set overwrite=True")
    out.mkdir(parents=True, exist_ok=True)
    return out
