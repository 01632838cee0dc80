"""Experiments: guided training, Tucker initialisation, their configs, runner, cache and results."""
from .bd import bd_metrics
from .config import NOTEBOOK_CONFIGS, ExperimentConfig, GuideConfig, InitConfig
from .guidance import MODES, Guidance, PixelProbe
from .initialize import MAPPINGS, PullToInit, steps_to_reach, tucker_init
from .params import parse_fields, parse_list, parse_setting, parse_value
from .planning import Plan, check, check_all, plan
from .results import Results
from .seeds import aggregate, interval, mean_curve, paired, seed_label, summary
from .runner import Monitor, run_experiment, run_init_experiment, train_arm

__all__ = [
    "bd_metrics", "NOTEBOOK_CONFIGS", "ExperimentConfig", "GuideConfig", "InitConfig", "MODES", "Guidance", "PixelProbe", "MAPPINGS",
    "PullToInit", "steps_to_reach", "tucker_init", "parse_fields", "parse_list", "parse_setting", "parse_value",
    "Plan", "check", "check_all", "plan", "Results", "aggregate", "interval", "mean_curve", "paired", "seed_label", "summary", "Monitor", "run_experiment", "run_init_experiment", "train_arm",
]
