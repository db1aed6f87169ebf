"""Streaming benchmark: the Flink features job under rising load, beside a plain consumer.

    python -m bench.stream [--rates 500,1000,1500,2000,3000] [--seconds 20] [--writer feast]

For each system (the Flink job; then the baseline, one Python process doing XREADGROUP ->
parse -> fold -> the same batched sinks -> XACK, without checkpoints or state durability),
simulated flash-sale traffic is appended to a fresh stream at each rate in turn. Measured:

- click -> feature: probe clicks (20/s, each from a fresh session) are appended with the
  traffic; a poller reads their sessions' features through the online store until
  ``session_events`` shows up. Time from the XADD to the value being readable.
- stock-out -> sold out: probe ``stock_change`` events to level 0 (5/s, fresh items); the
  poller checks the sold-out set. Time from the XADD to membership.
- sustained: a stage is sustained when the consumer group's lag at its end is below one
  second of traffic, no probe was lost and the click probes' median stays under 1 s (a
  job can read the log as fast as events come while queueing them inside: Flink's network
  buffers hold seconds of events); ``max_sustained_eps`` is the highest such rate.
- cpu%: CPU time of the system's process tree during the stage, in % of one core.

Traffic lines are generated before each stage (the generator alone costs ~0.15 ms/event,
which would otherwise compete with the systems under test for the same cores). The last
line: ``stream cores=<c> max_sustained_eps=<r> click_to_feature_p99_ms=<x>
soldout_p99_ms=<y>``: the Flink job's highest sustained rate, and its p99s at 1,000
events/s, the rate the targets are set at (at the highest sustained rate if 1,000 was not
sustained or not run).

Why one module of ~470 lines: one benchmark: its load generator, probes, baseline consumer
and report share the stage loop.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
import redis

from bench.parity import bench_redis_url
from bench.stats import percentile
from flashrec.events import CatalogEvent, StorefrontEvent
from flashrec.settings import Settings
from flashrec.simulator import SimulationConfig
from flashrec.simulator.stream import LiveTraffic
from flink_jobs import job_process
from flink_jobs.job_config import JobConfig

PROBE_CLICKS_PER_S = 20
PROBE_STOCK_EVERY = 4  # one stock probe every 4 click probes (5/s)
TICK_S = 0.05
PROBE_TIMEOUT_S = 15.0
#: A job can read the log as fast as events come while queueing them inside (Flink's
#: network buffers hold seconds of events): a probe median above this means a backlog.
BACKLOG_P50_MS = 1000.0
TARGET_EPS = 1000  # the rate whose latencies the last line reports (the target)


@dataclass
class StageResult:
    system: str
    rate: int
    sent: int = 0
    elapsed_s: float = 0.0
    click_ms: list[float] = field(default_factory=list)
    soldout_ms: list[float] = field(default_factory=list)
    lost: int = 0
    lag_end: int = 0
    lag_max: int = 0
    cpu_pct: float = 0.0  # CPU used by the system under test (its process tree), % of a core

    @property
    def achieved_eps(self) -> float:
        return self.sent / self.elapsed_s if self.elapsed_s else 0.0

    @property
    def sustained(self) -> bool:
        return (
            self.lag_end <= max(self.rate, 200)
            and self.lost == 0
            and self.achieved_eps >= 0.9 * self.rate
            and percentile(self.click_ms, 50) <= BACKLOG_P50_MS
        )

    def row(self) -> str:
        return (
            f"{self.system:<8} {self.rate:>6} {self.achieved_eps:>8.0f} "
            f"{percentile(self.click_ms, 50):>8.1f} {percentile(self.click_ms, 99):>8.1f} "
            f"{percentile(self.soldout_ms, 50):>8.1f} {percentile(self.soldout_ms, 99):>8.1f} "
            f"{self.lost:>5} {self.lag_end:>7} {self.lag_max:>7} {self.cpu_pct:>5.0f}  "
            + ("yes" if self.sustained else "no")
        )


HEADER = (
    f"{'system':<8} {'rate':>6} {'achieved':>8} {'clk_p50':>8} {'clk_p99':>8} "
    f"{'out_p50':>8} {'out_p99':>8} {'lost':>5} {'lag_end':>7} {'lag_max':>7} {'cpu%':>5}"
    "  sustained"
)


class Probes:
    """Sends detectable events and measures when their effect is readable."""

    def __init__(self, config: JobConfig, tag: str, items: list[str]) -> None:
        from flink_jobs.job_sinks import make_writer

        self.config, self.tag, self.items = config, tag, items
        self.writer = make_writer(config, apply=True)  # the job may not have applied yet
        self.writer.warm_up()
        self.r = redis.Redis.from_url(config.settings.redis_url, decode_responses=True)
        self.n = 0
        self.clicks: dict[str, float] = {}  # session id -> send time (perf_counter)
        self.outs: dict[str, float] = {}  # item id -> send time
        self.click_ms: list[float] = []
        self.soldout_ms: list[float] = []
        self.lost = 0
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._poll, daemon=True)
        self.thread.start()

    def make(self) -> tuple[list[str], dict[str, str], dict[str, str]]:
        """Payloads of the next probes, and the keys they will show up under."""
        self.n += 1
        now = datetime.now(UTC)
        session = f"probe-{self.tag}-{self.n}"
        click = StorefrontEvent(
            event_id=f"probe-{self.tag}-c{self.n}", event_time=now, event_type="click",
            item_id=self.items[self.n % len(self.items)], session_id=session, price=1.0,
        )  # fmt: skip
        payloads, clicks, outs = [click.to_json()], {session: "click"}, {}
        if self.n % PROBE_STOCK_EVERY == 0:
            item = f"probe-item-{self.tag}-{self.n}"
            out = CatalogEvent(
                event_id=f"probe-{self.tag}-s{self.n}", event_time=now,
                event_type="stock_change", item_id=item, stock_level=0,
            )  # fmt: skip
            payloads.append(out.to_json())
            outs[item] = "out"
        return payloads, clicks, outs

    def sent(self, clicks: dict[str, str], outs: dict[str, str], at: float) -> None:
        with self.lock:
            self.clicks.update(dict.fromkeys(clicks, at))
            self.outs.update(dict.fromkeys(outs, at))

    def _poll(self) -> None:
        while not self.stop.is_set():
            try:
                self._poll_once()
            except Exception as exc:  # keep measuring; a failed read is retried
                print(f"probe poll failed: {type(exc).__name__}: {exc}", flush=True)
                time.sleep(0.5)
            time.sleep(0.003)

    def _poll_once(self) -> None:
        with self.lock:
            clicks, outs = dict(self.clicks), dict(self.outs)
        if clicks:
            keys = list(clicks)
            rows = self.writer.read("session_activity", keys)
            seen = time.perf_counter()
            for key, row in zip(keys, rows, strict=True):
                if row.get("session_events"):
                    self._done(self.clicks, key, self.click_ms, seen)
        if outs:
            keys = list(outs)
            flags = self.r.smismember(self.config.soldout_key, keys)
            seen = time.perf_counter()
            for key, flag in zip(keys, flags, strict=True):
                if flag:
                    self._done(self.outs, key, self.soldout_ms, seen)
        self._expire()

    def _done(self, pending: dict[str, float], key: str, into: list[float], seen: float) -> None:
        with self.lock:
            at = pending.pop(key, None)
            if at is not None:
                into.append((seen - at) * 1000)

    def _expire(self) -> None:
        now = time.perf_counter()
        with self.lock:
            for pending in (self.clicks, self.outs):
                for key in [k for k, at in pending.items() if now - at > PROBE_TIMEOUT_S]:
                    del pending[key]
                    self.lost += 1

    def take(self) -> tuple[list[float], list[float], int]:
        """Measurements since the last call (after waiting for the outstanding probes)."""
        deadline = time.monotonic() + PROBE_TIMEOUT_S + 1
        while time.monotonic() < deadline:
            with self.lock:
                if not self.clicks and not self.outs:
                    break
            time.sleep(0.05)
        with self.lock:
            out = (self.click_ms, self.soldout_ms, self.lost)
            self.click_ms, self.soldout_ms, self.lost = [], [], 0
        return out

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)


def tree_cpu_s(pid: int | None) -> float:
    """User+system CPU seconds of a process and its descendants (0 without a pid)."""
    if pid is None:
        return 0.0
    total = 0.0
    try:
        root = psutil.Process(pid)
        for proc in [root, *root.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                times = proc.cpu_times()
                total += times.user + times.system
    except psutil.Error:
        pass
    return total


def lag_of(r: redis.Redis, stream: str, group: str) -> int:
    try:
        for info in r.xinfo_groups(stream):
            if info["name"] == group:
                return int(info.get("lag") or 0)
    except redis.ResponseError:
        pass
    return 0


def run_stage(
    system: str, rate: int, seconds: float, traffic: LiveTraffic, probes: Probes,
    r: redis.Redis, stream: str, group: str, pid: int | None = None,
) -> StageResult:  # fmt: skip
    """Append ``rate`` events/s for ``seconds`` (plus probes), tracking the group's lag
    and the CPU time of process ``pid`` and its children."""
    lines = traffic.next_lines(int(rate * seconds))
    result = StageResult(system, rate)
    cpu_before = tree_cpu_s(pid)
    per_tick = max(1, int(round(rate * TICK_S)))
    probe_every = max(1, int(round(1 / (PROBE_CLICKS_PER_S * TICK_S))))
    t0 = time.perf_counter()
    tick = 0
    pos = 0
    while pos < len(lines):
        due = t0 + tick * TICK_S
        wait = due - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        chunk = lines[pos : pos + per_tick]
        pos += len(chunk)
        pipe = r.pipeline(transaction=False)
        clicks: dict[str, str] = {}
        outs: dict[str, str] = {}
        if tick % probe_every == 0:
            payloads, clicks, outs = probes.make()
            for payload in payloads:
                pipe.xadd(stream, {"payload": payload})
        for line in chunk:
            pipe.xadd(stream, {"payload": line})
        at = time.perf_counter()
        pipe.execute()
        probes.sent(clicks, outs, at)
        result.sent += len(chunk)
        if tick % 10 == 0:
            result.lag_max = max(result.lag_max, lag_of(r, stream, group))
        tick += 1
    result.elapsed_s = time.perf_counter() - t0
    result.cpu_pct = 100 * (tree_cpu_s(pid) - cpu_before) / result.elapsed_s
    result.lag_end = lag_of(r, stream, group)
    result.lag_max = max(result.lag_max, result.lag_end)
    result.click_ms, result.soldout_ms, result.lost = probes.take()
    return result


def drain(r: redis.Redis, stream: str, group: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and lag_of(r, stream, group) > 0:
        time.sleep(0.2)


# -- the baseline consumer ---------------------------------------------------------------------


def baseline_worker(config: JobConfig) -> None:
    """XREADGROUP -> parse -> fold in memory -> flush (same sinks) -> XACK, until SIGTERM."""
    from flashrec.eventlog.redis_streams import RedisStreamsEventLog
    from flashrec.events import Rejection, parse_event
    from flashrec.features import FEATURE_VIEWS, feature_event
    from flink_jobs.job_sinks import FeatureRecord, LiveState, flush, make_writer

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    log = RedisStreamsEventLog.from_settings(config.settings)
    log.ensure_group(config.group)
    writer, live = make_writer(config, apply=True), LiveState(config)
    states: dict[tuple[str, str], list[Any]] = {}
    categories: dict[str, str] = {}
    print("baseline ready", flush=True)
    while not stop.is_set():
        records = log.read_group(config.group, "baseline", count=1000, block_ms=20)
        if not records:
            continue
        out: list[FeatureRecord] = []
        for rec in records:
            event = parse_event(rec.payload)
            if isinstance(event, Rejection):
                continue
            if isinstance(event, CatalogEvent) and event.category:
                categories[event.item_id] = event.category
            fe = feature_event(event, categories.get(event.item_id))
            for view in FEATURE_VIEWS:
                key = view.key_of(fe)
                if key is None:
                    continue
                held = states.setdefault((view.name, key), [view.new_state(), fe.event_time_ms])
                view.update(held[0], fe)
                held[1] = max(held[1], fe.event_time_ms)
                out.append(
                    FeatureRecord(view.name, key, held[1], view.values(held[0]),
                                  fe.event_type, fe.event_time_ms, 0)
                )  # fmt: skip
        flush(out, writer, live)
        log.ack(config.group, [rec.id for rec in records])


# -- orchestration -----------------------------------------------------------------------------


def _environment(redis_url: str, work: Path, tag: str, system: str) -> dict[str, str]:
    return {
        **os.environ,
        "REDIS_URL": redis_url,
        "FLASHREC_VAR_DIR": str(work / "var"),
        "FLASHREC_EVENTS_STREAM": f"bench:{tag}:{system}:events",
        "FLASHREC_DEADLETTER_STREAM": f"bench:{tag}:{system}:deadletter",
        "FLASHREC_RESCORE_STREAM": f"bench:{tag}:{system}:rescore",
        "FEAST_USAGE": "False",
    }


def _keys(tag: str, system: str) -> dict[str, str]:
    return {
        "stock_key": f"bench:{tag}:{system}:stock",
        "soldout_key": f"bench:{tag}:{system}:soldout",
        "catalog_key": f"bench:{tag}:{system}:catalog",
    }


def bench_system(
    system: str, args: argparse.Namespace, redis_url: str, work: Path, tag: str
) -> list[StageResult]:
    from flink_jobs import build_java

    env = _environment(redis_url, work, tag, system)
    settings = Settings.from_env(env)
    keys = _keys(tag, system)
    config = JobConfig.from_settings(settings, writer=args.writer, **keys)
    stream, group = settings.events_stream, config.group
    log_path = work / f"{system}.log"
    if system == "flink":
        flags = [f"--{k.replace('_', '-')}={v}" for k, v in keys.items()]
        jar = build_java.build(log=lambda _msg: None)
        argv = ["run", "--writer", args.writer, "--jar", str(jar), *flags]
        argv += ["--flush-ms", str(args.flush_ms)]
        proc = job_process.spawn(argv, log_path, env)
    else:
        spec = json.dumps({"env": env, "writer": args.writer, "keys": keys})
        proc = subprocess.Popen(
            [sys.executable, "-m", "bench.stream", "--baseline-worker", spec],
            env=env, stdout=log_path.open("ab"), stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    traffic = LiveTraffic(
        SimulationConfig(n_users=2000, n_items=500, bad_event_rate=0.0, duplicate_rate=0.0),
        run_id=f"{tag}{system[0]}",
    )
    probes = Probes(config, tag + system[0], traffic.catalog.item_ids[:50])
    results: list[StageResult] = []
    try:
        started = time.monotonic()
        warm = run_stage(system, 50, 2.0, traffic, probes, r, stream, group)
        while warm.lost or not warm.click_ms:  # until the first probe shows up (start-up)
            if proc.poll() is not None:
                tail = log_path.read_text(errors="replace")[-3000:]
                raise SystemExit(f"{system} exited during start-up:\n{tail}")
            if time.monotonic() - started > 300:
                raise SystemExit(f"{system} not ready after 300 s; see {log_path}")
            warm = run_stage(system, 50, 2.0, traffic, probes, r, stream, group)
        print(f"{system}: ready after {time.monotonic() - started:.1f}s", flush=True)
        drain(r, stream, group)
        for rate in args.rates:
            result = run_stage(
                system, rate, args.seconds, traffic, probes, r, stream, group, proc.pid
            )
            results.append(result)
            print(result.row(), flush=True)
            if not result.sustained:
                break
            drain(r, stream, group)
    finally:
        probes.close()
        job_process.stop_group(proc.pid, timeout_s=20)  # the JVM too, not just the client
        r.close()
    return results


def summary_line(cores: int, stages: list[StageResult]) -> str:
    """The last line: the highest sustained rate, and the latencies at the target rate
    (1,000 events/s, where the issue sets its targets), or at the highest sustained rate
    when the target rate was not sustained or not run."""
    sustained = [x for x in stages if x.sustained]
    best = max(sustained, key=lambda x: x.rate) if sustained else None
    at = next((x for x in sustained if x.rate == TARGET_EPS), best)
    nan = float("nan")
    return (
        f"stream cores={cores} max_sustained_eps={best.rate if best else 0} "
        f"click_to_feature_p99_ms={percentile(at.click_ms, 99) if at else nan:.0f} "
        f"soldout_p99_ms={percentile(at.soldout_ms, 99) if at else nan:.0f}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="500,1000,1500,2000,3000")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--writer", choices=("feast", "redis"), default="feast")
    parser.add_argument("--flush-ms", type=int, default=20)
    parser.add_argument("--systems", default="flink,baseline")
    parser.add_argument("--redis-url", default=None, help="default: REDIS_URL's host, db 12")
    parser.add_argument("--baseline-worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    os.environ.setdefault("FEAST_USAGE", "False")
    if args.baseline_worker:
        spec = json.loads(args.baseline_worker)
        settings = Settings.from_env(spec["env"])
        baseline_worker(JobConfig.from_settings(settings, writer=spec["writer"], **spec["keys"]))
        return 0
    args.rates = [int(x) for x in args.rates.split(",")]
    redis_url = args.redis_url or bench_redis_url(Settings.from_env().redis_url)
    work = Path(tempfile.mkdtemp(prefix="flashrec-bench-stream-"))
    tag = uuid.uuid4().hex[:6]
    cores = os.cpu_count() or 1
    print(f"bench-stream: {cores} cores, writer {args.writer}, Redis {redis_url}, "
          f"stages {args.rates} x {args.seconds:.0f}s, work dir {work}")  # fmt: skip
    print(HEADER, flush=True)
    results: dict[str, list[StageResult]] = {}
    for system in args.systems.split(","):
        results[system] = bench_system(system, args, redis_url, work, tag)
    print(HEADER)
    for system_results in results.values():
        for result in system_results:
            print(result.row())
    flink = results.get("flink", [])
    print(summary_line(cores, flink))
    return 0


if __name__ == "__main__":
    sys.exit(main())
