"""Poison inputs: find the one shopper whose features read or model call fails.

WHY: the scorer reads features and calls the model for a whole batch at once. A failure
caused by one shopper's data (a feature row the store cannot decode, a query the model
service refuses) would otherwise fail the batch again on every retry and stall everyone
behind it. Only after a batched call fails on its content does the scorer retry it
shopper by shopper; the shoppers whose own call still fails are set aside (``poisoned``:
shopper -> reason) and dead-lettered, and the batch goes on without them. Outages are not
poison: Redis errors and ``ModelServiceDown`` propagate unchanged (waited out, deferred).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from flashrec.eventlog.base import DeadLetter, LogRecord
from flashrec.scoring.model_client import ModelServiceDown
from flashrec.scoring.tiers import FeatureReader, ShopperState, Signal, coalesce
from flashrec.scoring.tiers import shopper_states as read_states

RankFn = Callable[[Sequence[dict[str, Any]]], list[dict[str, Any]]]


def shopper_states(
    signals: list[Signal],
    read: FeatureReader,
    poisoned: dict[str, str],
    outages: tuple[type[BaseException], ...],
) -> dict[str, ShopperState]:
    """One batched read per view; if that fails on its content, one shopper at a time."""
    try:
        return read_states(signals, read)
    except outages:
        raise
    except Exception:  # noqa: BLE001 - find the shopper at fault below
        pass
    out: dict[str, ShopperState] = {}
    for shopper, sigs in coalesce(signals).items():
        try:
            out.update(read_states(sigs[:1], read))
        except outages:
            raise
        except Exception as exc:  # noqa: BLE001 - this shopper only
            poisoned[shopper] = f"features: {type(exc).__name__}: {exc}"[:300]
    return out


def isolate(
    rank: RankFn,
    pairs: Sequence[tuple[ShopperState, str]],
    queries: Sequence[dict[str, Any]],
    answers: list[dict[str, Any]] | None,
    usable: Callable[[dict[str, Any]], bool],
    poisoned: dict[str, str],
    variant: str,
    *,
    limit: int = 16,
    probe: int = 4,
) -> list[dict[str, Any]]:
    """Ask shoppers alone to find the one whose query fails; returns answers aligned with
    ``pairs`` (updated in place when given).

    ``answers`` None: the batched call raised on its content, so every shopper is asked
    alone. Otherwise the shoppers with an unusable ``variant`` answer are (at most
    ``limit``): the model service runs one model call per batch and answers every query of
    a failed call with an error, so one poison query fails its whole batch on every retry.
    A shopper whose own call still fails is set aside only when another one's succeeded:
    when the first ``probe`` fail alone too, the model is at fault, not a query (nothing
    is set aside; a raised error then becomes ``ModelServiceDown``: everyone deferred).
    """
    by_shopper: dict[str, list[int]] = {}
    for i, (st, v) in enumerate(pairs):
        if answers is None or (v == variant and not usable(answers[i])):
            by_shopper.setdefault(st.shopper, []).append(i)
    if answers is not None and len(by_shopper) < 2:
        return answers  # one shopper alone: its answer cannot tell a poison query from the model
    out: list[dict[str, Any]] = answers if answers is not None else [{} for _ in pairs]
    chosen = list(by_shopper.items())
    if answers is not None:
        chosen = chosen[:limit]
    ok, suspects = 0, {}
    for tried, (shopper, idx) in enumerate(chosen):
        if tried >= probe and ok == 0:
            break
        try:
            got = rank([queries[i] for i in idx])
        except ModelServiceDown:
            raise
        except Exception as exc:  # noqa: BLE001 - this shopper only
            suspects[shopper] = f"model: {type(exc).__name__}: {exc}"[:300]
            continue
        for i, ans in zip(idx, got, strict=True):
            out[i] = ans
        bad = [
            a
            for (_, v), a in zip([pairs[i] for i in idx], got, strict=True)
            if v == variant and not usable(a)
        ]
        if bad:
            suspects[shopper] = f"model: {bad[0].get('error') or 'unusable answer'}"[:300]
        else:
            ok += 1
    if ok:
        poisoned.update(suspects)
    elif answers is None:
        raise ModelServiceDown(f"every shopper failed alone: {next(iter(suspects.values()), '')}")
    return out


def dead_letters(
    poisoned: dict[str, str], groups: dict[str, list[Signal]], records: Sequence[LogRecord]
) -> list[DeadLetter]:
    """One dead letter per set-aside shopper: the reason, and the signals that named them
    (a retry would fail the same way, so those signals are acknowledged)."""
    payloads = {r.id: r.payload for r in records}
    return [
        DeadLetter(
            reason=reason,
            raw=json.dumps(
                {
                    "shopper": shopper,
                    "signals": [payloads.get(s.record_id, "") for s in groups.get(shopper, [])[:5]],
                }
            ),
            source="scorer",
        )
        for shopper, reason in poisoned.items()
    ]
