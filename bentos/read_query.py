"""Query validation of GET /recommendations: the rules the OpenAPI schema documents.

WHY its own module: the bare baseline, the BentoML service and the schema share one set of
limits; a bad parameter becomes a 400 with a message naming it, never a traceback.
Every check is a ``fullmatch`` of an ASCII pattern: ``str.isdigit`` accepts '²' (which
``int`` then refuses), ``$`` in ``re.match`` accepts a trailing newline, and ``int`` of a
5,000-digit string raises, so none of those is used on client input.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qsl

from flashrec.serving import keys

K_MIN, K_MAX, K_DEFAULT = 1, 100, 20
ID_PATTERN = r"^[A-Za-z0-9_.:\-]{1,64}$"
LABEL_PATTERN = r"^[A-Za-z0-9_.\-]{1,32}$"
K_PATTERN = r"^[0-9]{1,3}$"
MAX_QUERY_CHARS = 4096  # generous for seven short parameters; bounds the parsing work
_ID = re.compile(ID_PATTERN)
_LABEL = re.compile(LABEL_PATTERN)
_K = re.compile(K_PATTERN)
_PARAMS = {"user_id", "session_id", "k", "device", "referrer", "item_id", "category"}


class BadRequest(ValueError):
    """A parameter problem: answered with 400 and this message, never a traceback."""


@dataclass(frozen=True)
class Query:
    shopper: str  # keys.shopper_ref form
    anonymous: bool
    k: int
    device: str | None
    referrer: str | None
    item_id: str | None
    category: str | None


def parse_query(raw: bytes | str) -> Query:
    """Validate the query string against the OpenAPI rules in ``read_schema``."""
    text = raw.decode("latin-1") if isinstance(raw, bytes) else raw
    if len(text) > MAX_QUERY_CHARS:
        raise BadRequest(f"query string longer than {MAX_QUERY_CHARS} characters")
    if "%" in text or "+" in text:  # escapes: the full parser
        try:
            pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=False)
        except ValueError as exc:
            raise BadRequest(f"malformed query string: {exc}") from exc
    else:  # the common case, plain ids: a split is several times cheaper than parse_qsl
        pairs = [(n, v) for n, _, v in (p.partition("=") for p in text.split("&") if p)]
    params: dict[str, str] = {}
    for name, value in pairs:
        if name not in _PARAMS:
            raise BadRequest(f"unknown parameter {name[:32]!r}; allowed: {sorted(_PARAMS)}")
        if name in params:
            raise BadRequest(f"parameter {name!r} given twice")
        params[name] = value
    user, session = params.get("user_id"), params.get("session_id")
    if (user is None) == (session is None):
        raise BadRequest("give exactly one of user_id (known shopper) or session_id (anonymous)")
    shopper_id = user if user is not None else session
    assert shopper_id is not None
    if not _ID.fullmatch(shopper_id):
        raise BadRequest(
            f"{'user_id' if user is not None else 'session_id'} must match {ID_PATTERN}"
        )
    k_raw = params.get("k", str(K_DEFAULT))
    if not _K.fullmatch(k_raw) or not K_MIN <= int(k_raw) <= K_MAX:
        raise BadRequest(f"k must be an integer from {K_MIN} to {K_MAX}, got {k_raw[:16]!r}")
    for name in ("device", "referrer", "category"):
        v = params.get(name)
        if v is not None and not _LABEL.fullmatch(v):
            raise BadRequest(f"{name} must match {LABEL_PATTERN}")
    item = params.get("item_id")
    if item is not None and not _ID.fullmatch(item):
        raise BadRequest(f"item_id must match {ID_PATTERN}")
    return Query(
        shopper=keys.shopper_ref("u" if user is not None else "s", shopper_id),
        anonymous=user is None,
        k=int(k_raw),
        device=params.get("device"),
        referrer=params.get("referrer"),
        item_id=item,
        category=params.get("category"),
    )
