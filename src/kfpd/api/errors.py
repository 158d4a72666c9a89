"""The one place where errors become HTTP responses, in KFP's ``{error, code, message}`` shape."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, IntegrityError
from starlette.exceptions import HTTPException as StarletteHTTPException

from kfpd.db.errors import is_unique_violation
from kfpd.domain import grpc_codes
from kfpd.domain.errors import KfpdError

log = logging.getLogger("kfpd.api")

TOO_DEEP = "the request is nested too deeply"
_HTTP_TO_GRPC = {400: 3, 401: 16, 403: 7, 404: 5, 405: 12, 409: 6, 413: 8, 415: 3, 422: 3}


def error_response(status: int, grpc_code: int, message: str) -> JSONResponse:
    return JSONResponse(
        status_code=status,
        content={"error": message, "code": grpc_code, "message": message, "details": []},
    )


def _describe_validation(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(x) for x in err.get("loc", ()) if x != "body")
        msg = err.get("msg", "invalid")
        if err.get("type") == "extra_forbidden":
            msg = "unknown field"
        elif err.get("type") == "json_invalid":
            msg = "malformed JSON"
        parts.append(f"{loc or 'body'}: {msg}")
    return "invalid request: " + "; ".join(parts)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(KfpdError)
    async def _kfpd(_req: Request, exc: KfpdError) -> JSONResponse:
        return error_response(exc.http_status, exc.grpc_code, exc.message)

    @app.exception_handler(RequestValidationError)
    async def _validation(_req: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(400, grpc_codes.INVALID_ARGUMENT, _describe_validation(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_TO_GRPC.get(exc.status_code, 2)
        if isinstance(exc.__cause__, RecursionError):  # FastAPI's JSON body parsing
            return error_response(400, grpc_codes.INVALID_ARGUMENT, TOO_DEEP)
        response = error_response(exc.status_code, code, str(exc.detail))
        response.headers.update(exc.headers or {})  # 405's Allow, for one
        if exc.status_code == 405:
            from kfpd.api.openapi import allowed_methods

            methods = allowed_methods(request.app, request.url.path)
            if methods:
                response.headers["allow"] = ", ".join(methods)
        return response

    @app.exception_handler(RecursionError)
    async def _recursion(req: Request, _exc: RecursionError) -> JSONResponse:
        # Deeply nested input that got past the explicit bounds (spec/limits.py): a clear
        # 400, and one log line instead of a traceback thousands of frames long.
        log.warning("RecursionError on %s %s: input nested too deeply", req.method, req.url.path)
        return error_response(400, grpc_codes.INVALID_ARGUMENT, TOO_DEEP)

    @app.exception_handler(IntegrityError)
    async def _integrity(_req: Request, exc: IntegrityError) -> JSONResponse:
        if is_unique_violation(exc):
            return error_response(
                409, grpc_codes.ALREADY_EXISTS, "a resource with the same identity already exists"
            )
        return error_response(
            400, grpc_codes.FAILED_PRECONDITION, "the request conflicts with stored data"
        )

    @app.exception_handler(DataError)
    async def _data(_req: Request, _exc: DataError) -> JSONResponse:
        return error_response(
            400,
            grpc_codes.INVALID_ARGUMENT,
            "a value does not fit its field (too long or out of range)",
        )

    @app.exception_handler(Exception)
    async def _unexpected(_req: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return error_response(500, grpc_codes.INTERNAL, f"internal error: {type(exc).__name__}")
