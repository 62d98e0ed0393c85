"""Generated jobs and their metadata in SQLite (``out_dir/history.sqlite``): history survives restarts.

A job is marked ``done`` only after its audio files are written, so a killed server loses no finished result;
jobs still ``queued``/``running`` when a server stopped are failed explicitly at the next start.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    created REAL NOT NULL,
    status TEXT NOT NULL,
    model TEXT NOT NULL,
    prompt TEXT NOT NULL,
    request TEXT NOT NULL,
    result TEXT,
    error TEXT,
    started REAL,
    finished REAL
);
CREATE INDEX IF NOT EXISTS jobs_created ON jobs (created);
CREATE TABLE IF NOT EXISTS ratings (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id TEXT NOT NULL REFERENCES jobs (id),
    clip INTEGER NOT NULL,
    rater TEXT NOT NULL,
    ovl INTEGER NOT NULL,
    rel INTEGER NOT NULL,
    created REAL NOT NULL
);
"""
COLUMNS = ("id", "created", "status", "model", "prompt", "request", "result", "error", "started", "finished")
JSON_COLUMNS = ("request", "result")


class History:
    """One SQLite connection shared by the server's threads behind a lock; every write is committed at once."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def add(self, job_id: str, model: str, prompt: str, request: dict[str, Any]) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO jobs (id, created, status, model, prompt, request) VALUES (?, ?, 'queued', ?, ?, ?)",
                (job_id, time.time(), model, prompt, json.dumps(request)),
            )

    def update(self, job_id: str, **fields: Any) -> None:
        unknown = set(fields) - set(COLUMNS[2:])
        if unknown:
            raise KeyError(f"unknown history columns {sorted(unknown)}")
        values = [json.dumps(v, default=str) if k in JSON_COLUMNS else v for k, v in fields.items()]
        assignments = ", ".join(f"{k} = ?" for k in fields)
        with self._lock:
            self._db.execute(f"UPDATE jobs SET {assignments} WHERE id = ?", (*values, job_id))

    def fail_unfinished(self, reason: str) -> int:
        """Fail every job left ``queued`` or ``running`` (a server stopped under it); returns how many."""
        with self._lock:
            cur = self._db.execute(
                "UPDATE jobs SET status = 'failed', error = ?, finished = ? WHERE status IN ('queued', 'running')",
                (reason, time.time()),
            )
            return cur.rowcount

    def add_rating(self, job_id: str, clip: int, rater: str, ovl: int, rel: int) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO ratings (job_id, clip, rater, ovl, rel, created) VALUES (?, ?, ?, ?, ?, ?)",
                (job_id, clip, rater, ovl, rel, time.time()),
            )

    def ratings(self) -> list[dict[str, Any]]:
        """Every rating with its job's model and request (oldest first)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT r.job_id, r.clip, r.rater, r.ovl, r.rel, r.created, j.model, j.prompt, j.request "
                "FROM ratings r JOIN jobs j ON j.id = r.job_id ORDER BY r.id"
            ).fetchall()
        keys = ("job_id", "clip", "rater", "ovl", "rel", "created", "model", "prompt", "request")
        return [{**dict(zip(keys, row)), "request": json.loads(row[-1])} for row in rows]

    def rated_by(self, rater: str) -> set[tuple[str, int]]:
        with self._lock:
            rows = self._db.execute("SELECT job_id, clip FROM ratings WHERE rater = ?", (rater,)).fetchall()
        return {(job_id, clip) for job_id, clip in rows}

    def done_clips(self, limit: int = 5000) -> list[tuple[str, int, str]]:
        """``(job id, clip index, prompt)`` of the newest ``limit`` finished jobs' clips."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, prompt, result FROM jobs WHERE status = 'done' ORDER BY created DESC LIMIT ?",
                (limit,),
            ).fetchall()
        return [(i, c["index"], p) for i, p, r in rows for c in json.loads(r)["clips"]]

    @staticmethod
    def _row(row: tuple) -> dict[str, Any]:
        job = dict(zip(COLUMNS, row))
        for key in JSON_COLUMNS:
            job[key] = json.loads(job[key]) if job[key] else None
        return job

    def get(self, job_id: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute(
                f"SELECT {', '.join(COLUMNS)} FROM jobs WHERE id = ?", (job_id,)
            ).fetchone()
        return None if row is None else self._row(row)

    def recent(self, limit: int = 50, query: str = "") -> list[dict[str, Any]]:
        """The newest ``limit`` jobs, newest first; ``query`` keeps those whose prompt contains it."""
        pattern = "%" + query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        with self._lock:
            rows = self._db.execute(
                f"SELECT {', '.join(COLUMNS)} FROM jobs WHERE prompt LIKE ? ESCAPE '\\' "
                "ORDER BY created DESC LIMIT ?",
                (pattern, limit),
            ).fetchall()
        return [self._row(r) for r in rows]
