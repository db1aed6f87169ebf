"""``make bench-slo FAULTS=1``: faults in the middle of the surge, and what they cost.

During the ramp's top stage, one after the other, ``--fault-gap`` seconds apart: the Flink
job, the scorer and the model service are killed with -9 (supervision restarts them), and
Redis is restarted (its own redis-server for this run: AOF on, ``appendfsync everysec``;
a restart is a SIGTERM, which writes the AOF out, then a start that reloads it).

For each fault: when it happened, when the process (or Redis) answered again (``back``)
and when the platform had caught up (``recovered``: the Flink job and the scorer less than
a second of traffic behind again, the model service ready and the scorer no longer
deferring shoppers). The 1 Hz sampler and the open-loop reads' one-second slices around it
give reads and errors per second and the answers by source. After the run: every event
the log accepted is folded into the online features exactly as the shared definitions fold it (every
feature of every key compared), and is in the lake's live files exactly once.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from bench.redis_server import RedisServer
from bench.slo_stack import Stack
from flashrec.settings import Settings

FAULTS = ("flink_features", "scorer", "model_service", "redis")


@dataclass
class Fault:
    name: str
    at: float  # perf_counter when injected
    back_s: float = float("nan")  # until the component (or Redis) answered again
    recovered_s: float = float("nan")  # until the platform had caught up
    note: str = ""


def schedule(stages: list[tuple[float, float]], gap_s: float) -> list[float]:
    """Offsets (s from the surge's origin) of the faults: in the last stage, ``gap_s``
    apart, the first ``gap_s / 2`` into it."""
    start = sum(sec for _, sec in stages[:-1])
    return [start + gap_s / 2 + i * gap_s for i in range(len(FAULTS))]


def ramp_for_faults(gap_s: float, top_rate: float = 1000.0) -> str:
    """The default ramp with a top stage long enough for every fault and its recovery."""
    top = int(gap_s * (len(FAULTS) + 0.5))
    return f"10:20,100:20,{top_rate:g}:{top}"


class Injector(threading.Thread):
    """Injects the faults at their offsets; a watcher per fault measures its recovery
    (faults do not wait for each other's recovery: the schedule is the schedule)."""

    def __init__(
        self,
        stack: Stack,
        settings: Settings,
        redis_server: RedisServer,
        offsets: list[float],
        top_rate: float,
        log: Callable[[str], None],
        recovery_timeout_s: float = 600.0,
    ) -> None:
        super().__init__(name="faults", daemon=True)
        self.stack, self.settings, self.redis_server = stack, settings, redis_server
        self.offsets, self.top_rate, self.log = offsets, top_rate, log
        self.recovery_timeout_s = recovery_timeout_s
        self.origin: float | None = None
        self.faults: list[Fault] = []
        self.watchers: list[threading.Thread] = []
        self.stop = threading.Event()

    def run(self) -> None:
        assert self.origin is not None
        for name, offset in zip(FAULTS, self.offsets, strict=True):
            if self.stop.wait(max(0.0, self.origin + offset - time.perf_counter())):
                return
            fault = Fault(name, time.perf_counter())
            self.faults.append(fault)
            try:
                old_pid = self._inject(fault)
            except Exception as exc:  # noqa: BLE001 - reported in the run, never fatal
                fault.note = f"{type(exc).__name__}: {exc}"[:200]
                continue
            watcher = threading.Thread(
                target=self._watch, args=(fault, old_pid), name=f"watch-{name}", daemon=True
            )
            self.watchers.append(watcher)
            watcher.start()

    def finish(self, timeout_s: float) -> None:
        """Wait for the injections and every recovery (at most ``timeout_s``)."""
        deadline = time.monotonic() + timeout_s
        self.join(max(0.0, deadline - time.monotonic()))
        for watcher in self.watchers:
            watcher.join(max(0.0, deadline - time.monotonic()))

    def _inject(self, fault: Fault) -> int | None:
        if fault.name == "redis":
            down = self.redis_server.restart()
            fault.back_s = time.perf_counter() - fault.at
            fault.note = f"down {down:.1f}s"
            return None
        pid = self.stack.pid(fault.name)
        if pid is None:
            raise RuntimeError(f"{fault.name} was not running")
        import os
        import signal

        os.kill(pid, signal.SIGKILL)
        fault.note = f"pid {pid} killed"
        return pid

    def _watch(self, fault: Fault, old_pid: int | None) -> None:
        deadline = fault.at + self.recovery_timeout_s
        try:
            if old_pid is not None:
                self._wait_back(fault, old_pid, deadline)
            self._recover(fault, deadline)
        except Exception as exc:  # noqa: BLE001 - reported in the run, never fatal
            fault.note += f" {type(exc).__name__}: {exc}"[:200]
        self.log(
            f"  fault {fault.name}: back after {fault.back_s:.1f}s, recovered after "
            f"{fault.recovered_s:.1f}s ({fault.note})"
        )

    def _wait_back(self, fault: Fault, old_pid: int, deadline: float) -> None:
        from orchestration import stack, supervise

        component = self.stack.components[fault.name]
        paths = supervise.paths(self.settings)
        while time.perf_counter() < deadline and not self.stop.is_set():
            if supervise.restarted(paths, fault.name, old_pid) and (
                component.health_url is None or stack._healthy(component.health_url)  # noqa: SLF001
            ):
                fault.back_s = time.perf_counter() - fault.at
                return
            time.sleep(0.25)

    def _recover(self, fault: Fault, deadline: float) -> None:
        """Caught up: both lags under a second of traffic, the model service answering
        the scorer, nothing deferred, for three looks in a row."""
        behind = max(self.top_rate, 100.0)
        client = redis.Redis.from_url(self.settings.redis_url, socket_timeout=2)
        good = 0
        try:
            while time.perf_counter() < deadline and not self.stop.is_set():
                try:
                    flink = _lag(client, self.settings.events_stream, "flink-features")
                    scorer = _lag(client, self.settings.rescore_stream, "scorer")
                    status = _scorer_status(client)
                except redis.RedisError:
                    flink = scorer = None
                    status = {}
                ok = (
                    flink is not None
                    and scorer is not None
                    and flink <= behind
                    and scorer <= behind
                    and status.get("model_service_up", "True") == "True"
                    and int(status.get("deferred", "0") or 0) == 0
                )
                good = good + 1 if ok else 0
                if good >= 3:
                    fault.recovered_s = time.perf_counter() - fault.at
                    return
                time.sleep(0.5)
        finally:
            client.close()


def _lag(client: redis.Redis, stream: str, group: str) -> int | None:
    for g in client.xinfo_groups(stream):
        name = g.get("name", g.get(b"name"))
        if name in (group, group.encode()):
            return int(g.get("lag", g.get(b"lag")) or 0)
    return None


def _scorer_status(client: redis.Redis) -> dict[str, str]:
    from flashrec.scoring.scorer import status_key

    raw = client.hgetall(status_key("scorer"))
    return {
        (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
        for k, v in raw.items()
    }


def around(samples: list[Any], slices: list[Any], fault: Fault, before_s: float = 5.0) -> dict:
    """Reads per second, errors per second and answers by source from ``before_s`` before
    the fault until it had recovered (or 60 s after it, whichever is later)."""
    end = fault.at + max(60.0, fault.recovered_s if fault.recovered_s == fault.recovered_s else 0)
    window = [s for s in slices if fault.at - before_s <= s.t0 and s.t1 <= end + 1]
    seconds = sum(s.t1 - s.t0 for s in window) or 1.0
    reads = sum(s.requests for s in window)
    errors = sum(s.errors for s in window)
    kept = [s for s in samples if fault.at - before_s <= s.t <= end]
    sources: dict[str, float] = {}
    if len(kept) >= 2:
        for key, value in kept[-1].served.items():
            delta = value - kept[0].served.get(key, 0.0)
            if delta > 0:
                sources[key[0]] = sources.get(key[0], 0.0) + delta
    degraded = kept[-1].degraded - kept[0].degraded if len(kept) >= 2 else 0.0
    return {
        "reads_per_s": reads / seconds,
        "errors_per_s": errors / seconds,
        "errors": errors,
        "worst_slice_errors": max((s.errors for s in window), default=0),
        "sources": sources,
        "degraded": degraded,
        "slices": len(window),
    }


# -- after the run: every accepted event in the features and in the lake -------------------


def accepted_lines(settings: Settings) -> list[str]:
    """Every payload the event log holds (the gateway appended each accepted event once)."""
    client = redis.Redis.from_url(settings.redis_url, decode_responses=True)
    out: list[str] = []
    start = "-"
    try:
        while True:
            chunk = client.xrange(settings.events_stream, min=start, count=10_000)
            if not chunk:
                return out
            out.extend(fields["payload"] for _, fields in chunk)
            ms, _, seq = chunk[-1][0].partition("-")
            start = f"{ms}-{int(seq) + 1}"
    finally:
        client.close()


def check_features(settings: Settings, lines: list[str]) -> dict[str, int]:
    """Every feature of every key as read through Feast, against the fold of ``lines``."""
    from flashrec.events import Rejection, parse_event
    from flink_jobs import job_check
    from flink_jobs.job_config import JobConfig
    from flink_jobs.job_sinks import FeastWriter

    events = [e for e in (parse_event(line) for line in lines) if not isinstance(e, Rejection)]
    expected = job_check.reference_features(job_check.feature_events(events))
    reader = FeastWriter(JobConfig.from_settings(settings, writer="feast"))
    n_keys, n_values, mismatches = job_check.compare(expected, reader.read)
    return {
        "events": len(events),
        "keys": n_keys,
        "values": n_values,
        "mismatched_values": len(mismatches),
    }


def check_lake(settings: Settings, lines: list[str], timeout_s: float = 120.0) -> dict[str, int]:
    """The log's events in the committed live landing files: missing and duplicated ones
    (waits for the last files to roll and be committed)."""
    from flashrec.lake_layout import LIVE_SOURCE, days_with_files, finished_files

    wanted = {json.loads(line).get("event_id") for line in lines}
    deadline = time.monotonic() + timeout_s
    while True:
        seen: dict[str, int] = {}
        landing: Path = settings.landing_dir
        for day in days_with_files(landing, LIVE_SOURCE):
            for f in finished_files(landing, LIVE_SOURCE, day):
                for line in f.read_text().splitlines():
                    try:
                        event_id = json.loads(line).get("event_id")
                    except ValueError:
                        continue
                    if event_id in wanted:
                        seen[event_id] = seen.get(event_id, 0) + 1
        missing = len(wanted) - len(seen)
        if missing == 0 or time.monotonic() > deadline:
            return {
                "events": len(wanted),
                "missing": missing,
                "duplicated": sum(n - 1 for n in seen.values()),
            }
        time.sleep(5)
