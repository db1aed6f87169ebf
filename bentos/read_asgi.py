"""A raw ASGI app for the read path (no Starlette/FastAPI routing or request objects).

WHY raw: the profile of BentoML's default request path showed framework work (routing,
Request objects, schema rebuilding, spans) dominating a ~100 us Redis read. This callable
does only: match the path, validate the query, await ``ReadPath.answer``, send bytes. It is
mounted in the BentoML service (``read_api.py``) and served bare by ``bench/bare_asgi.py``.
"""

from __future__ import annotations

import asyncio
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
    stats: Callable[[], dict[str, Any]] | None = None,
    on_bad_request: Callable[[], None] | None = None,
    metrics: Callable[[], tuple[bytes, bytes]] | None = None,
    handle_lifespan: bool = False,
) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    """The ASGI callable. ``stats`` backs GET /ab/stats (run in a thread: it is blocking
    redis-py and not on the hot path). ``metrics`` returns (body, content type) for
    GET /metrics when BentoML's own endpoint is switched off. ``handle_lifespan`` is for
    serving it bare; under BentoML the service's startup hook starts ``read_path``."""

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
                if on_bad_request is not None:
                    on_bad_request()
                await _send(send, 400, _error(str(exc)))
                return
            rid = None
            for name, value in scope["headers"]:
                if name == b"x-request-id":
                    rid = value.decode("latin-1")[:64]
                    break
            await _send(send, 200, await read_path.answer(query, rid))
        elif path == "/ab/stats" and stats is not None:
            body = orjson.dumps(await asyncio.to_thread(stats))
            await _send(send, 200, body)
        elif path == "/metrics" and metrics is not None:
            body, content_type = metrics()
            await _send(send, 200, body, content_type)
        elif path == "/openapi/read.json":
            await _send(send, 200, _OPENAPI_BYTES)
        else:
            await _send(send, 404, _error(f"no route {path}"))

    return app
