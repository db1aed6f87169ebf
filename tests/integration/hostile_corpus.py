"""The hostile-input corpus: requests a broken storefront, a bot or an attacker may send.

Each case is raw bytes (``rawhttp``) for one service, with the statuses it may get (None:
anything but a 5xx) and, for POST /events, how many payloads its body holds if it is read
(the "in" of in = accepted + dead-lettered). Families: malformed values (Unicode digits,
huge integers, NaN/Infinity, invalid UTF-8, lone surrogates, duplicate JSON keys),
repeated headers and parameters, deep nesting, oversized bodies (10 MB with and without a
length), slow partial bodies, batches at and past the limits, protocol oddities, and the
admin surfaces' token checks.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tests.integration.rawhttp import Part, chunked, request

MB = 1024 * 1024


@dataclass(frozen=True)
class Case:
    name: str
    service: str  # "gateway", "read", "gateway_admin" or "read_admin"
    parts: tuple[Part, ...]
    expect: frozenset[int] | None = None  # None: any status below 500
    events_in: int = 0  # payloads of a readable POST /events body
    head: bool = False


def _case(
    name: str,
    service: str,
    parts: bytes | list[Part],
    expect: set[int] | None = None,
    events_in: int = 0,
    head: bool = False,
) -> Case:
    """``parts``: the request's bytes, or bytes and pauses (seconds) in order."""
    sequence = (parts,) if isinstance(parts, bytes) else tuple(parts)
    return Case(name, service, sequence, frozenset(expect) if expect else None, events_in, head)


class Events:
    """Event payloads with ids unique to one run (so the dedupe window never interferes)."""

    def __init__(self, run: str) -> None:
        self.run = run
        self.n = 0

    def __call__(self, **fields: Any) -> dict[str, Any]:
        self.n += 1
        event: dict[str, Any] = {
            "event_id": f"{self.run}-{self.n}",
            "event_time": datetime.now(UTC).isoformat(),
            "event_type": "view",
            "item_id": "item-1",
            "session_id": "s-1",
            "user_id": "u-1",
        }
        event.update(fields)
        return event

    def text(self, **fields: Any) -> str:
        return json.dumps(self(**fields))

    def with_raw(self, raw_field: str, **fields: Any) -> str:
        """An event's JSON text with ``raw_field`` (e.g. '"price":NaN') spliced in."""
        return self.text(**fields)[:-1] + "," + raw_field + "}"


def _post(body: bytes, *headers: tuple[str, str | bytes], **kw: Any) -> bytes:
    return request("POST", "/events", [("Content-Type", "application/json"), *headers], body, **kw)


def _get(target: str | bytes, *headers: tuple[str, str | bytes]) -> bytes:
    return request("GET", target, list(headers))


def gateway_cases(run: str, max_body_bytes: int, max_batch: int) -> list[Case]:
    ev = Events(run)
    one = ev.text().encode()
    cases = [
        # --- malformed values, each refused per event with a reason naming the field
        _case(
            "unicode digits in numbers",
            "gateway",
            _post(
                json.dumps(
                    [
                        ev(event_type="purchase", price="²"),
                        ev(quantity="٣"),
                        ev(quantity="３"),
                        ev(event_type="stock_change", stock_level="¹⁰"),
                    ]
                ).encode()
            ),
            expect={200},
            events_in=4,
        ),
        _case(
            "huge integers",
            "gateway",
            _post(
                (
                    "["
                    + ev.with_raw('"quantity":' + "9" * 5000)
                    + ","
                    + ev.with_raw('"quantity":-' + "9" * 5000)
                    + ","
                    + ev.with_raw('"stock_level":' + "9" * 30, event_type="stock_change")
                    + ","
                    + ev.with_raw('"price":1e400', event_type="purchase")
                    + "]"
                ).encode()
            ),
            expect={200},
            events_in=4,
        ),
        _case(
            "NaN and Infinity",
            "gateway",
            _post(
                (
                    "["
                    + ",".join(
                        ev.with_raw(raw, event_type="purchase")
                        for raw in ('"price":NaN', '"price":Infinity', '"price":-Infinity')
                    )
                    + ","
                    + ev.with_raw('"quantity":NaN')
                    + "]"
                ).encode()
            ),
            expect={200},
            events_in=4,
        ),
        _case("invalid UTF-8", "gateway", _post(b'{"event_id":"\xff\xfe"}'), expect={400}),
        _case("UTF-8 encoded surrogate", "gateway", _post(b'{"event_id":"\xed\xa0\x80"}'), {400}),
        _case("overlong UTF-8", "gateway", _post(b'{"event_id":"\xc0\xaf"}'), expect={400}),
        _case("UTF-8 byte order mark", "gateway", _post(b"\xef\xbb\xbf" + one), expect={400}),
        _case("UTF-16 body", "gateway", _post(ev.text().encode("utf-16")), expect={400}),
        _case(
            "lone surrogate escapes",
            "gateway",
            _post(
                (
                    "["
                    + ev.with_raw('"referrer":"\\ud800"')
                    + ',{"\\udfff":1,"event_id":"\\ud800"},"\\"\\ud800\\""]'
                ).encode()
            ),
            expect={200},
            events_in=3,
        ),
        _case(
            "duplicate JSON keys",
            "gateway",
            _post(
                (
                    '[{"event_id":"dup-a","event_id":"'
                    + f"{run}-dup"
                    + '","event_time":"'
                    + datetime.now(UTC).isoformat()
                    + '","event_type":"view","event_type":"purchase",'
                    + '"item_id":"i","session_id":"s"},'
                    + ev.text()[:-1]
                    + ',"item_id":"other"}]'
                ).encode()
            ),
            expect={200},
            events_in=2,
        ),
        # --- repeated headers and a confused Content-Length
        _case(
            "every header repeated",
            "gateway",
            request(
                "POST",
                "/events",
                [
                    ("Host", "127.0.0.1"),
                    ("Content-Type", "application/json"),
                    ("Content-Type", "text/plain"),
                    ("Content-Length", str(len(one))),
                    ("Content-Length", str(len(one))),
                    ("Connection", "keep-alive"),
                    ("Connection", "keep-alive"),
                    ("Accept", "application/json"),
                    ("Accept", "*/*"),
                    ("X-Request-Id", "a"),
                    ("X-Request-Id", "b"),
                ],
                one,
                content_length=False,
            ),
            events_in=1,
        ),
        _case(
            "conflicting Content-Length",
            "gateway",
            request(
                "POST",
                "/events",
                [("Content-Length", str(len(one))), ("Content-Length", "3")],
                one,
                content_length=False,
            ),
            expect={400},
        ),
        _case(
            "Content-Length and chunked together",
            "gateway",
            request(
                "POST",
                "/events",
                [("Content-Length", "4"), ("Transfer-Encoding", "chunked")],
                chunked(one),
                content_length=False,
            ),
            events_in=1,
        ),
        _case(
            "Content-Length in Unicode digits",
            "gateway",
            request(
                "POST", "/events", [("Content-Length", "²".encode())], b"", content_length=False
            ),
            expect={400},
        ),
        _case(
            "Content-Length of 5,000 digits",
            "gateway",
            request(
                "POST", "/events", [("Content-Length", "9" * 5000)], b"{}", content_length=False
            ),
            expect={400, 413},
        ),
        _case(
            "negative Content-Length",
            "gateway",
            request("POST", "/events", [("Content-Length", "-1")], b"{}", content_length=False),
            expect={400},
        ),
        # --- deep nesting
        _case("100,000 brackets", "gateway", _post(b"[" * 100_000 + b"]" * 100_000), {400}),
        _case(
            "100,000 nested objects",
            "gateway",
            _post(b'{"a":' * 100_000 + b"1" + b"}" * 100_000),
            expect={400},
        ),
        _case(
            "deep nesting inside a raw event line",
            "gateway",
            _post(json.dumps(["[" * 4000 + "]" * 4000]).encode()),
            expect={200},
            events_in=1,
        ),
        _case(
            "deep object in an event field",
            "gateway",
            _post(
                json.dumps(
                    [ev(extra=json.loads('{"a":' * 400 + "1" + "}" * 400)), ev(device=[[[[1]]]])]
                ).encode()
            ),
            expect={200},
            events_in=2,
        ),
        # --- oversized bodies
        _case("10 MB with a length", "gateway", _post(b"[" + b" " * (10 * MB) + b"]"), {413}),
        _case(
            "10 MB chunked, no length",
            "gateway",
            request(
                "POST",
                "/events",
                [("Content-Type", "application/json"), ("Transfer-Encoding", "chunked")],
                chunked(*([b"[" + b" " * (64 * 1024 - 1)] + [b" " * (64 * 1024)] * 159 + [b"]"])),
                content_length=False,
            ),
            expect={413},
        ),
        _case(
            "body of exactly the maximum size",
            "gateway",
            _post(b"[" + one + b" " * (max_body_bytes - len(one) - 2) + b"]"),
            expect={200},
            events_in=1,
        ),
        _case(
            "body one byte over the maximum size",
            "gateway",
            _post(b"[" + b" " * (max_body_bytes - 1) + b"]"),
            expect={413},
        ),
        _case(
            "an event over the per-event size",
            "gateway",
            _post(json.dumps([ev(referrer="r" * 60, note="x" * 9000), ev()]).encode()),
            expect={200},
            events_in=2,
        ),
        # --- slow partial bodies: the gateway stops waiting (408) before BentoML would 504
        _case(
            "body that stops halfway",
            "gateway",
            [_post(one)[: -len(one) // 2], 3.5],
            expect={408},
        ),
        _case(
            "chunked body that stalls",
            "gateway",
            [
                request(
                    "POST",
                    "/events",
                    [("Transfer-Encoding", "chunked")],
                    b"%x\r\n%s\r\n" % (len(one), one),
                    content_length=False,
                ),
                3.5,
            ],
            expect={408},
        ),
        _case(
            "body trickled a byte at a time",
            "gateway",
            _trickle(_post(one), pause=0.25, count=12),
            expect={408},
        ),
        # --- batches at and past the limits
        _case(
            "batch at the maximum",
            "gateway",
            _post(json.dumps([ev() for _ in range(max_batch)]).encode()),
            expect={200},
            events_in=max_batch,
        ),
        _case(
            "batch one past the maximum",
            "gateway",
            _post(json.dumps([ev() for _ in range(max_batch + 1)]).encode()),
            expect={413},
        ),
        _case(
            "batch of nulls at the maximum",
            "gateway",
            _post(b"[" + b",".join([b"null"] * max_batch) + b"]"),
            expect={200},
            events_in=max_batch,
        ),
        _case("batch of arrays", "gateway", _post(b"[[1],[2,[3]],[]]"), {200}, events_in=3),
        _case("empty batch", "gateway", _post(b"[]"), expect={400}),
        _case("form-encoded body", "gateway", _post(b"event_id=1&price=2"), expect={400}),
        _case(
            "JSON sent as text/plain",
            "gateway",
            request("POST", "/events", [("Content-Type", "text/plain")], one),
            events_in=1,
        ),
        # --- methods, paths, protocol
        *(
            _case(f"{m} /events", "gateway", request(m, "/events"), expect={405}, head=m == "HEAD")
            for m in ("GET", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD")
        ),
        _case("unknown method", "gateway", request("FOO", "/events"), expect={400, 405}),
        *(
            _case(f"path {p!r}", "gateway", _get(p), expect={404, 400})
            for p in (b"/events/x", b"//events", b"/EVENTS", b"/%ff", b"/events%00", b"/\xff")
        ),
        _case("1 MB URL", "gateway", _get("/events?" + "a" * MB), expect={400, 404, 405, 414}),
        _case(
            "1,000 headers",
            "gateway",
            _post(one, *[(f"X-H{i}", "v") for i in range(1000)]),
            events_in=1,
        ),
        _case("a 64 KB header", "gateway", _post(one, ("X-Big", "v" * 65536)), events_in=1),
        _case("HTTP/2 request line", "gateway", b"GET /events HTTP/2.0\r\n\r\n", expect={400, 405}),
        _case("garbage request line", "gateway", b"\x16\x03\x01\x00\xa5\x01\r\n\r\n", {400}),
        _case("HTTP/1.0 without Host", "gateway", b"GET /nope HTTP/1.0\r\n\r\n", expect={404}),
    ]
    return cases


def _trickle(data: bytes, pause: float, count: int) -> list[Part]:
    """The headers at once, then the body one byte per ``pause`` for ``count`` bytes."""
    head, _, body = data.partition(b"\r\n\r\n")
    parts: list[Part] = [head + b"\r\n\r\n"]
    for byte in body[:count]:
        parts += [pause, bytes([byte])]
    return parts


def read_cases() -> list[Case]:
    rec = "/recommendations?"
    params = "user_id=u1&k=3&device=mobile&referrer=direct&category=c1&item_id=i1"
    return [
        *(
            _case(f"k={k}", "read", _get(rec + "user_id=u1&k=" + k), expect={400})
            for k in (
                "%C2%B2",
                "%D9%A3",
                "%EF%BC%95",
                "9" * 4000,
                "9" * 5000,
                "-1",
                "+5",
                "1e2",
                "0x10",
                "10.0",
                "NaN",
                "Infinity",
                "-inf",
                "",
                "%00",
            )
        ),
        _case("raw UTF-8 digit in k", "read", _get(rec.encode() + b"user_id=u1&k=\xc2\xb2"), {400}),
        *(
            _case(f"user_id={u}", "read", _get(rec + "user_id=" + u), expect={400})
            for u in (
                "u1%0A",
                "u1%0D",
                "u1%00",
                "%20u1",
                "u1%09",
                "%FF%FE",
                "%C0%AF",
                "%ED%A0%80",
                "u" * 65,
                "",
            )
        ),
        _case("raw byte in user_id", "read", _get(rec.encode() + b"user_id=\xff"), expect={400}),
        _case("every parameter repeated", "read", _get(rec + params + "&" + params), {400}),
        *(
            _case(f"{name} repeated", "read", _get(f"{rec}user_id=u1&{name}={v}&{name}={v}"), {400})
            for name, v in (("k", "3"), ("user_id", "u1"), ("device", "mobile"))
        ),
        _case(
            "every header repeated",
            "read",
            request(
                "GET",
                rec + "user_id=u1&k=3",
                [
                    ("Host", "127.0.0.1"),
                    ("Accept", "application/json"),
                    ("Accept", "*/*"),
                    ("Connection", "keep-alive"),
                    ("Connection", "keep-alive"),
                    ("X-Request-Id", "a"),
                    ("X-Request-Id", "b"),
                ],
            ),
            expect={200},
        ),
        _case(
            "odd request ids",
            "read",
            _get(rec + "user_id=u1&k=3", ("X-Request-Id", b'\xff"\\' + b"r" * 10000)),
            expect={200},
        ),
        _case("only separators", "read", _get(rec + "&&&=&"), expect={400}),
        _case("no query", "read", _get("/recommendations"), expect={400}),
        _case(
            "10 MB body on a GET", "read", request("GET", rec + "user_id=u1", [], b"x" * 10 * MB)
        ),
        _case("1 MB URL", "read", _get(rec + "user_id=u1&x=" + "a" * MB), expect={400, 414}),
        *(
            _case(
                f"{m} /recommendations",
                "read",
                request(m, rec + "user_id=u1"),
                {405},
                head=m == "HEAD",
            )
            for m in ("POST", "PUT", "DELETE", "OPTIONS", "HEAD")
        ),
        *(
            _case(f"path {p!r}", "read", _get(p), expect={404, 400})
            for p in (
                b"/recommendations/",
                b"//recommendations",
                b"/%2e%2e/",
                b"/\xff",
                b"/metrics",
            )
        ),
        _case("HTTP/2 request line", "read", b"GET /recommendations HTTP/2.0\r\n\r\n"),
        _case(
            "1,000 headers",
            "read",
            _get(rec + "user_id=u1", *[(f"X-H{i}", "v") for i in range(1000)]),
        ),
    ]


def admin_cases(token: str) -> list[Case]:
    auth = ("Authorization", f"Bearer {token}")
    return [
        _case("no token", "read_admin", _get("/metrics"), expect={401}),
        _case("wrong token", "read_admin", _get("/ab/stats", ("Authorization", "Bearer x")), {401}),
        _case(
            "token with a space", "read_admin", _get("/metrics", (auth[0], auth[1] + " ")), {401}
        ),
        _case("token twice", "read_admin", _get("/metrics", auth, auth), expect={200, 401}),
        _case(
            "non-ASCII token",
            "read_admin",
            _get("/metrics", (auth[0], "Bearer \xff".encode("latin-1"))),
            {401},
        ),
        _case("POST", "read_admin", request("POST", "/ab/stats", [auth], b"{}"), expect={405}),
        _case("unknown path", "read_admin", _get("/nope", auth), expect={404}),
        _case("HTTP/2 request line", "read_admin", b"GET /metrics HTTP/2.0\r\n\r\n", {400}),
        _case("garbage", "read_admin", b"\x16\x03\x01\x00\xa5\x01\r\n\r\n", expect={400}),
        _case(
            "101 headers", "read_admin", _get("/metrics", *[(f"X-H{i}", "v") for i in range(101)])
        ),
        _case("a 70 KB header", "read_admin", _get("/metrics", ("X-Big", "v" * 70_000))),
        _case("metrics", "gateway_admin", _get("/metrics"), expect={200}),
        _case("unknown path", "gateway_admin", _get("/ab/stats"), expect={404}),
        _case("PUT", "gateway_admin", request("PUT", "/metrics"), expect={405}),
    ]
