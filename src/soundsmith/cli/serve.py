"""``soundsmith serve``: the HTTP API and the page (soundsmith.server) on uvicorn, bound to loopback by default."""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path

API_KEY_ENV = "SOUNDSMITH_API_KEY"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="serve models over HTTP with a page to generate, listen and compare",
        description="Serve generator models over HTTP (API at /v1, schema at /docs, page at /).",
    )
    p.add_argument(
        "--model",
        action="append",
        metavar="[NAME=]MODEL",
        help="model directory, run directory or shipped name; repeat to serve several (the first is the default). "
        "NAME is what clients ask for (default: the directory's name). Default: the shipped 'default' model",
    )
    p.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)"
    )
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--out-dir", default="soundsmith-serve", help="generated audio + history.sqlite go here")
    p.add_argument(
        "--api-key", help=f"require this key on /v1 (default: ${API_KEY_ENV}); needed off loopback"
    )
    p.add_argument(
        "--queue-depth", type=int, default=8, help="jobs queued or running at once; more get HTTP 429"
    )
    p.add_argument("--workers", type=int, default=1, help="jobs generated at the same time")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds a job may wait in the queue")
    p.add_argument("--max-duration", type=float, default=30.0, help="longest clip a request may ask for (s)")
    p.add_argument("--max-steps", type=int, default=500)
    p.add_argument("--max-candidates", type=int, default=4)
    p.add_argument("--device", default="cpu")
    p.set_defaults(func=run)


def parse_models(specs: list[str] | None) -> dict[str, str]:
    """``["a=runs/x", "models/y"]`` -> ``{"a": "runs/x", "y": "models/y"}``; names must be unique."""
    from soundsmith.errors import ConfigError

    models: dict[str, str] = {}
    for spec in specs or ["default"]:
        name, sep, source = spec.partition("=")
        if not sep:
            source = spec
            name = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(spec.rstrip("/\\")).name) or "model"
        if not name or not source:
            raise ConfigError(f"--model {spec!r}: give MODEL or NAME=MODEL")
        if name in models:
            raise ConfigError(f"--model {spec!r}: the name {name!r} is used twice; give NAME=MODEL")
        models[name] = source
    return models


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from soundsmith.errors import ConfigError
    from soundsmith.server import ServerSettings, create_app
    from soundsmith.server.settings import LOOPBACK_HOSTS

    if not args.model:
        from soundsmith.models.registry import shipped_models

        if "default" not in shipped_models():
            raise ConfigError("there is no default generator yet; give --model a run or model directory")
    api_key = args.api_key or os.environ.get(API_KEY_ENV) or None
    if args.host not in LOOPBACK_HOSTS and api_key is None:
        raise ConfigError(
            f"--host {args.host} exposes the server beyond this machine; set an API key with --api-key or "
            f"${API_KEY_ENV} (or keep the default --host 127.0.0.1)"
        )
    settings = ServerSettings(
        models=parse_models(args.model),
        out_dir=Path(args.out_dir),
        queue_depth=args.queue_depth,
        workers=args.workers,
        timeout_s=args.timeout,
        api_key=api_key,
        device=args.device,
        max_duration_s=args.max_duration,
        max_steps=args.max_steps,
        max_candidates=args.max_candidates,
        preload=True,
    )
    app = create_app(settings)
    print(
        f"soundsmith serving {', '.join(settings.models)} on http://{args.host}:{args.port}/ (API docs: /docs)"
    )
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        timeout_keep_alive=5,
        timeout_graceful_shutdown=int(settings.timeout_s) + 10,
        limit_concurrency=max(64, 4 * settings.queue_depth),
        log_level="info" if args.debug else "warning",
    )
    return 0
