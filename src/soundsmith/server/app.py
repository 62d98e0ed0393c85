"""The HTTP app: parse and check a request, queue a pipeline call, answer with audio or JSON. Thin on purpose.

Endpoints (OpenAPI schema at ``/docs``): ``GET /health``, ``GET /v1/models``, ``POST /v1/generate`` (202, a job
id), ``POST /v1/generate.wav`` (waits; one clip as ``audio/wav``), ``GET /v1/jobs`` (history), ``GET
/v1/jobs/{id}``, ``GET /v1/audio/{id}-{i}.wav`` / ``.png`` (a clip / its spectrogram), the listening test
(``GET /v1/listening/next``, ``POST /v1/ratings``, ``GET /v1/ratings.csv``), and the page at ``/``.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import math
import re
import secrets
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from soundsmith._version import __version__
from soundsmith.server import errors
from soundsmith.server.catalog import ModelCatalog
from soundsmith.server.errors import ApiError
from soundsmith.server.history import History
from soundsmith.server.jobs import JobRunner, QueueFull, ShuttingDown, clip_path
from soundsmith.server.schemas import FAMILY_OPTIONS, SEED_MAX, GenerateRequest, RatingRequest
from soundsmith.server.settings import ServerSettings
from soundsmith.server.spectrogram import warm_up

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024
MAX_GUIDANCE = 100.0
CLIP_NAME = re.compile(r"^([0-9a-f]{32})-(\d{1,2})\.(wav|png)$")
JOB_ID = re.compile(r"^[0-9a-f]{32}$")


# -- request checks: each refusal names the field ------------------------------------------------------------
def _check_number(field: str, value: float | None, low: float, high: float, low_open: bool = False) -> None:
    if value is None:
        return
    if not math.isfinite(value) or value > high or (value <= low if low_open else value < low):
        bound = f"> {low:g}" if low_open else f">= {low:g}"
        raise ApiError(422, f"{field}={value!r} must be a number {bound} and <= {high:g}", field)


def plan_call(
    req: GenerateRequest, settings: ServerSettings, catalog: ModelCatalog
) -> tuple[str, str, dict[str, Any]]:
    """A checked request -> (model name, prompt, the pipeline's keyword arguments). Raises :class:`ApiError`."""
    model = req.model if req.model is not None else settings.default_model
    if model not in catalog:
        raise ApiError(422, f"model={model!r} is not served here; choose one of {catalog.names()}", "model")
    info = catalog.describe(model)
    prompt = req.prompt.strip()
    if not prompt:
        raise ApiError(
            422, 'prompt is empty; describe the sound, e.g. "a bell rings twice over rain"', "prompt"
        )
    if len(prompt) > settings.max_prompt_chars:
        raise ApiError(
            422, f"prompt has {len(prompt)} characters; the limit is {settings.max_prompt_chars}", "prompt"
        )
    duration = info["default_duration"] if req.duration is None else req.duration
    _check_number("duration", duration, 0.0, settings.max_duration_s, low_open=True)
    if not 1 <= req.num_candidates <= settings.max_candidates:
        raise ApiError(
            422,
            f"num_candidates={req.num_candidates} must be from 1 to {settings.max_candidates}",
            "num_candidates",
        )
    seed = secrets.randbelow(SEED_MAX - settings.max_candidates) if req.seed is None else req.seed
    if not 0 <= seed <= SEED_MAX - req.num_candidates:
        raise ApiError(422, f"seed={seed} must be from 0 to {SEED_MAX - req.num_candidates}", "seed")
    if req.steps is not None and not 1 <= req.steps <= settings.max_steps:
        raise ApiError(422, f"steps={req.steps} must be from 1 to {settings.max_steps}", "steps")
    _check_number("guidance", req.guidance, 0.0, MAX_GUIDANCE)
    call: dict[str, Any] = {
        "duration": float(duration),
        "seed": seed,
        "num_candidates": req.num_candidates,
        "steps": req.steps,
        "guidance": req.guidance,
    }
    # family options: forwarded only to a pipeline that takes them
    for name in FAMILY_OPTIONS:
        value = getattr(req, name)
        if value is None:
            continue
        if name not in info["options"]:
            takes = ", ".join(info["options"]) or "none of them"
            raise ApiError(
                422,
                f"{name} does not apply to model {model!r} (family {info['family']}); its options: {takes}",
                name,
            )
        call[name] = value
    if "negative_prompt" in call:
        negative = call["negative_prompt"].strip()
        if not negative or len(negative) > settings.max_prompt_chars:
            raise ApiError(
                422,
                f"negative_prompt must be 1 to {settings.max_prompt_chars} characters of text",
                "negative_prompt",
            )
        call["negative_prompt"] = negative
    _check_number("temperature", call.get("temperature"), 0.0, 10.0, low_open=True)
    _check_number("top_p", call.get("top_p"), 0.0, 1.0, low_open=True)
    if call.get("top_k") is not None and call["top_k"] < 0:
        raise ApiError(422, f"top_k={call['top_k']} must be >= 0 (0: off)", "top_k")
    return model, prompt, call


def job_view(job: dict[str, Any], runner: JobRunner) -> dict[str, Any]:
    """A history row as the API shows it."""
    view = {
        "id": job["id"],
        "status": job["status"],
        "model": job["model"],
        "prompt": job["prompt"],
        "request": job["request"],
        "created": job["created"],
        "started": job["started"],
        "finished": job["finished"],
        "url": f"/v1/jobs/{job['id']}",
    }
    if job["status"] == "queued":
        view["position"] = runner.position(job["id"])
    if job["status"] == "failed":
        view["error"] = job["error"]
    if job["status"] == "done" and job["result"]:
        view.update(job["result"])
    return view


# -- the app -------------------------------------------------------------------------------------------------
def create_app(settings: ServerSettings) -> FastAPI:
    """The FastAPI app serving ``settings.models``; generated audio and history go to ``settings.out_dir``."""
    catalog = ModelCatalog(settings.models, device=settings.device)
    history = History(settings.out_dir / "history.sqlite")
    interrupted = history.fail_unfinished("the server stopped before this job finished; submit it again")
    if interrupted:
        log.warning("%d job(s) left unfinished by the last server were marked failed", interrupted)
    runner = JobRunner(
        catalog,
        history,
        settings.out_dir / "audio",
        queue_depth=settings.queue_depth,
        workers=settings.workers,
        timeout_s=settings.timeout_s,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if settings.preload:
            await asyncio.to_thread(catalog.get, settings.default_model)
            await asyncio.to_thread(warm_up)
        yield
        # graceful shutdown: queued jobs are failed explicitly, running ones finish
        await asyncio.to_thread(runner.shutdown)
        history.close()

    app = FastAPI(
        title="soundsmith",
        version=__version__,
        description="Generate audio from text with soundsmith models. Errors are "
        '`{"error": {"status", "field", "message"}}`.',
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.catalog = catalog
    app.state.history = history
    app.state.runner = runner
    app.add_exception_handler(ApiError, errors.api_error_handler)
    app.add_exception_handler(StarletteHTTPException, errors.http_error_handler)
    app.add_exception_handler(RequestValidationError, errors.validation_error_handler)

    @app.middleware("http")
    async def limit_body(request: Request, call_next):
        if request.method in ("POST", "PUT", "PATCH"):
            length = request.headers.get("content-length")
            if length is None or not length.isdigit():
                return errors.error_response(411, "send the body with a Content-Length header")
            if int(length) > MAX_BODY_BYTES:
                return errors.error_response(413, f"the request body is over {MAX_BODY_BYTES} bytes")
        return await call_next(request)

    def require_key(request: Request) -> None:
        if settings.api_key is None:
            return
        given = request.headers.get("x-api-key") or ""
        auth = request.headers.get("authorization") or ""
        if auth.lower().startswith("bearer "):
            given = auth[7:].strip()
        if not hmac.compare_digest(given.encode(), settings.api_key.encode()):
            raise ApiError(
                401,
                "missing or wrong API key; send 'Authorization: Bearer KEY'",
                headers={"WWW-Authenticate": "Bearer"},
            )

    api = APIRouter(prefix="/v1", dependencies=[Depends(require_key)])

    @app.get("/health")
    def health() -> dict[str, Any]:
        """Liveness and load: models loaded, jobs queued or running (no API key needed)."""
        return {
            "status": "ok",
            "version": __version__,
            "models": catalog.names(),
            "models_loaded": catalog.loaded(),
            "queue": {
                "pending": runner.pending(),
                "running": runner.running(),
                "depth": settings.queue_depth,
            },
            "auth": settings.api_key is not None,
        }

    @api.get("/models")
    def models() -> dict[str, Any]:
        """The models served here (clients choose by name) and the per-request limits."""
        return {
            "default": settings.default_model,
            "models": [catalog.describe(name) for name in catalog.names()],
            "limits": {
                "max_duration": settings.max_duration_s,
                "max_steps": settings.max_steps,
                "max_candidates": settings.max_candidates,
                "max_prompt_chars": settings.max_prompt_chars,
                "queue_depth": settings.queue_depth,
                "timeout_s": settings.timeout_s,
            },
        }

    def submit(req: GenerateRequest) -> str:
        model, prompt, call = plan_call(req, settings, catalog)
        request = {"model": model, "prompt": prompt, **call}
        try:
            return runner.submit(model, prompt, call, request)
        except QueueFull as e:
            raise ApiError(429, str(e), headers={"Retry-After": "5"}) from None
        except ShuttingDown as e:
            raise ApiError(503, str(e)) from None

    @api.post("/generate", status_code=202)
    def generate(req: GenerateRequest) -> JSONResponse:
        """Queue a generation; poll ``GET /v1/jobs/{id}`` (the ``url`` returned) for status and audio."""
        job_id = submit(req)
        view = job_view(history.get(job_id), runner)
        return JSONResponse(view, status_code=202, headers={"Location": view["url"]})

    @api.post(
        "/generate.wav",
        response_class=FileResponse,
        responses={
            200: {"content": {"audio/wav": {}}, "description": "the clip, provenance in X-Soundsmith-*"}
        },
    )
    async def generate_wav(req: GenerateRequest) -> FileResponse:
        """Generate one short clip and answer with it (``audio/wav``), waiting at most the server's timeout."""
        if req.num_candidates != 1:
            raise ApiError(
                422,
                "the synchronous endpoint returns one clip; use POST /v1/generate for several candidates",
                "num_candidates",
            )
        job_id = submit(req)
        future = runner.future(job_id)
        if future is not None:
            try:
                await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(future)), settings.timeout_s)
            except TimeoutError:
                raise ApiError(
                    504, f"not finished after {settings.timeout_s:g} s; poll /v1/jobs/{job_id} for it"
                ) from None
        job = history.get(job_id)
        if job["status"] != "done":
            internal = (job["error"] or "").startswith("internal error")
            raise ApiError(500 if internal else 422, job["error"] or f"job ended {job['status']}")
        meta = job["result"]["meta"]
        headers = {
            "X-Soundsmith-Job": job_id,
            "X-Soundsmith-Seed": str(job["result"]["seed"]),
            "X-Soundsmith-Model": job["model"],
            "X-Soundsmith-Family": str(meta.get("family", "")),
            "X-Soundsmith-Weights-Sha256": str(meta.get("weights_sha256", "")),
        }
        path = clip_path(runner.audio_dir, job_id, 0)
        return FileResponse(
            path, media_type="audio/wav", headers=headers, filename=f"soundsmith-{job_id}.wav"
        )

    @api.get("/jobs")
    def jobs(
        limit: int = Query(50, ge=1, le=settings.history_page), q: str = Query("", max_length=200)
    ) -> dict[str, Any]:
        """History, newest first; ``q`` keeps the jobs whose prompt contains it."""
        return {"jobs": [job_view(job, runner) for job in history.recent(limit, q)]}

    @api.get("/jobs/{job_id}")
    def job(job_id: str) -> dict[str, Any]:
        """A job's status (``queued`` with its position, ``running``, ``done`` with clips, ``failed`` with why)."""
        row = history.get(job_id) if JOB_ID.match(job_id) else None
        if row is None:
            raise ApiError(404, f"no job {job_id!r}; job ids come from POST /v1/generate")
        return job_view(row, runner)

    @api.get("/audio/{name}", response_class=FileResponse)
    def audio(name: str) -> FileResponse:
        """Candidate ``i`` of a job as WAV (prompt, seed and provenance in its metadata) or its spectrogram PNG."""
        match = CLIP_NAME.match(name)
        row = history.get(match.group(1)) if match else None
        index = int(match.group(2)) if match else -1
        clips = (row or {}).get("result") or {}
        if row is None or row["status"] != "done" or not 0 <= index < len(clips.get("clips", [])):
            raise ApiError(404, f"no clip {name!r}; clip URLs come from a finished job's 'clips'")
        wav = clip_path(runner.audio_dir, row["id"], index)
        if not wav.is_file():
            raise ApiError(410, f"clip {name!r} was deleted from the server's output directory")
        if match.group(3) == "png":
            from soundsmith.server.spectrogram import render_spectrogram

            png = wav.with_suffix(".png")
            if not png.is_file():
                render_spectrogram(wav, png)
            return FileResponse(png, media_type="image/png")
        return FileResponse(wav, media_type="audio/wav", content_disposition_type="inline", filename=name)

    @api.get("/listening/next")
    def listening_next(rater: str = Query(min_length=1, max_length=64)) -> dict[str, Any]:
        """A random finished clip that ``rater`` has not rated yet, shown blind (no model, no settings)."""
        rated = history.rated_by(rater)
        todo = [(job_id, i, prompt) for job_id, i, prompt in history.done_clips() if (job_id, i) not in rated]
        if not todo:
            return {"clip": None, "remaining": 0}
        job_id, i, prompt = secrets.choice(todo)
        return {
            "clip": f"{job_id}-{i}",
            "prompt": prompt,
            "audio_url": f"/v1/audio/{job_id}-{i}.wav",
            "remaining": len(todo),
        }

    @api.post("/ratings", status_code=201)
    def rate(req: RatingRequest) -> dict[str, Any]:
        """Store one rating of a finished clip."""
        job_id, _, index = req.clip.partition("-")
        row = history.get(job_id)
        clips = ((row or {}).get("result") or {}).get("clips", [])
        if row is None or row["status"] != "done" or not int(index) < len(clips):
            raise ApiError(
                404, f"no finished clip {req.clip!r}; clip ids come from GET /v1/listening/next", "clip"
            )
        rater = req.rater.strip()
        if not rater:
            raise ApiError(422, "rater is only white space; give a name", "rater")
        history.add_rating(job_id, int(index), rater, req.ovl, req.rel)
        return {"stored": True, "clip": req.clip}

    @api.get("/ratings.csv", response_class=Response, responses={200: {"content": {"text/csv": {}}}})
    def ratings_csv(raw: bool = False) -> Response:
        """Per-system OVL/REL means with 95% intervals (or, with ``raw=true``, every rating) as CSV."""
        from soundsmith.server import listening

        rows = history.ratings()
        text = listening.ratings_csv(rows) if raw else listening.summary_csv(rows)
        name = "soundsmith-ratings.csv" if raw else "soundsmith-ratings-summary.csv"
        return Response(
            text, media_type="text/csv", headers={"Content-Disposition": f'attachment; filename="{name}"'}
        )

    app.include_router(api)

    static = resources.files("soundsmith.server") / "static"
    app.mount("/static", StaticFiles(directory=str(static)), name="static")

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(str(static / "index.html"), media_type="text/html")

    return app
