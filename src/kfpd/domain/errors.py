"""The kfpd exception tree. Services raise these; the API turns them into HTTP at one place.

KfpdError
├── InvalidArgument      400  bad input (malformed body, filter, spec, page token)
├── NotFound             404  unknown id
├── AlreadyExists        409  unique name taken
├── FailedPrecondition   400  the resource is in the wrong state for the call
│   ├── RunIsTerminal    409  writes to a finished run's tasks or links
│   └── TaskIsFinal      409  a second finish of a task, or log text after it ended
├── PayloadTooLarge      413  body over the configured limit
├── Unauthenticated      401
└── PermissionDenied     403  a credential for something else (a token for another run)
"""

from __future__ import annotations

from kfpd.domain import grpc_codes


class KfpdError(Exception):
    """Base of every error kfpd reports to a caller."""

    http_status = 500
    grpc_code = grpc_codes.INTERNAL

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(KfpdError):
    http_status = 400
    grpc_code = grpc_codes.INVALID_ARGUMENT


class NotFound(KfpdError):
    http_status = 404
    grpc_code = grpc_codes.NOT_FOUND


class AlreadyExists(KfpdError):
    http_status = 409
    grpc_code = grpc_codes.ALREADY_EXISTS


class FailedPrecondition(KfpdError):
    http_status = 400
    grpc_code = grpc_codes.FAILED_PRECONDITION


class RunIsTerminal(FailedPrecondition):
    http_status = 409


class TaskIsFinal(FailedPrecondition):
    http_status = 409


class PayloadTooLarge(KfpdError):
    http_status = 413
    grpc_code = grpc_codes.RESOURCE_EXHAUSTED


class Unauthenticated(KfpdError):
    http_status = 401
    grpc_code = grpc_codes.UNAUTHENTICATED


class PermissionDenied(KfpdError):
    http_status = 403
    grpc_code = grpc_codes.PERMISSION_DENIED
