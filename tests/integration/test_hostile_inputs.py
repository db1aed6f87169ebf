"""The hostile corpus (``hostile_corpus``) against the real servers: never a 5xx, every 4xx
says what was wrong, every request gets an answer (a keep-alive connection is then asked
again), and the gateway's counts add up: in = accepted + dead-lettered.
"""

from __future__ import annotations

import json
import re
import uuid
from collections import Counter

import pytest

from bentos.gateway_config import GatewayConfig
from flashrec.settings import Settings
from tests.integration import fuzz
from tests.integration.hostile_corpus import Case, admin_cases, gateway_cases, read_cases
from tests.integration.rawhttp import RawResponse, exchange, request
from tests.integration.servers import READ_ADMIN_TOKEN, Gateway, Server

pytestmark = pytest.mark.integration


def _check(case: Case, response: RawResponse) -> str | None:
    """What is wrong with ``response`` to ``case`` (None: nothing)."""
    if response.status >= 500:
        return f"{case.name}: {response.status} {response.body[:300]!r}"
    if case.expect is not None and response.status not in case.expect:
        return (
            f"{case.name}: {response.status} not in {sorted(case.expect)}: {response.body[:200]!r}"
        )
    if 400 <= response.status < 500 and not case.head:
        if not response.body.strip():
            return f"{case.name}: {response.status} with an empty body"
        if response.body.startswith(b"{") and "error" not in json.loads(response.body):
            return f"{case.name}: {response.status} without an 'error': {response.body[:200]!r}"
    return None


def _run(
    cases: list[Case], ports: dict[str, int], probes: dict[str, bytes]
) -> tuple[list[str], Counter[int], list[tuple[Case, RawResponse]]]:
    problems: list[str] = []
    statuses: Counter[int] = Counter()
    answered: list[tuple[Case, RawResponse]] = []
    for case in cases:
        try:
            first, then = exchange(
                ports[case.service], case.parts, then=probes.get(case.service), head=case.head
            )
        except (TimeoutError, ConnectionError, OSError) as exc:
            problems.append(f"{case.name}: no answer ({exc!r})")
            continue
        for response in (first, then):
            if response is not None:
                statuses[response.status] += 1
        answered.append((case, first))
        problems += [p for p in (_check(case, first),) if p]
        if then is not None and then.status >= 500:
            problems.append(f"{case.name}: the next request on the connection got {then.status}")
    return problems, statuses, answered


def _events_total(metrics: str, outcome: str) -> float:
    match = re.search(
        rf'^flashrec_gateway_events_total{{outcome="{outcome}"}} (\S+)$', metrics, re.M
    )
    return float(match.group(1)) if match else 0.0


def test_gateway_hostile_corpus(gateway: Gateway) -> None:
    config = GatewayConfig.from_settings(Settings.from_env())
    cases = gateway_cases(
        f"hostile-{uuid.uuid4().hex[:6]}", config.max_body_bytes, config.max_batch
    )
    before, metrics_before = gateway.counts(), gateway.metrics()
    probe = request("GET", "/openapi/gateway.json")
    problems, statuses, answered = _run(cases, {"gateway": gateway.port}, {"gateway": probe})
    after, metrics_after = gateway.counts(), gateway.metrics()
    fuzz.record("hostile corpus gateway", sum(statuses.values()), statuses)
    assert not problems, "\n".join(problems)

    # in = accepted + dead-lettered: per answer, over the streams and in the gateway's counters
    events_in = 0
    for case, response in answered:
        if response.status != 200:
            continue
        verdict = json.loads(response.body)
        assert verdict["accepted"] + verdict["rejected"] == case.events_in, case.name
        assert verdict["dead_lettered"] == verdict["rejected"], case.name
        events_in += case.events_in
    assert events_in > 2000
    appended, dead_lettered = after[0] - before[0], after[1] - before[1]
    assert events_in == appended + dead_lettered, (events_in, appended, dead_lettered)
    counted = {
        outcome: _events_total(metrics_after, outcome) - _events_total(metrics_before, outcome)
        for outcome in ("accepted", "dead_lettered", "dead_letter_lost")
    }
    assert counted == {"accepted": appended, "dead_lettered": dead_lettered, "dead_letter_lost": 0}


def test_read_api_hostile_corpus(read_api: Server) -> None:
    probe = request("GET", "/recommendations?user_id=probe&k=1")
    problems, statuses, _ = _run(read_cases(), {"read": read_api.port}, {"read": probe})
    fuzz.record("hostile corpus read API", sum(statuses.values()), statuses)
    assert not problems, "\n".join(problems)


def test_admin_surfaces_hostile_corpus(gateway: Gateway, read_api: Server) -> None:
    ports = {"read_admin": read_api.admin_port, "gateway_admin": gateway.server.admin_port}
    problems, statuses, _ = _run(admin_cases(READ_ADMIN_TOKEN), ports, {})
    fuzz.record("hostile corpus admin surfaces", sum(statuses.values()), statuses)
    assert not problems, "\n".join(problems)
