"""A raw HTTP/1.1 exchange over a socket: exact bytes out, pauses between them, one response.

WHY not an HTTP client library: the hostile corpus needs what clients refuse to send
(repeated Content-Length, invalid UTF-8 in the request line, a body that stops halfway, a
chunked body with no length) and must see what the server does on the same connection
afterwards. Responses are parsed by the stdlib's ``http.client.HTTPResponse``.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass

#: A part of a request: bytes to send, or seconds to wait before the next part.
Part = bytes | float


@dataclass(frozen=True)
class RawResponse:
    status: int
    body: bytes
    will_close: bool


def request(
    method: str,
    target: str | bytes,
    headers: Sequence[tuple[str, str | bytes]] = (),
    body: bytes | None = None,
    *,
    content_length: bool = True,
) -> bytes:
    """The bytes of one request (Host first; Content-Length added for a body unless told)."""
    line = target if isinstance(target, bytes) else target.encode()
    out = [method.encode() + b" " + line + b" HTTP/1.1\r\n", b"Host: 127.0.0.1\r\n"]
    for name, value in headers:
        out.append(name.encode() + b": " + (value if isinstance(value, bytes) else value.encode()))
        out.append(b"\r\n")
    if body is not None and content_length:
        out.append(b"Content-Length: %d\r\n" % len(body))
    out.append(b"\r\n")
    return b"".join(out) + (body or b"")


def chunked(*chunks: bytes) -> bytes:
    """A chunked transfer-coded body (terminated)."""
    return b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks if c) + b"0\r\n\r\n"


def _send(sock: socket.socket, parts: Sequence[Part]) -> None:
    for part in parts:
        if isinstance(part, float):
            time.sleep(part)
        else:
            sock.sendall(part)


def exchange(
    port: int,
    parts: Sequence[Part],
    *,
    timeout: float = 20.0,
    then: bytes | None = None,
    head: bool = False,
) -> tuple[RawResponse, RawResponse | None]:
    """Send ``parts`` and read one response. If the server keeps the connection open and
    ``then`` is given, send that request too and read its response (a server that left the
    first request unanswered, or its parser confused, shows up there)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        # The server may answer early and close: its answer is still readable.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            _send(sock, parts)
        first = _read(sock, head)
        if then is None or first.will_close:
            return first, None
        try:
            sock.sendall(then)
        except (BrokenPipeError, ConnectionResetError):
            return first, None
        return first, _read(sock)


def _read(sock: socket.socket, head: bool = False) -> RawResponse:
    resp = http.client.HTTPResponse(sock, method="HEAD" if head else "GET")
    resp.begin()
    body = resp.read()
    return RawResponse(resp.status, body, bool(resp.will_close))
