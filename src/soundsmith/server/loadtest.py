"""Load test, loopback only: N concurrent clients send M generation requests in all; latency, throughput, errors.

    python -m soundsmith.server.loadtest --model DIR --clients 4 --requests 40 --duration 0.5 --queue-depth 8

starts a server in this process on 127.0.0.1 (or, with ``--url http://127.0.0.1:PORT``, loads a running one)
and prints p50/p95 latency of ``POST /v1/generate.wav``, throughput, HTTP 429s, other errors and the process's
peak memory. Bounded in count (``--requests``) and time (``--max-seconds``). With ``clients <= queue depth`` no
request should be refused; above it, the extra ones get 429.
"""

from __future__ import annotations

import argparse
import json
import resource
import socket
import sys
import threading
import time
from collections import Counter
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np

from soundsmith.server.settings import LOOPBACK_HOSTS

MAX_REQUESTS = 10_000


@contextmanager
def local_server(models: dict[str, Any], out_dir: Path, **settings: Any):
    """A uvicorn serving ``models`` on 127.0.0.1 in a thread; yields its base URL."""
    import uvicorn

    from soundsmith.server import ServerSettings, create_app

    app = create_app(ServerSettings(models=models, out_dir=out_dir, **{"preload": True, **settings}))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=30))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not server.started and time.monotonic() < deadline and thread.is_alive():
        time.sleep(0.05)
    if not server.started:
        raise RuntimeError("the server did not start within 120 s")
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=60)
        sock.close()


def run_load(
    url: str, clients: int, requests: int, body: dict[str, Any], max_seconds: float = 120.0, api_key: str = ""
) -> dict[str, Any]:
    """``clients`` threads share ``requests`` requests to ``url``/v1/generate.wav; returns the figures."""
    import httpx

    host = urlparse(url).hostname
    if host not in LOOPBACK_HOSTS:
        raise ValueError(
            f"{url}: the load test only talks to loopback addresses ({', '.join(LOOPBACK_HOSTS)})"
        )
    if not 1 <= requests <= MAX_REQUESTS or clients < 1:
        raise ValueError(f"requests must be 1..{MAX_REQUESTS} and clients >= 1")
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    lock = threading.Lock()
    remaining = [requests]
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    stop = time.monotonic() + max_seconds

    def client() -> None:
        with httpx.Client(timeout=max_seconds, headers=headers) as http:
            while time.monotonic() < stop:
                with lock:
                    if remaining[0] == 0:
                        return
                    remaining[0] -= 1
                t0 = time.perf_counter()
                try:
                    status = str(http.post(f"{url}/v1/generate.wav", json=body).status_code)
                except httpx.HTTPError as e:
                    status = type(e).__name__
                with lock:
                    statuses[status] += 1
                    if status == "200":
                        latencies.append(time.perf_counter() - t0)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    ok = statuses.get("200", 0)
    lat = np.asarray(latencies) if latencies else np.asarray([np.nan])
    return {
        "clients": clients,
        "sent": sum(statuses.values()),
        "ok": ok,
        "refused_429": statuses.get("429", 0),
        "errors": sum(n for s, n in statuses.items() if s not in ("200", "429")),
        "statuses": dict(statuses),
        "p50_s": float(np.percentile(lat, 50)),
        "p95_s": float(np.percentile(lat, 95)),
        "throughput_per_s": ok / wall,
        "audio_seconds_per_s": ok * float(body.get("duration") or 0) / wall,
        "wall_s": wall,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m soundsmith.server.loadtest", description=__doc__.split("\n")[0]
    )
    p.add_argument("--model", help="model directory to serve in-process (or give --url)")
    p.add_argument("--url", help="a running server on loopback, e.g. http://127.0.0.1:8000")
    p.add_argument("--api-key", default="")
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--requests", type=int, default=40)
    p.add_argument("--duration", type=float, default=0.5, help="seconds of audio per request")
    p.add_argument("--prompt", default="a bell rings twice")
    p.add_argument("--queue-depth", type=int, default=8)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--max-seconds", type=float, default=120.0)
    p.add_argument("--out-dir", default=None, help="server output directory (default: a temporary one)")
    args = p.parse_args(argv)
    body = {"prompt": args.prompt, "duration": args.duration, "seed": 0}
    if args.url:
        figures = run_load(args.url, args.clients, args.requests, body, args.max_seconds, args.api_key)
    elif args.model:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            out = Path(args.out_dir or tmp)
            settings = {
                "queue_depth": args.queue_depth,
                "workers": args.workers,
                "timeout_s": args.max_seconds,
            }
            with local_server({"model": args.model}, out, **settings) as url:
                figures = run_load(url, args.clients, args.requests, body, args.max_seconds)
        figures["queue_depth"], figures["workers"] = args.queue_depth, args.workers
    else:
        p.error("give --model DIR (serve it here) or --url (a running server on loopback)")
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
