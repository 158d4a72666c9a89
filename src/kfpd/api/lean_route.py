"""A route class for the calls every task makes (CreateTask, ``:finish``).

FastAPI documents such a route from its endpoint's signature as usual; its requests skip
FastAPI's per-request machinery (dependency solving, JSON decoding then model validation,
response-model handling): the path parameters are passed as they are, the body is validated
straight from its bytes by pydantic-core, and the endpoint's Response is sent as it is. That is
~0.15 ms less per request, ~10 % of bench/metadata_write.py. Everything else — middlewares,
exception handlers, OpenAPI — is the application's.
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError

from kfpd.api.authz import authorize


class LeanRoute(APIRoute):
    """An endpoint ``async def f(request: Request, <path parameters: str>, body: Model)``."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        endpoint = self.endpoint
        hints = typing.get_type_hints(endpoint)
        hints.pop("return", None)
        requests = [name for name, hint in hints.items() if hint is Request]
        bodies = [
            (name, hint)
            for name, hint in hints.items()
            if isinstance(hint, type) and issubclass(hint, BaseModel)
        ]
        path_args = [name for name in hints if name in self.param_convertors]
        if len(requests) != 1 or len(bodies) != 1 or len(hints) != 2 + len(path_args):
            raise TypeError(
                f"{self.path}: a LeanRoute endpoint takes the Request, its path parameters "
                f"and one body model, not {sorted(hints)}"
            )
        request_arg, (body_arg, model) = requests[0], bodies[0]

        async def handle(request: Request) -> Response:
            await authorize(request)  # as every other route does through its dependency
            try:
                body = model.model_validate_json(await request.body())
            except ValidationError as exc:
                # As FastAPI reports a body it cannot validate (see api/errors.py).
                errors = [{**err, "loc": ("body", *err["loc"])} for err in exc.errors()]
                raise RequestValidationError(errors) from exc
            args: dict[str, Any] = {name: request.path_params[name] for name in path_args}
            args[request_arg] = request
            args[body_arg] = body
            response: Response = await endpoint(**args)
            return response

        return handle
