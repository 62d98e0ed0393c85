"""Training: one Lightning Fabric loop (:class:`Trainer`) for every family; families supply an objective."""

from soundsmith.train.config import TrainConfig
from soundsmith.train.ema import EMA
from soundsmith.train.engine import Trainer
from soundsmith.train.objectives import Objective, get_objective
from soundsmith.train.optimizers import OptimizerSpec
from soundsmith.train.schedules import ScheduleConfig

__all__ = ["EMA", "Objective", "OptimizerSpec", "ScheduleConfig", "TrainConfig", "Trainer", "get_objective"]
