"""The launcher's calls to the server, over plain ``http.client``.

A launcher starts often (every task, in every pod): the standard library's HTTP client
imports in a few milliseconds where a full client stack takes a good part of a second, and
these few calls need nothing more. One keep-alive connection; any transport failure drops it
so the next call reconnects.
"""

from __future__ import annotations

import http.client
import json
import ssl
from typing import Any
from urllib.parse import quote, urlsplit

from kfpd.schemas.launch import (
    AppendLogRequest,
    FinishTaskRequest,
    StorageSessions,
    StorageSessionsRequest,
)

API = "/apis/v2beta1"


class TransportError(Exception):
    """The server could not be reached or did not answer: worth retrying."""


class ServerError(Exception):
    """The server answered with an error status."""

    def __init__(self, status: int, message: str, *, resent: bool = False) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message
        # The request went out twice (the first send's connection broke): the first may
        # have been served too.
        self.resent = resent


class Reporter:
    def __init__(
        self,
        server_url: str,
        token: str,
        *,
        timeout: float = 30.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        parts = urlsplit(server_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"server_url must be an http(s) URL, got {server_url!r}")
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        self._prefix = parts.path.rstrip("/") + API
        self._timeout = timeout
        self._ssl = ssl_context
        self._headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        self._conn: http.client.HTTPConnection | None = None

    def append_log(self, run_id: str, task_id: str, text: str) -> None:
        body = AppendLogRequest(text=text).model_dump(mode="json")
        self._post(f"/runs/{quote(run_id)}/tasks/{quote(task_id)}/logs", body)

    def finish(self, run_id: str, task_id: str, request: FinishTaskRequest) -> None:
        body = request.model_dump(mode="json", exclude_none=True)
        self._post(f"/runs/{quote(run_id)}/tasks/{quote(task_id)}:finish", body)

    def storage_sessions(self, run_id: str, task_id: str, uris: list[str]) -> StorageSessions:
        """Object-store credentials for this task's remote URIs (kept in memory only)."""
        body = StorageSessionsRequest(uris=uris).model_dump(mode="json")
        payload = self._post(f"/runs/{quote(run_id)}/tasks/{quote(task_id)}/storage:sessions", body)
        return StorageSessions.model_validate_json(payload)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            if self._https:
                context = self._ssl or ssl.create_default_context()
                self._conn = http.client.HTTPSConnection(
                    self._host, self._port, timeout=self._timeout, context=context
                )
            else:
                self._conn = http.client.HTTPConnection(
                    self._host, self._port, timeout=self._timeout
                )
        return self._conn

    def _post(self, path: str, body: dict[str, Any]) -> bytes:
        data = json.dumps(body).encode()
        for attempt in (1, 2):
            reused = self._conn is not None
            try:
                conn = self._connection()
                conn.request("POST", self._prefix + path, body=data, headers=self._headers)
                response = conn.getresponse()
                payload = response.read()
                break
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                # A kept-alive connection the server has closed meanwhile: say it again once.
                stale = isinstance(exc, http.client.RemoteDisconnected | BrokenPipeError)
                if attempt == 1 and reused and stale:
                    continue
                raise TransportError(f"{type(exc).__name__}: {exc}") from exc
        if response.will_close:
            self.close()
        if response.status >= 400:
            raise ServerError(response.status, _message(payload), resent=attempt == 2)
        return payload


def _message(payload: bytes) -> str:
    try:
        body = json.loads(payload)
    except ValueError:
        return payload.decode("utf-8", "replace")[:500]
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"])
    return str(body)[:500]
