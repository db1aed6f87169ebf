"""A raw ASGI app for the read path (no Starlette/FastAPI routing or request objects).

WHY raw: the profile of BentoML's default request path showed framework work (routing,
Request objects, schema rebuilding, spans) dominating a ~100 us Redis read. This callable
does only: match the path, validate the query, await ``ReadPath.answer``, send bytes. It is
mounted in the BentoML service (``read_api.py``) and served bare by ``bench/bare_asgi.py``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from bentos.read_core import ReadPath
from bentos.read_query import BadRequest, parse_query
from bentos.read_schema import OPENAPI

log = logging.getLogger(__name__)

Scope = dict[str, Any]
Send = Callable[[dict[str, Any]], Awaitable[None]]
Receive = Callable[[], Awaitable[dict[str, Any]]]

_JSON = b"application/json"
_OPENAPI_BYTES = orjson.dumps(OPENAPI)


async def _send(send: Send, status: int, body: bytes, content_type: bytes = _JSON) -> None:
    # content-length lets uvicorn skip chunked framing (one body write, no trailer chunk).
    headers = [(b"content-type", content_type), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _error(message: str) -> bytes:
    return orjson.dumps({"error": message})


def make_app(
    read_path: ReadPath,
    *,
    on_bad_request: Callable[[], None] | None = None,
    handle_lifespan: bool = False,
) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    """The ASGI callable: GET /recommendations and its schema, nothing else (stats and
    metrics are on the admin surface, see ``admin``). ``handle_lifespan`` is for serving it
    bare; under BentoML the service's startup hook starts ``read_path``.

    Every request gets a response: an unexpected error still answers (an ASGI app that
    returns without one leaves a keep-alive client waiting until it gives up)."""

    def bad_request(message: str) -> bytes:
        if on_bad_request is not None:
            on_bad_request()
        return _error(message)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            if not handle_lifespan:
                return
            while True:
                msg = await receive()
                if msg["type"] == "lifespan.startup":
                    await read_path.start()
                    await send({"type": "lifespan.startup.complete"})
                elif msg["type"] == "lifespan.shutdown":
                    await read_path.stop()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if kind != "http":
            return
        path = scope["path"]
        if path == "/recommendations":
            if scope["method"] != "GET":
                await _send(send, 405, _error("use GET"))
                return
            try:
                query = parse_query(scope["query_string"])
            except BadRequest as exc:
                await _send(send, 400, bad_request(str(exc)))
                return
            except Exception as exc:  # a validator gap on client input: still the client's 4xx
                log.exception("query not parsed: %r", scope["query_string"][:200])
                await _send(send, 400, bad_request(f"malformed query ({type(exc).__name__})"))
                return
            rid = None
            for name, value in scope["headers"]:
                if name == b"x-request-id":
                    rid = value.decode("latin-1")[:64]
                    break
            try:
                body = await read_path.answer(query, rid)
            except Exception:  # answer() degrades on Redis trouble; anything else is a bug
                log.exception("answer failed")
                await _send(send, 500, _error("internal error while building the answer"))
                return
            await _send(send, 200, body)
        elif path == "/openapi/read.json":
            await _send(send, 200, _OPENAPI_BYTES)
        else:
            await _send(send, 404, _error(f"no route {path[:100]}"))

    return app
