"""Rescore signals -> shoppers -> tiers: the scorer's pure decisions (no I/O).

WHY pure: which shopper gets which kind of list, and how duplicate signals collapse, is
what makes the cache correct; keeping it free of Redis and HTTP lets it be unit-tested in
microseconds.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from flashrec.eventlog.base import LogRecord
from flashrec.serving import keys
from flashrec.serving.policy import tier_for

USER_VIEW = "user_activity"
SESSION_VIEW = "session_activity"
#: ``(view_name, keys) -> rows``: the shape of ``feature_repo.store.read_online`` with the
#: store bound, so the scorer reads Feast without importing it.
FeatureReader = Callable[[str, Sequence[str]], list[dict[str, Any]]]


@dataclass(frozen=True)
class Signal:
    """One rescore request: ``kind`` ``u`` (user_id), ``s`` (session_id) or ``c`` (a
    category whose trending top changed: its active shoppers, see ``scoring.active``)."""

    record_id: str
    kind: str
    shopper_id: str
    reason: str = ""
    entry_ms: int = 0  # the triggering event's append to the event log (stream job)
    flushed_ms: int = 0  # when the stream job flushed the features it changed

    @property
    def shopper(self) -> str:
        return keys.shopper_ref(self.kind, self.shopper_id)  # type: ignore[arg-type]


@dataclass(frozen=True)
class ShopperState:
    """What the scorer knows about a shopper: recent items (most recent first), count and,
    for a known user, the online ``user_activity`` row the ranker reads its shopper
    features from (None for sessions: anonymous shoppers have no user row)."""

    shopper: str
    kind: str
    shopper_id: str
    recent_items: tuple[str, ...]
    n_interactions: int
    known: bool
    skip: bool = False  # a known user's session: the user's own list serves it
    user_row: Mapping[str, Any] | None = field(default=None, compare=False)

    @property
    def tier(self) -> str:
        return tier_for(self.n_interactions, self.known)


def parse_signal(record: LogRecord) -> Signal | None:
    """A rescore entry (``{user_id|session_id, reason, event_time}``), or None if it names
    no shopper (then it is acknowledged and dropped: retrying cannot fix it)."""
    try:
        fields = json.loads(record.payload)
    except ValueError:
        return None
    if not isinstance(fields, dict):
        return None
    reason = str(fields.get("reason", ""))
    timing = {
        "entry_ms": _int(fields.get("entry_ms")),
        "flushed_ms": _int(fields.get("flushed_ms")),
    }
    if fields.get("user_id"):
        return Signal(record.id, "u", str(fields["user_id"]), reason, **timing)
    if fields.get("session_id"):
        return Signal(record.id, "s", str(fields["session_id"]), reason, **timing)
    if fields.get("category"):
        return Signal(record.id, "c", str(fields["category"]), reason)
    return None


def coalesce(signals: Iterable[Signal]) -> dict[str, list[Signal]]:
    """Signals grouped by shopper, first-seen order: one computation per shopper per batch,
    every record id kept so all of them are acknowledged once the list is written."""
    out: dict[str, list[Signal]] = {}
    for sig in signals:
        out.setdefault(sig.shopper, []).append(sig)
    return out


def recent_list(raw: Any) -> tuple[str, ...]:
    """``*_recent_items`` is a JSON list string (most recent first); tolerate junk."""
    if isinstance(raw, list | tuple):
        return tuple(str(x) for x in raw)
    if not raw:
        return ()
    try:
        value = json.loads(raw)
    except (TypeError, ValueError):
        return ()
    return tuple(str(x) for x in value) if isinstance(value, list) else ()


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


#: Not sent as features: the key itself, and the recent items (the query's ``recent_items``).
_NOT_FEATURES = frozenset({"user_id", "user_recent_items"})


def ranker_row(row: Mapping[str, Any]) -> dict[str, Any] | None:
    """The online row as the model service receives it: the feature values, JSON-safe
    (non-finite numbers become None). None when it holds no value at all (unknown user)."""
    out: dict[str, Any] = {}
    for name, value in row.items():
        if name in _NOT_FEATURES:
            continue
        if isinstance(value, float) and not math.isfinite(value):
            value = None
        elif value is not None and not isinstance(value, str | int | float | bool):
            value = str(value)
        out[name] = value
    return out if any(v is not None for v in out.values()) else None


def user_state(user_id: str, row: Mapping[str, Any] | None) -> ShopperState:
    """A known user: interactions = max(actions in the last hour, distinct recent items),
    so a returning user with history but a quiet hour still counts as warm."""
    row = row or {}
    recent = recent_list(row.get("user_recent_items"))
    hour = sum(_int(row.get(f"user_{k}_1h")) for k in ("views", "clicks", "carts", "purchases"))
    return ShopperState(
        keys.shopper_ref("u", user_id),
        "u",
        user_id,
        recent,
        max(hour, len(recent)),
        True,
        user_row=ranker_row(row),
    )


def session_state(session_id: str, row: Mapping[str, Any] | None) -> ShopperState:
    """A session: interactions = events in the session. A session that belongs to a known
    user is skipped: the read API serves the user's own list for it."""
    row = row or {}
    recent = recent_list(row.get("session_recent_items"))
    anonymous = row.get("session_is_anonymous")
    return ShopperState(
        keys.shopper_ref("s", session_id),
        "s",
        session_id,
        recent,
        _int(row.get("session_events")) or len(recent),
        False,
        skip=anonymous is False,
    )


def shopper_states(signals: Iterable[Signal], read: FeatureReader) -> dict[str, ShopperState]:
    """Online features of every shopper named by ``signals``: one batched read per view."""
    signals = list(signals)
    users = list(dict.fromkeys(s.shopper_id for s in signals if s.kind == "u"))
    sessions = list(dict.fromkeys(s.shopper_id for s in signals if s.kind == "s"))
    out: dict[str, ShopperState] = {}
    if users:
        for uid, row in zip(users, read(USER_VIEW, users), strict=True):
            st = user_state(uid, row)
            out[st.shopper] = st
    if sessions:
        for sid, row in zip(sessions, read(SESSION_VIEW, sessions), strict=True):
            st = session_state(sid, row)
            out[st.shopper] = st
    return out
