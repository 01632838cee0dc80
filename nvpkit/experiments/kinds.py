"""The kinds of experiment by name: what the command line, the sweep and results.json name them by."""
from __future__ import annotations

from .config import ExperimentConfig
from .guide import GuideConfig
from .init_study import InitConfig

__all__ = ["KINDS", "NOTEBOOK_CONFIGS"]

KINDS: dict[str, type[ExperimentConfig]] = {cls.kind: cls for cls in (ExperimentConfig, GuideConfig, InitConfig)}
"""Every kind's config class, by its name (``train``, ``guide``, ``init``)."""
NOTEBOOK_CONFIGS: dict[str, type[ExperimentConfig]] = {name: cls for cls in KINDS.values() for name in cls.notebooks}
"""The config each of nvpkit's experiment notebooks builds from its parameters, by notebook name."""
