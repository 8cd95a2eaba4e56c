"""The service's errors in OpenAI's shape: ``{"error": {"message", "type", "param", "code"}}``.

Routes raise :class:`APIError`; :func:`install_handlers` turns it, FastAPI's request-validation errors
and Starlette's HTTP errors into that body.

>>> error_body("No such file: 'file-x'", param="id", code="not_found")["error"]["code"]
'not_found'
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match


class APIError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        param: str | None = None,
        code: str | None = None,
        type: str = "invalid_request_error",
        headers: dict[str, str] | None = None,
    ):
        self.status, self.message, self.param, self.code, self.type = status, message, param, code, type
        self.headers = headers


def error_body(
    message: str, type: str = "invalid_request_error", param: str | None = None, code: str | None = None
) -> dict:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorBody(BaseModel):
    """What every refusal answers (documented in the OpenAPI schema through :func:`documented`)."""

    error: ErrorDetail


STATUS_MEANINGS = {
    400: "Invalid request: the message names the parameter, the rule and the fix",
    401: "Missing, unknown, revoked or expired API key",
    403: "A web-session state change without its CSRF token, or from another origin",
    404: "No such object for this key (another key's objects are 404 too)",
    413: "Request body over the server's limit (serve --max-json-mb / --max-upload-mb)",
    429: "Over a per-key limit: a rate (with Retry-After) or active jobs",
    507: "The server could not store the upload (a full disk); nothing was kept",
}


def documented(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a router: each status it may answer, in OpenAI's error shape.

    >>> sorted(documented(401, 404))
    [401, 404]
    """
    return {s: {"model": ErrorBody, "description": STATUS_MEANINGS[s]} for s in statuses}


def not_found(what: str, id_: str) -> APIError:
    return APIError(404, f"No such {what}: '{id_}'", param="id", code="not_found")


HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}


def install_handlers(app: FastAPI) -> None:
    """Every error the app answers, in OpenAI's shape."""

    @app.exception_handler(APIError)
    async def _api_error(_req: Request, e: APIError):
        return JSONResponse(
            error_body(e.message, e.type, e.param, e.code), status_code=e.status, headers=e.headers
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(_req: Request, e: RequestValidationError):
        err = e.errors()[0]
        loc = [str(x) for x in err.get("loc", []) if x not in ("body", "query", "path")]
        param = ".".join(loc) or None
        return JSONResponse(
            error_body(f"{param or 'request'}: {err.get('msg')}", param=param, code="invalid_value"),
            status_code=400,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(req: Request, e: StarletteHTTPException):
        headers = e.headers
        if e.status_code == 405:  # Starlette's Allow names one route's methods, not the path's
            headers = {**(headers or {}), "Allow": ", ".join(sorted(path_methods(req)))}
        return JSONResponse(
            error_body(str(e.detail), code=HTTP_CODES.get(e.status_code)),
            status_code=e.status_code,
            headers=headers,
        )


def path_methods(request: Request) -> set[str]:
    """Every method some route answers at the request's path."""
    methods: set[str] = set()
    for route in iter_route_contexts(request.app.routes):
        if route.methods and route.matches(request.scope)[0] != Match.NONE:
            methods |= route.methods
    return methods
