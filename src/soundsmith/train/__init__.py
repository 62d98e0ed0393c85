"""Training: one Lightning Fabric loop (:class:`Trainer`) for every family; families supply an objective."""

from soundsmith.train.config import TrainConfig
from soundsmith.train.ema import EMA
from soundsmith.train.engine import Trainer
from soundsmith.train.objectives import Objective, get_objective

__all__ = ["EMA", "Objective", "TrainConfig", "Trainer", "get_objective"]
