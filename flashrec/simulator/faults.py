"""Bad input, re-sends and late arrivals, injected on purpose into the landing files.

Real storefronts send malformed payloads, retry on timeouts and flush offline buffers a
day later; the pipeline's dead-letter, dedup and late-data paths need that traffic to be
exercised. Injection uses its own random stream, so the valid events do not depend on
the fault rates.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime

import numpy as np

#: Every kind is rejected by ``flashrec.events.parse_event``, each for a different field.
BAD_KINDS = (
    "invalid_json",
    "missing_field",
    "negative_price",
    "unknown_event_type",
    "naive_timestamp",
    "bad_quantity",
)


@dataclass(frozen=True)
class LandingDay:
    """One day's landing file as it will be written, with what was injected into it.

    ``valid_events`` counts distinct valid events (late arrivals included), so
    ``lines == valid_events + duplicates + bad_lines``.
    """

    day: date
    lines: list[str]
    valid_events: int
    bad_lines: int
    duplicates: int
    late_events: int


def make_bad_line(line: str, kind: str, bad_id: str) -> str:
    """Corrupt one valid payload the way ``kind`` says; the result never parses."""
    data = json.loads(line)
    data["event_id"] = bad_id
    if kind == "invalid_json":
        text = json.dumps(data, separators=(",", ":"))
        return text[: len(text) // 2]  # a cut-off object is never valid JSON
    if kind == "missing_field":
        del data["item_id"]
    elif kind == "negative_price":
        data["price"] = -abs(data.get("price") or 9.99)
    elif kind == "unknown_event_type":
        data["event_type"] = "wishlist_add"
    elif kind == "naive_timestamp":
        naive = datetime.fromisoformat(data["event_time"]).replace(tzinfo=None)
        data["event_time"] = naive.isoformat()
    elif kind == "bad_quantity":
        key = "quantity" if "session_id" in data else "stock_level"
        data[key] = 0 if key == "quantity" else -1
    else:
        raise ValueError(f"unknown bad-line kind {kind!r}")
    return json.dumps(data, separators=(",", ":"))


def assemble_landing(
    lines: list[str],
    day_index: list[int],
    storefront: list[bool],
    days: list[date],
    *,
    rng: np.random.Generator,
    bad_event_rate: float,
    duplicate_rate: float,
    late_event_rate: float,
    bad_id_prefix: str,
) -> list[LandingDay]:
    """Split time-ordered valid lines into per-day files and inject faults.

    A duplicate sits right after its original (a retry); a bad line after the event it
    was derived from; a late storefront event moves to a random spot in the next day's
    file (so the last day has no late events of its own).
    """
    n = len(lines)
    late = (rng.random(n) < late_event_rate) & np.array(storefront, dtype=bool)
    dup = rng.random(n) < duplicate_rate
    bad = rng.random(n) < bad_event_rate
    kinds = rng.integers(0, len(BAD_KINDS), size=n)
    last = len(days) - 1
    files: list[list[str]] = [[] for _ in days]
    arriving: list[list[str]] = [[] for _ in days]
    counts = [{"valid": 0, "dup": 0, "bad": 0, "late": 0} for _ in days]
    for i, line in enumerate(lines):
        d = day_index[i]
        if late[i] and d < last:
            arriving[d + 1].append(line)
            counts[d + 1]["late"] += 1
            counts[d + 1]["valid"] += 1
            continue
        files[d].append(line)
        counts[d]["valid"] += 1
        if dup[i]:
            files[d].append(line)
            counts[d]["dup"] += 1
        if bad[i]:
            files[d].append(make_bad_line(line, BAD_KINDS[kinds[i]], f"{bad_id_prefix}-{i}"))
            counts[d]["bad"] += 1
    out = []
    for d, day in enumerate(days):
        merged = _scatter(files[d], arriving[d], rng)
        c = counts[d]
        out.append(LandingDay(day, merged, c["valid"], c["bad"], c["dup"], c["late"]))
    return out


def _scatter(base: list[str], extra: list[str], rng: np.random.Generator) -> list[str]:
    """Insert ``extra`` (in order) at random positions of ``base``."""
    if not extra:
        return base
    slots = np.sort(rng.integers(0, len(base) + 1, size=len(extra))).tolist()
    merged: list[str] = []
    j = 0
    for pos in range(len(base) + 1):
        while j < len(extra) and slots[j] == pos:
            merged.append(extra[j])
            j += 1
        if pos < len(base):
            merged.append(base[pos])
    return merged
