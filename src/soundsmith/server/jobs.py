"""Bounded work: a fixed number of worker threads, at most ``queue_depth`` jobs accepted at once.

A job runs the model's pipeline, writes one WAV per candidate into ``out_dir/audio/`` and records the result in
the history. Nothing is dropped silently: a job that waited past the timeout, or that was still queued when the
server shut down, is marked failed with the reason.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from soundsmith.errors import SoundsmithError
from soundsmith.server.catalog import ModelCatalog
from soundsmith.server.history import History
from soundsmith.server.spectrogram import render_spectrogram

log = logging.getLogger(__name__)


class QueueFull(Exception):
    """Every slot of the queue is taken (HTTP 429)."""


class ShuttingDown(Exception):
    """The server is stopping and takes no new jobs (HTTP 503)."""


def clip_path(audio_dir: Path, job_id: str, index: int, suffix: str = ".wav") -> Path:
    """Where candidate ``index`` of a job lives; ids are generated hex, never taken from a request."""
    return audio_dir / f"{job_id}-{index}{suffix}"


class JobRunner:
    def __init__(
        self,
        catalog: ModelCatalog,
        history: History,
        audio_dir: Path,
        queue_depth: int,
        workers: int,
        timeout_s: float,
    ) -> None:
        self.catalog = catalog
        self.history = history
        self.audio_dir = Path(audio_dir)
        self.audio_dir.mkdir(parents=True, exist_ok=True)
        self.queue_depth = queue_depth
        self.timeout_s = timeout_s
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="soundsmith-job")
        self._lock = threading.Lock()
        self._futures: dict[str, Future] = {}
        self._queued: list[str] = []  # accepted, not started, oldest first
        self._running: set[str] = set()
        self._closing = False

    # -- state -------------------------------------------------------------------------------------------
    def pending(self) -> int:
        with self._lock:
            return len(self._futures)

    def running(self) -> int:
        with self._lock:
            return len(self._running)

    def position(self, job_id: str) -> int | None:
        """1 for the next job to start; None when the job is not waiting."""
        with self._lock:
            return self._queued.index(job_id) + 1 if job_id in self._queued else None

    def future(self, job_id: str) -> Future | None:
        with self._lock:
            return self._futures.get(job_id)

    # -- work --------------------------------------------------------------------------------------------
    def submit(self, model: str, prompt: str, call: dict[str, Any], request: dict[str, Any]) -> str:
        """Accept a job (or raise :class:`QueueFull` / :class:`ShuttingDown`); returns its id."""
        job_id = uuid.uuid4().hex
        with self._lock:
            if self._closing:
                raise ShuttingDown("the server is shutting down; try again when it is back")
            if len(self._futures) >= self.queue_depth:
                raise QueueFull(
                    f"the server is busy: {len(self._futures)} jobs queued or running (queue depth "
                    f"{self.queue_depth}); retry in a few seconds"
                )
            self.history.add(job_id, model, prompt, request)
            self._queued.append(job_id)
            future = self._pool.submit(self._run, job_id, model, prompt, call, time.monotonic())
            self._futures[job_id] = future
        future.add_done_callback(lambda _: self._forget(job_id))
        return job_id

    def _forget(self, job_id: str) -> None:
        with self._lock:
            self._futures.pop(job_id, None)
            self._running.discard(job_id)
            if job_id in self._queued:
                self._queued.remove(job_id)

    def _run(self, job_id: str, model: str, prompt: str, call: dict[str, Any], accepted: float) -> None:
        with self._lock:
            self._queued.remove(job_id)
            self._running.add(job_id)
        waited = time.monotonic() - accepted
        if waited > self.timeout_s:
            self.history.update(
                job_id,
                status="failed",
                finished=time.time(),
                error=f"timed out: waited {waited:.0f} s in the queue (limit {self.timeout_s:g} s); "
                "the server is overloaded, retry later",
            )
            return
        self.history.update(job_id, status="running", started=time.time())
        try:
            # 1. the shared pipeline, one job at a time per model
            pipe = self.catalog.get(model)
            with self.catalog.run_lock(model):
                result = pipe(prompt, progress=False, **call)
            # 2. one WAV per candidate, carrying prompt, seed and provenance in its metadata, and its spectrogram
            clips = []
            for i in range(len(result.audio)):
                wav = result.save(clip_path(self.audio_dir, job_id, i), index=i)[0]
                render_spectrogram(wav, wav.with_suffix(".png"))
                clips.append(
                    {
                        "index": i,
                        "seed": result.seed + i,
                        "duration": len(result.audio[i]) / result.sample_rate,
                        "url": f"/v1/audio/{job_id}-{i}.wav",
                        "spectrogram_url": f"/v1/audio/{job_id}-{i}.png",
                    }
                )
            # 3. done only once the files are on disk
            self.history.update(
                job_id,
                status="done",
                finished=time.time(),
                result={
                    "sample_rate": result.sample_rate,
                    "seed": result.seed,
                    "clips": clips,
                    "meta": result.meta,
                },
            )
        except SoundsmithError as e:
            self.history.update(job_id, status="failed", finished=time.time(), error=str(e))
        except Exception as e:  # a bug or a broken model: the job fails visibly, the server stays up
            log.exception("job %s failed", job_id)
            self.history.update(
                job_id,
                status="failed",
                finished=time.time(),
                error=f"internal error: {type(e).__name__}: {e}",
            )

    def shutdown(self, wait: bool = True) -> None:
        """Take no new jobs, fail the queued ones explicitly, let the running ones finish."""
        with self._lock:
            self._closing = True
            queued = list(self._queued)
            futures = {job_id: self._futures.get(job_id) for job_id in queued}
        for job_id, future in futures.items():
            if future is not None and future.cancel():
                self.history.update(
                    job_id,
                    status="failed",
                    finished=time.time(),
                    error="the server shut down before this job started; submit it again",
                )
        self._pool.shutdown(wait=wait)
