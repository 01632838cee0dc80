"""Experiments: the kinds (plain training, guided training, the initialisation study), their
planner and runner, the arm cache and results."""
from .bd import bd_metrics
from .config import AUTO, ExperimentConfig, Timing
from .guidance import MODES, Guidance, PixelProbe
from .guide import GuideConfig
from .init_study import InitConfig
from .initialize import MAPPINGS, PullToInit, steps_to_reach, tucker_init
from .kinds import KINDS, NOTEBOOK_CONFIGS
from .params import field_docs, parse_fields, parse_ladder, parse_list, parse_setting, parse_value
from .planning import Plan, check, check_all, choose_batch, fit_batch, plan
from .results import Results
from .seeds import aggregate, interval, mean_curve, paired, seed_label, summary
from .arms import Monitor, train_arm
from .runner import run_experiment

__all__ = [
    "bd_metrics", "AUTO", "ExperimentConfig", "Timing", "GuideConfig", "InitConfig", "KINDS", "NOTEBOOK_CONFIGS",
    "MODES", "Guidance", "PixelProbe", "MAPPINGS", "PullToInit", "steps_to_reach", "tucker_init", "field_docs",
    "parse_fields", "parse_ladder", "parse_list", "parse_setting", "parse_value", "Plan", "check", "check_all",
    "choose_batch", "fit_batch", "plan", "Results", "aggregate", "interval", "mean_curve", "paired", "seed_label",
    "summary", "Monitor", "run_experiment", "train_arm",
]
