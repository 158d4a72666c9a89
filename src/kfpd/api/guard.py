"""Cross-site and DNS-rebinding protection, and the rule for which address kfpd may bind.

A web page in the user's browser can send "simple" requests (text/plain, form or multipart
bodies, no preflight) to any address, including kfpd on loopback. Three checks keep such a
page from acting on kfpd:

- ``Host`` must name this server (an IP literal, a loopback name, the bind address, the public
  URL's host or a configured name): a rebinding page's requests carry its own domain name.
- A state-changing request (POST, PUT, PATCH, DELETE) whose ``Origin`` is another origin is
  refused (403): browsers send ``Origin`` on every cross-origin write.
- A request body must be ``application/json`` (``multipart/form-data`` on upload routes
  only); anything else is 415, so a cross-site text/plain or form body is never parsed.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kfpd.api.errors import error_response
from kfpd.domain import grpc_codes

STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def _ip(name: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return None


def is_loopback(host: str) -> bool:
    """``localhost`` (and RFC 6761 ``*.localhost``), 127.0.0.0/8 or ::1."""
    name = host.lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    address = _ip(name)
    return address is not None and address.is_loopback


def split_host(value: str) -> tuple[str, int | None]:
    """``Host`` header value -> (lower-case name without brackets or trailing dot, port)."""
    value = value.strip().lower()
    port: int | None = None
    if value.startswith("["):
        name, _, rest = value[1:].partition("]")
        if rest.startswith(":") and rest[1:].isdigit():
            port = int(rest[1:])
        return name, port
    name, colon, tail = value.rpartition(":")
    if colon and tail.isdigit() and ":" not in name:
        return name.rstrip("."), int(tail)
    return value.rstrip("."), None


@dataclass(frozen=True)
class HostPolicy:
    """Which ``Host`` names this server answers to, beyond IP literals and loopback names."""

    names: frozenset[str]
    any_host: bool = False

    @classmethod
    def build(cls, configured: Iterable[str], *own_hosts: str | None) -> HostPolicy:
        """``configured``: operator-given names (``*`` allows any; ``.example.com`` allows
        subdomains); ``own_hosts``: the bind address and the public URL's host."""
        names = {name.strip().lower().rstrip(".") for name in configured if name.strip()}
        names.update(split_host(h)[0] for h in own_hosts if h)
        return cls(names=frozenset(names - {"*"}), any_host="*" in names)

    def allows(self, name: str) -> bool:
        # An IP literal cannot be rebound: rebinding needs a name the attacker's DNS answers.
        if self.any_host or _ip(name) is not None or is_loopback(name) or name in self.names:
            return True
        return any(n.startswith(".") and (name.endswith(n) or name == n[1:]) for n in self.names)


def same_origin(origin: str, host: str) -> bool:
    """Whether the ``Origin`` header names the origin the request was sent to (``Host``)."""
    if origin == "null":
        return False  # sandboxed frames, file:// pages, some redirects
    parts = urlsplit(origin)
    if not parts.hostname:
        return False
    host_name, host_port = split_host(host)
    if parts.hostname.rstrip(".") != host_name:
        return False
    try:
        origin_port = parts.port or _DEFAULT_PORTS.get(parts.scheme)
    except ValueError:
        return False
    if host_port is None:
        # A default port; http or https either way, as a TLS proxy in front may change it.
        return origin_port in (80, 443)
    return origin_port == host_port


_NUL_QUERY = b"%00"


# C0 and C1 control characters and DEL. A compiled class: a per-character Python loop cost
# ~5 us for a launcher's 80-character path on every request.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# Host header values whose verdict is remembered (cleared when full: a flood of made-up names
# costs what it cost before, and memory stays bounded).
_HOSTS_REMEMBERED = 64


def _has_control(text: str) -> bool:
    return _CONTROL.search(text) is not None


def has_nul_escape(body: bytes) -> bool:
    """Whether a JSON text holds a NUL character: a ``\\u0000`` escape whose backslash is not
    itself escaped. Dropping every escaped backslash (``\\\\`` pairs, left to right, as JSON
    reads them) leaves a backslash before ``u0000`` exactly when the escape is real. Raw NUL
    bytes are invalid JSON anyway."""
    marker = b"\\u0000"
    return marker in body and marker in body.replace(b"\\\\", b"")


def _media_type(value: bytes) -> str:
    return value.split(b";", 1)[0].strip().lower().decode("latin-1")


def _is_json(media_type: str) -> bool:
    return media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


def _has_body(headers: dict[bytes, bytes]) -> bool:
    length = headers.get(b"content-length")
    if length is not None:
        return length.strip() not in (b"", b"0")
    return b"transfer-encoding" in headers


class RequestGuard:
    """Plain ASGI middleware applying the three checks above, before any route runs."""

    def __init__(
        self, app: ASGIApp, hosts: HostPolicy, multipart_paths: Collection[str] = ()
    ) -> None:
        self.app = app
        self.hosts = hosts
        self.multipart_paths = frozenset(multipart_paths)
        self._host_verdicts: dict[str, bool] = {}

    def _host_allowed(self, host: str) -> bool:
        """``hosts.allows`` for a Host header value, remembered: the verdict depends on the
        value alone, and parsing it (an IP literal test) was most of the guard's cost."""
        allowed = self._host_verdicts.get(host)
        if allowed is None:
            allowed = self.hosts.allows(split_host(host)[0])
            if len(self._host_verdicts) >= _HOSTS_REMEMBERED:
                self._host_verdicts.clear()
            self._host_verdicts[host] = allowed
        return allowed

    def refusal(self, scope: Scope) -> tuple[int, str] | None:
        """(status, message) when the request must not reach the application."""
        if _has_control(scope["path"]) or _NUL_QUERY in scope.get("query_string", b"").lower():
            return 400, "control characters (NUL, newline, ...) are not accepted in URLs"
        headers: dict[bytes, bytes] = dict(scope.get("headers") or [])
        host = headers.get(b"host", b"").decode("latin-1")
        if host and not self._host_allowed(host):
            return 400, (
                f"Host {host!r} is not one of this server's names; "
                "add it with --allowed-host (or KFPD_ALLOWED_HOSTS)"
            )
        method = scope["method"]
        if method not in STATE_CHANGING:
            return None
        origin = headers.get(b"origin")
        if origin is not None and not same_origin(origin.decode("latin-1"), host):
            return 403, f"cross-origin {method} from {origin.decode('latin-1')!r} is refused"
        if method in _BODY_METHODS and _has_body(headers):
            return self._content_type_refusal(scope["path"], headers.get(b"content-type", b""))
        return None

    def _content_type_refusal(self, path: str, content_type: bytes) -> tuple[int, str] | None:
        media_type = _media_type(content_type)
        if path in self.multipart_paths:
            if media_type == "multipart/form-data":
                return None
            return 415, "this upload takes a multipart/form-data body"
        if _is_json(media_type):
            return None
        shown = media_type or "none"
        return 415, f"request bodies must be application/json (Content-Type was {shown})"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            refused = self.refusal(scope)
            if refused is not None:
                status, message = refused
                grpc_code = {
                    400: grpc_codes.INVALID_ARGUMENT,
                    403: grpc_codes.PERMISSION_DENIED,
                    415: grpc_codes.INVALID_ARGUMENT,
                }[status]
                await error_response(status, grpc_code, message)(scope, receive, send)
                return
        await self.app(scope, receive, send)


class NulFreeJson:
    """Refuse a JSON body holding a NUL character, whatever field it is in (400): PostgreSQL
    cannot store one in a text column while SQLite and MySQL can, so every database gives the
    same answer only if none gets one. Plain ASGI; the body is buffered (FastAPI buffers it
    anyway) and replayed. Sits inside BodySizeLimit, which bounds what is buffered."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        headers: dict[bytes, bytes] = dict(scope.get("headers") or [])
        if not _has_body(headers) or not _is_json(_media_type(headers.get(b"content-type", b""))):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break  # the client went away (or BodySizeLimit stopped the body)
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if has_nul_escape(body):
            refusal = "NUL characters (\\u0000) are not accepted in request bodies"
            await error_response(400, 3, refusal)(scope, receive, send)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


@dataclass(frozen=True)
class BindCheck:
    """``allowed`` False: refuse to start with ``message``; allowed with a message: warn loudly."""

    allowed: bool
    message: str | None = None


def check_bind(host: str, *, authenticated: bool, allow_remote_unauthenticated: bool) -> BindCheck:
    """Single-user mode (no authentication) serves loopback only: anyone who reaches a
    non-loopback address could run commands as the server's user. ``authenticated`` is True
    when requests are authenticated (multi-user mode), which may bind anywhere."""
    if authenticated or is_loopback(host):
        return BindCheck(allowed=True)
    exposed = f"kfpd would listen on {host}, reachable from other machines, with NO authentication"
    if not allow_remote_unauthenticated:
        return BindCheck(
            allowed=False,
            message=f"{exposed}: refused. Bind to 127.0.0.1, or pass "
            "--allow-remote-unauthenticated if every host that can reach it is trusted.",
        )
    return BindCheck(
        allowed=True,
        message=f"WARNING: {exposed}. Anyone who can reach {host} can run any command as this "
        "user (--allow-remote-unauthenticated).",
    )
