"""The service's errors in OpenAI's shape: ``{"error": {"message", "type", "param", "code"}}``.

Routes raise :class:`APIError`; :func:`install_handlers` turns it, FastAPI's request-validation errors
and Starlette's HTTP errors into that body.

>>> error_body("No such file: 'file-x'", param="id", code="not_found")["error"]["code"]
'not_found'
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException


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
    async def _http(_req: Request, e: StarletteHTTPException):
        return JSONResponse(
            error_body(str(e.detail), code=HTTP_CODES.get(e.status_code)),
            status_code=e.status_code,
            headers=e.headers,
        )
