"""HTTP errors as JSON: ``{"error": {"status": 422, "field": "duration", "message": "..."}}``."""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException


class ApiError(Exception):
    """A request the server refuses: HTTP status, the field at fault (or None) and what to do."""

    def __init__(self, status: int, message: str, field: str | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field
        self.headers = headers


def error_response(
    status: int, message: str, field: str | None = None, headers: dict | None = None
) -> JSONResponse:
    return JSONResponse(
        {"error": {"status": status, "field": field, "message": message}}, status_code=status, headers=headers
    )


async def api_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.message, exc.field, exc.headers)


async def http_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    message = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail)
    if exc.status_code == 404 and message == "Not Found":
        message = f"no such endpoint: {request.method} {request.url.path}; see /docs"
    return error_response(exc.status_code, message, headers=getattr(exc, "headers", None))


def _describe(error: dict[str, Any]) -> tuple[int, str, str | None]:
    """One pydantic error -> (status, message, field)."""
    loc = [str(part) for part in error.get("loc", ()) if part != "body"]
    field = ".".join(loc) or None
    kind = error.get("type", "")
    if kind == "json_invalid":
        reason = (error.get("ctx") or {}).get("error", "")
        return 400, f"the request body is not valid JSON ({reason}); send a JSON object", None
    if kind == "extra_forbidden":
        return 422, f"unknown field {field!r}; see the request schema at /docs", field
    if kind == "missing":
        if field is None:
            return 422, 'the request needs a JSON body, e.g. {"prompt": "a bell rings"}', None
        return 422, f"{field} is required", field
    if kind == "model_type" or (field is None and kind.endswith("_type")):
        return 422, 'the request body must be a JSON object, e.g. {"prompt": "a bell rings"}', None
    value = error.get("input")
    shown = (
        json.dumps(value)
        if isinstance(value, (str, int, float, bool)) or value is None
        else type(value).__name__
    )
    return 422, f"{field}={shown}: {error.get('msg', 'invalid value')}", field


async def validation_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    status, message, field = _describe(errors[0]) if errors else (422, "invalid request", None)
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
    return error_response(status, message, field)
