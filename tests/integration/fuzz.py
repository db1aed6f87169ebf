"""Schemathesis runs against the real servers, and the request tally the suite prints.

WHY a runner of our own around the CLI: the target is "0 responses of 5xx", stated with
the number of requests tried, so each run writes schemathesis' NDJSON event log and we
count every request and its status from it. ``TALLY`` collects one line per run (and per
hostile corpus); ``conftest`` prints them at the end of the test session.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

#: Checks for every run. ``negative_data_rejection`` (schema-violating input must get a
#: 4xx) is added per service where the contract says so: the gateway answers 200 with a
#: verdict per event even for invalid events, by design.
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
)

TALLY: list[str] = []


@dataclass(frozen=True)
class FuzzRun:
    requests: int
    statuses: Counter[int]
    returncode: int
    output: str

    @property
    def server_errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if status >= 500)


def count_requests(ndjson: Path) -> Counter[int]:
    """Status code -> requests, over every scenario of a schemathesis NDJSON log (a request
    without a response, e.g. a timeout, counts as status 0)."""
    statuses: Counter[int] = Counter()
    for line in ndjson.read_text().splitlines():
        event = json.loads(line)
        finished = event.get("ScenarioFinished")
        if not finished:
            continue
        for interaction in finished["recorder"].get("interactions", {}).values():
            response = interaction.get("response") or {}
            statuses[int(response.get("status_code", 0))] += 1
    return statuses


def schemathesis(
    schema_url: str,
    base_url: str,
    mode: str,
    report: Path,
    *,
    max_examples: int,
    extra_checks: tuple[str, ...] = (),
) -> FuzzRun:
    """``schemathesis run`` in ``mode`` (positive: schema-valid input; negative: input that
    violates the schema), with the coverage and fuzzing phases, bounded by
    ``max_examples`` per phase."""
    cli = Path(sys.executable).parent / "schemathesis"
    proc = subprocess.run(
        [str(cli), "run", schema_url, "--url", base_url, "--mode", mode]
        + ["--checks", ",".join(CHECKS + extra_checks)]
        + ["--phases", "examples,coverage,fuzzing", "--max-examples", str(max_examples)]
        + ["--request-timeout", "10", "--report", "ndjson", "--report-ndjson-path", str(report)]
        + ["--no-color", "--generation-database", "none"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    statuses = count_requests(report) if report.exists() else Counter()
    return FuzzRun(sum(statuses.values()), statuses, proc.returncode, proc.stdout + proc.stderr)


def record(label: str, requests: int, statuses: Counter[int]) -> None:
    fives = sum(n for status, n in statuses.items() if status >= 500)
    by_status = ", ".join(f"{s}: {n}" for s, n in sorted(statuses.items()))
    TALLY.append(f"{label}: {requests} requests, {fives} 5xx ({by_status})")
