"""Experiments: guided training, Tucker initialisation, their configs, runner, cache and results."""
from .bd import bd_metrics
from .config import ExperimentConfig, GuideConfig, InitConfig
from .guidance import MODES, Guidance, PixelProbe
from .initialize import MAPPINGS, PullToInit, steps_to_reach, tucker_init
from .params import parse_fields, parse_list, parse_setting, parse_value
from .results import Results
from .runner import Monitor, run_experiment, run_init_experiment, train_arm

__all__ = [
    "bd_metrics", "ExperimentConfig", "GuideConfig", "InitConfig", "MODES", "Guidance", "PixelProbe", "MAPPINGS",
    "PullToInit", "steps_to_reach", "tucker_init", "parse_fields", "parse_list", "parse_setting", "parse_value",
    "Results", "Monitor", "run_experiment", "run_init_experiment", "train_arm",
]
