"""Training objectives, one module per model family, found through the family's declaration
(``soundsmith/families/<name>.py``: ``Family(objective="soundsmith.train.objectives.<name>:TheObjective")``)."""

from __future__ import annotations

from soundsmith import families
from soundsmith.errors import ConfigError, ModelError
from soundsmith.train.objectives.base import Objective


def available_objectives() -> list[str]:
    """Names of the declared families that have a training objective."""
    return sorted(name for name, fam in families.all_families().items() if fam.objective is not None)


def get_objective(family: str) -> type[Objective]:
    """The objective class that family ``family`` declares; unknown names list the families that have one."""
    names = available_objectives()
    if not isinstance(family, str) or family not in names:
        raise ConfigError(
            f"no training objective for model family {family!r}; families with one: {', '.join(names) or 'none'}"
        )
    try:
        cls = families.get(family).objective_class()
    except ModelError as e:
        raise ConfigError(str(e)) from e
    if not (isinstance(cls, type) and issubclass(cls, Objective)):
        raise ConfigError(f"family {family!r}: its objective {cls!r} is not a subclass of Objective")
    return cls


__all__ = ["Objective", "available_objectives", "get_objective"]
