"""Training objectives, one module per model family: ``soundsmith.train.objectives.<family>.OBJECTIVE``."""

from __future__ import annotations

import importlib
import pkgutil

from soundsmith.errors import ConfigError
from soundsmith.train.objectives.base import Objective


def available_objectives() -> list[str]:
    """Family names that have an objective module here."""
    return sorted(
        m.name for m in pkgutil.iter_modules(__path__) if m.name != "base" and not m.name.startswith("_")
    )


def get_objective(family: str) -> type[Objective]:
    """The ``OBJECTIVE`` class of ``soundsmith.train.objectives.<family>``; unknown names list the valid ones."""
    names = available_objectives()
    if not isinstance(family, str) or family not in names:
        raise ConfigError(
            f"no training objective for model family {family!r}; families with one: {', '.join(names) or 'none'}"
        )
    module = importlib.import_module(f"{__name__}.{family}")
    cls = getattr(module, "OBJECTIVE", None)
    if cls is None:
        raise ConfigError(
            f"soundsmith.train.objectives.{family} defines no OBJECTIVE class; add OBJECTIVE = YourClass"
        )
    return cls


__all__ = ["Objective", "available_objectives", "get_objective"]
