"""What a server is allowed to do: its models, output directory, queue depth and per-request limits."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from soundsmith.pipelines.base import MAX_CANDIDATES, MAX_DURATION_S

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


@dataclass
class ServerSettings:
    """Settings of one ``soundsmith serve`` app.

    models: name -> model directory, run directory, shipped name, or an already built
        :class:`~soundsmith.pipelines.Pipeline`. Requests choose among these names only: a request never names a
        path. The first entry is the default.
    out_dir: where generated audio and the SQLite history (``history.sqlite``) live; history survives restarts.
    queue_depth: jobs accepted at once (queued + running); one more gets HTTP 429.
    workers: jobs run at the same time (each model also runs one job at a time).
    timeout_s: a job that has not started this long after it was accepted fails ("timed out in the queue"); the
        synchronous endpoint waits at most this long for its audio (then 504, the job id to poll).
    api_key: when set, every ``/v1`` request needs ``Authorization: Bearer KEY`` (or ``X-API-Key: KEY``).
    max_*: per-request limits (the library's own limits still apply below them).
    preload: load the default model (and the spectrogram renderer) when the server starts, not on first use.
    """

    models: dict[str, Any]
    out_dir: Path
    queue_depth: int = 8
    workers: int = 1
    timeout_s: float = 300.0
    api_key: str | None = None
    device: str = "cpu"
    max_duration_s: float = 30.0
    max_steps: int = 500
    max_candidates: int = 4
    max_prompt_chars: int = 500
    history_page: int = 200
    preload: bool = False

    def __post_init__(self) -> None:
        from soundsmith.errors import ConfigError

        self.out_dir = Path(self.out_dir)
        if not self.models:
            raise ConfigError("the server needs at least one model: give --model DIR (or NAME=DIR)")
        for name in self.models:
            if (
                not isinstance(name, str)
                or not name
                or not name.replace("-", "").replace("_", "").replace(".", "").isalnum()
            ):
                raise ConfigError(f"model name {name!r} must be letters, digits, '-', '_' or '.'")
        for key, low in (("queue_depth", 1), ("workers", 1), ("max_steps", 1), ("max_prompt_chars", 1)):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"{key}={value!r} must be an integer >= {low}")
        if not 0 < self.max_duration_s <= MAX_DURATION_S:
            raise ConfigError(f"max_duration_s={self.max_duration_s} must be in (0, {MAX_DURATION_S:g}]")
        if not 1 <= self.max_candidates <= MAX_CANDIDATES:
            raise ConfigError(f"max_candidates={self.max_candidates} must be from 1 to {MAX_CANDIDATES}")
        if not self.timeout_s > 0:
            raise ConfigError(f"timeout_s={self.timeout_s} must be a positive number of seconds")
        if self.api_key is not None and len(self.api_key) < 8:
            raise ConfigError("the API key is shorter than 8 characters; use a long random string")

    @property
    def default_model(self) -> str:
        return next(iter(self.models))
