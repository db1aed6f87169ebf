"""Where the rollout state lives while services run: one Redis key, applied atomically.

WHY Redis (and not only the ledger file): the model service, the scorer, attribution and
the read API run on other machines in production and must all switch at the same moment.
``apply`` writes the state, the A/B shares and the shadow set in one transaction, so no
reader ever sees shares of one stage with pins of another. The ledger
(``rollout.Ledger``) stays the audit trail; ``restore`` puts its last state back if Redis
lost it.
"""

from __future__ import annotations

import redis

from flashrec.adaptivity.rollout import Ledger, RolloutState, Step
from flashrec.serving import keys


def read_state(client: redis.Redis) -> RolloutState | None:
    raw = client.get(keys.ROLLOUT_STATE)
    return RolloutState.from_json(raw) if raw else None


def write_state(client: redis.Redis, state: RolloutState) -> None:
    """State, A/B shares and shadow set of ``state``, in one MULTI/EXEC."""
    shares, shadow = state.traffic()
    pipe = client.pipeline(transaction=True)
    pipe.set(keys.ROLLOUT_STATE, state.to_json())
    pipe.delete(keys.AB_SHARES)
    pipe.hset(keys.AB_SHARES, mapping={k: float(v) for k, v in shares.items()})
    pipe.delete(keys.AB_SHADOW)
    if shadow:
        pipe.sadd(keys.AB_SHADOW, *shadow)
    pipe.execute()


def apply(client: redis.Redis, ledger: Ledger, step: Step) -> None:
    """Make ``step`` current for every service, then record it."""
    write_state(client, step.state)
    ledger.append(step)


def current(client: redis.Redis, ledger: Ledger) -> RolloutState | None:
    """Redis' state; if Redis lost it, the ledger's last one (written back)."""
    state = read_state(client)
    if state is None:
        state = ledger.current()
        if state is not None:
            write_state(client, state)
    return state
