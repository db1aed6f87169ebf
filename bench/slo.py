"""`make bench-slo`: the flash-sale load test of the whole stack, with an SLO report.

    python -m bench.slo [--ramp 10:20,100:20,1000:60] [--quiet-duration 20]
        [--warmup-duration 20] [--click-rate 5] [--soldout-rate 1] [--redis-db 13] ...

What one run does (about five minutes at the defaults, bounded by the flags):

1. Start the serving stack as ``make up`` would (model service, read API, Flink features
   job, scorer, gateway; ``bench.slo_stack``) on free loopback ports, Redis database 13
   (flushed first) and a work folder ``var/bench/slo/work``. The champion model is reused
   or fitted in seconds (``bench.slo_model``).
2. Warm up: probe shoppers get a dozen views each, and the simulator's stream runs for a
   while through the gateway, so shoppers have cached lists and every component has
   served real work.
3. Quiet phase, open loop (``bench.read_sweep``): a constant-rate generator in a process of
   its own offers reads at rising rates to the bare ASGI ceiling (``bench.bare_asgi``) and
   to the read API, same shoppers, same bytes, until each falls behind: their saturation
   throughputs; then both at half the bare ceiling's saturation rate for
   ``--quiet-duration`` seconds. Latency counts from each request's due time, so a slow
   answer shows in the requests queued behind it; percentiles from every raw sample.
4. Surge: the simulator's events through the gateway along the ramp (10x-100x), reads
   offered open loop against the read API at the same time, at ``--surge-read-share``
   (default half) of its saturation rate (raw samples, cut into one-second slices for the
   time series), a 1 Hz sampler (server latency, answers by source, accepted events, Flink
   and scorer lag), and freshness probes (``bench.slo_probes``): click -> updated cached
   list (with each list's trace: where the time went, leg by leg), sold-out -> no longer
   served (superseded only by a restock above zero within 2 s). After the ramp, probes
   still in flight get ``--drain`` seconds.
5. Report (``bench.slo_report``): a table on stdout, ``var/bench/slo/report.md`` with PNG
   plots through the surge, raw samples in ``run.json``; the last line is

    slo cores=<c> read_p99_ms=<x> read_offered_rps=<o> read_sat_rps=<r>
        baseline_sat_rps=<a> click_to_recs_p99_ms=<y> soldout_p99_ms=<z>
        soldout_superseded=<n> errors=<e>

   (``read_p99_ms`` at ``read_offered_rps``, half the bare saturation rate; freshness: the
   ramp's top stage; errors: everything counted anywhere.) Everything started is stopped
   at the end, after an error or Ctrl-C too.

``--faults`` (``make bench-slo FAULTS=1``): the run gets a redis-server of its own (AOF
on) and a longer top stage, during which the Flink job, the scorer and the model service
are killed with -9 and Redis is restarted (``bench.slo_faults``): recovery times, reads
and errors per second around each fault, and after catch-up every accepted event checked
in the features and the lake. Its summary line comes right before the last line.

Why one module of ~730 lines: the benchmark's orchestration (stack, stages, faults,
collection) in run order; the figures are ``slo_report``, the probes ``slo_probes``, the
load ``slo_load``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import sys
import threading
import time
import uuid
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis

from bench import read_sweep, slo_read
from bench.redis_server import RedisServer
from bench.slo_faults import (
    Injector,
    around,
    check_features,
    check_lake,
    ramp_for_faults,
    schedule,
)
from bench.slo_load import (
    OpenLoopReads,
    Sampler,
    gateway_client,
    publisher_report,
    spawn_publisher,
)
from bench.slo_plots import plot
from bench.slo_probes import ClickProbes, SoldOutProbes, warm_lists, warm_up_events
from bench.slo_report import (
    Probe,
    ReadRun,
    SloRun,
    Stage,
    console,
    degraded_count,
    last_line,
    markdown,
    served_counts,
    served_delta,
    server_errors,
    surge_line,
)
from bench.slo_report import headline as make_headline
from bench.slo_stack import Stack, environment, redis_db_url, run_helper
from bench.stats import histogram_quantile
from flashrec.publish import parse_ramp
from flashrec.serving import keys
from flashrec.settings import PROJECT_ROOT, Settings

VARIANT = "champion"
CLICK_USERS = 40
SOLDOUT_USERS = 8
WARM_VIEWS = 12


def say(message: str) -> None:
    print(f"[bench-slo {time.strftime('%H:%M:%S')}] {message}", flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ramp", default=None, help="surge: RATE:SECONDS,... (10:20,100:20,1000:60)")
    ap.add_argument("--quiet-duration", type=int, default=20, help="s of the half-saturation stage")
    ap.add_argument("--stage-duration", type=float, default=6.0, help="s per saturation stage")
    ap.add_argument("--rounds", type=int, default=1, help="quiet-phase rounds")
    ap.add_argument("--warmup-rate", type=float, default=100.0, help="events/s")
    ap.add_argument("--warmup-duration", type=float, default=20.0, help="s")
    ap.add_argument("--click-rate", type=float, default=5.0, help="click probes/s")
    ap.add_argument("--soldout-rate", type=float, default=1.0, help="stock-out probes/s")
    ap.add_argument("--probe-timeout", type=float, default=60.0, help="s a probe is waited for")
    ap.add_argument("--drain", type=float, default=30.0, help="s for probes after the ramp")
    ap.add_argument(
        "--surge-read-share",
        type=float,
        default=0.5,
        help="surge reads offered at this share of the read API's saturation throughput",
    )
    ap.add_argument("--ready-timeout", type=float, default=240.0, help="s for the stack")
    ap.add_argument("--redis-db", type=int, default=13)
    ap.add_argument("--out", type=Path, default=PROJECT_ROOT / "var" / "bench" / "slo")
    ap.add_argument("--model", type=Path, default=None, help="catalog model artifact folder")
    ap.add_argument("--with-dagster", action="store_true", help="also start dagster dev")
    ap.add_argument("--faults", action="store_true", help="kill/restart components mid-surge")
    ap.add_argument("--fault-gap", type=float, default=45.0, help="s between two faults")
    ap.add_argument(
        "--catch-up", type=float, default=1200.0, help="s the faults' backlog may take to drain"
    )
    args = ap.parse_args(argv)
    if args.ramp is None:
        args.ramp = ramp_for_faults(args.fault_gap) if args.faults else "10:20,100:20,1000:60"
    args.ramp_stages = parse_ramp(args.ramp)
    return args


class Run:
    """One benchmark run: owns every process and thread it starts (see ``close``)."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.out = args.out.resolve()
        self.work = self.out / "work"
        self.work.mkdir(parents=True, exist_ok=True)
        self.redis_server: RedisServer | None = None
        self.injector: Injector | None = None
        self.faults: dict[str, Any] = {}
        self._fault_inputs: Any = None
        if args.faults:  # Redis is restarted mid-run: a server of its own, AOF on
            from orchestration import supervise

            supervise.shutdown(supervise.Paths(self.work / "run", self.work / "logs"))
            for old in ("redis", "landing"):  # the lake is checked per run: start empty
                shutil.rmtree(self.work / old, ignore_errors=True)
            self.redis_server = RedisServer(self.work / "redis", appendonly=True).start()
            redis_url = self.redis_server.url
        else:
            redis_url = redis_db_url(Settings.from_env().redis_url, args.redis_db)
        os.environ.update(environment(self.work, redis_url))
        self.settings = Settings.from_env()
        self.redis = redis.Redis.from_url(redis_url)
        self.stack = Stack(self.settings, with_dagster=args.with_dagster, log=say)
        self.tag = uuid.uuid4().hex[:6]
        self.bare: Any = None
        self.publisher: Any = None
        self.threads: list[Any] = []
        self.probes: list[Any] = []
        self.meta: dict[str, Any] = {
            "started": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "redis_db": args.redis_db,
            "ramp": args.ramp,
            "quiet_s": args.quiet_duration,
            "drain_s": args.drain,
            "dagster": "on" if args.with_dagster else "off",
            "notes": [],
        }
        (self.work / "dagster").mkdir(exist_ok=True)  # DAGSTER_HOME, for --with-dagster
        probe_eps = args.click_rate + 2 * args.soldout_rate  # a stock-out is undone later
        self.meta["notes"].append(
            f"'achieved' counts every event the gateway accepted, the probes' own included "
            f"(about {probe_eps:g}/s)"
        )
        self.errors: dict[str, int] = {}
        self.load: dict[str, tuple[float, float, float]] = {"start": os.getloadavg()}
        self.publish_reports: dict[str, dict[str, Any]] = {}

    @property
    def logs(self) -> Path:
        return self.work / "logs"

    # -- 1. the stack --------------------------------------------------------------------

    def start_stack(self) -> None:
        from flink_jobs import build_java

        self.logs.mkdir(parents=True, exist_ok=True)
        self.redis.flushdb()
        jar = build_java.build(PROJECT_ROOT / "var" / "flink" / build_java.JAR_NAME, log=say)
        self.stack.use_jar(jar)
        feast_error: list[str] = []

        def feast() -> None:
            try:
                run_helper(["-m", "bench.slo_stack", "apply-feast"], self.logs / "feast.log", 300)
            except Exception as exc:  # noqa: BLE001 - reported by the components waiting
                feast_error.append(str(exc))

        feast_thread = threading.Thread(target=feast, name="feast-apply", daemon=True)
        feast_thread.start()

        def wait_feast() -> None:
            feast_thread.join()
            if feast_error:
                raise RuntimeError(feast_error[0])

        def model() -> None:
            argv = ["-m", "bench.slo_model", "--work", str(self.work)]
            if self.args.model:
                argv += ["--model", str(self.args.model)]
            info = json.loads(run_helper(argv, self.logs / "model.log", 600).splitlines()[-1])
            self.meta["model"] = info["model_version"]
            self.meta["model_origin"] = info["origin"]
            say(f"  model {info['model_version']} ({info['origin']}) registered as champion")

        where = self.redis_server.url if self.redis_server else f"db {self.args.redis_db}"
        say(f"starting the stack (Redis {where}, work {self.work})")
        t0 = time.monotonic()
        self.stack.start(
            {"model_service": model, "flink_features": wait_feast, "scorer": wait_feast}
        )
        say(f"stack up in {time.monotonic() - t0:.0f}s")

    def check_alive(self) -> None:
        if self.args.faults:
            return  # components are killed on purpose; supervision brings them back
        dead = [name for name, up in self.stack.alive().items() if not up]
        if dead:
            tails = "\n".join(
                f"--- {n}.log ---\n{(self.logs / f'{n}.log').read_text(errors='replace')[-1500:]}"
                for n in dead
                if (self.logs / f"{n}.log").exists()
            )
            raise RuntimeError(f"components died: {', '.join(dead)}\n{tails}")

    # -- 2. warm-up ----------------------------------------------------------------------

    def warm_up(self) -> tuple[list[str], list[str]]:
        from flashrec.simulator import SimulationConfig
        from flashrec.simulator.stream import LiveTraffic

        traffic = LiveTraffic(SimulationConfig.from_settings(self.settings), run_id="catalog")
        self.items = list(traffic.catalog.item_ids)
        assert traffic.sale is not None
        self.sale_items = [self.items[i] for i in traffic.sale.sale_items.tolist()]
        self.click_users = [f"slo-click-{i:02d}" for i in range(CLICK_USERS)]
        self.soldout_users = [f"slo-out-{i:02d}" for i in range(SOLDOUT_USERS)]
        probes = self.click_users + self.soldout_users
        say(
            f"warm-up: {self.args.warmup_rate:g} events/s for {self.args.warmup_duration:g}s, "
            f"{len(probes)} probe shoppers x {WARM_VIEWS} views"
        )
        t0 = time.monotonic()
        publisher = spawn_publisher(
            [(self.args.warmup_rate, self.args.warmup_duration)],
            f"warm-{self.tag}",
            self.logs / "publish.log",
            bootstrap=True,
        )
        self.publisher = publisher
        self.wait_for_catalog()
        gateway = gateway_client(self.settings.gateway_port)
        verdict = gateway.post(warm_up_events(probes, self.items, WARM_VIEWS, seed=3))
        gateway.close()
        if verdict.get("accepted") != len(probes) * WARM_VIEWS:
            raise RuntimeError(f"probe warm-up events refused: {str(verdict)[:300]}")
        deadline = time.monotonic() + self.args.ready_timeout
        while True:
            self.check_alive()
            tiers = warm_lists(self.redis, VARIANT, probes)
            if sum(t == "personalized" for t in tiers.values()) == len(probes):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"after {self.args.ready_timeout:.0f}s only {len(tiers)}/{len(probes)} probe "
                    f"shoppers have a list ({tiers}); see {self.logs}"
                )
            time.sleep(0.5)
        say(f"  events -> Flink -> scorer -> model -> cache works ({time.monotonic() - t0:.0f}s)")
        self.publish_reports["warm-up"] = publisher_report(
            publisher, self.args.warmup_duration + 120
        )
        self.publisher = None
        self.wait_for_lag(60.0)
        return self.read_pool()

    def wait_for_catalog(self, timeout_s: float = 60.0) -> None:
        """Until the publisher's catalog (an ``item_created`` per item, sent first) is in
        the log: a probe's view of an item logged before the item's creation would get
        no category from the stream job (see ``flink_jobs.job_operators``), which the
        fault run's exact comparison would report as a wrong value."""
        deadline = time.monotonic() + timeout_s
        while int(self.redis.xlen(self.settings.events_stream)) < len(self.items):
            if time.monotonic() > deadline:
                self.meta["notes"].append("the catalog was not logged before the probes")
                return
            time.sleep(0.1)

    def wait_for_lag(self, timeout_s: float) -> None:
        """Until the Flink job and the scorer have read everything for two seconds running
        (the job reads before it flushes signals, so one quiet look is not enough)."""
        from bench.slo_load import group_lag

        deadline = time.monotonic() + timeout_s
        quiet_since = None
        while time.monotonic() < deadline:
            lag = group_lag(self.redis, self.settings.events_stream, "flink-features")
            rescore = group_lag(self.redis, self.settings.rescore_stream, "scorer")
            if lag or rescore:
                quiet_since = None
            elif quiet_since is None:
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since >= 2.0:
                return
            time.sleep(0.25)
        self.meta["notes"].append(f"the warm-up backlog had not drained after {timeout_s:.0f}s")

    def read_pool(self, timeout_s: float = 30.0) -> tuple[list[str], list[str]]:
        """Shoppers with a cached list after the warm-up (the probes' own excluded)."""
        pattern = keys.rec_list(VARIANT, "*")
        prefix = len(keys.rec_list(VARIANT, ""))
        deadline = time.monotonic() + timeout_s
        while True:
            users, sessions = [], []
            for key in self.redis.scan_iter(match=pattern, count=1000):
                kind, _, ident = key.decode()[prefix:].partition(":")
                if not ident.startswith("slo-"):
                    (users if kind == "u" else sessions).append(ident)
            if users:
                break
            if time.monotonic() > deadline:
                raise RuntimeError("no known shopper has a cached list after the warm-up")
            time.sleep(1.0)
        users, sessions = sorted(users)[:2000], sorted(sessions)[:2000]
        say(f"  read mix: {len(users)} known shoppers, {len(sessions)} sessions with a list")
        self.meta["read_pool"] = {"users": len(users), "sessions": len(sessions)}
        return users, sessions

    # -- 3. quiet phase ------------------------------------------------------------------

    def start_bare(self, probe_user: str) -> int:
        for _ in range(3):
            port = slo_read.free_port()
            cmd = [sys.executable, "-m", "bench.bare_asgi", "--port", str(port)]
            self.bare = slo_read.start(cmd, dict(os.environ), self.logs / "bare_asgi.log")
            if slo_read.wait_ready(self.bare, port, f"/recommendations?user_id={probe_user}"):
                return port
            slo_read.stop(self.bare)
        raise RuntimeError(f"the bare ASGI app did not start; see {self.logs}/bare_asgi.log")

    def quiet(self, paths: list[str], probe_user: str) -> tuple[list[ReadRun], dict]:
        """Open-loop reads (``bench.read_sweep``): offered rates up to saturation for the
        bare ceiling and the read API, then both at half the bare saturation rate."""
        a = self.args
        say("quiet phase: open-loop reads up to saturation, then at half the bare ceiling's")
        bare_port = self.start_bare(probe_user)
        read_port = self.settings.read_api_port
        read_pid = self.stack.pids["read_api"]
        targets = [("bare_asgi", bare_port, self.bare.pid), ("read_api", read_port, read_pid)]
        # /metrics is on the read API's admin port (the bare app has none: "" -> nan).
        metrics_port = {bare_port: bare_port, read_port: self.settings.read_api_admin_port}
        for _, port, _ in targets:
            read_sweep.stage(f"http://127.0.0.1:{port}", paths, 300, 2)  # warm-up
        sat: dict[str, float] = {}
        for name, port, _ in targets:
            say(f"  {name}: sweep")
            stages, sat[name] = read_sweep.saturate(
                f"http://127.0.0.1:{port}", paths, a.stage_duration, log=say
            )
            self.meta.setdefault("sweeps", {})[name] = [
                (st.offered_rps, st.achieved_rps, st.p99_ms) for st in stages
            ]
        offered = round(sat["bare_asgi"] / 2)
        runs: list[ReadRun] = []
        served: dict[tuple[str, str], float] = {}
        self.quiet_degraded = 0.0
        for _ in range(a.rounds):
            for name, port, pid in targets:
                text0 = slo_read.metrics_text(metrics_port[port])
                cpu0 = slo_read.cpu_seconds(pid)
                st = read_sweep.stage(f"http://127.0.0.1:{port}", paths, offered, a.quiet_duration)
                cpu = slo_read.cpu_seconds(pid) - cpu0
                text1 = slo_read.metrics_text(metrics_port[port])
                h0, h1 = slo_read.parse_histogram(text0), slo_read.parse_histogram(text1)
                runs.append(
                    ReadRun(
                        name,
                        st.achieved_rps,
                        st.p50_ms,
                        st.p99_ms,
                        histogram_quantile(h0, h1, 0.5) if h1 else math.nan,
                        histogram_quantile(h0, h1, 0.99) if h1 else math.nan,
                        st.errors,
                        st.completed,
                        cpu / max(st.completed, 1) * 1e6,
                        offered_rps=offered,
                        sat_rps=sat[name],
                    )
                )
                for k, v in served_delta(served_counts(text0), served_counts(text1)).items():
                    served[k] = served.get(k, 0.0) + v
                self.quiet_degraded += degraded_count(text1) - degraded_count(text0)
                say(f"  {name:<10} offered {offered}/s: p50 {st.p50_ms:.2f} ms  "
                    f"p99 {st.p99_ms:.2f} ms  errors {st.errors}")  # fmt: skip
        slo_read.stop(self.bare)
        self.bare = None
        self.errors["read_api_non2xx_quiet"] = sum(r.errors for r in runs if r.name == "read_api")
        self.load["quiet_end"] = os.getloadavg()
        return runs, served

    # -- 4. surge ------------------------------------------------------------------------

    def surge(
        self, paths: list[str], read_rate: float
    ) -> tuple[list[Stage], float, Any, Any, list[Probe]]:
        a, s = self.args, self.settings
        say(f"surge: ramp {a.ramp} (events/s:seconds) + open-loop reads at {read_rate:.0f}/s")
        sampler = Sampler(s.read_api_admin_port, s.redis_url, s.events_stream, s.rescore_stream)
        longest = sum(sec for _, sec in a.ramp_stages) + a.drain + 300
        load = OpenLoopReads(f"http://127.0.0.1:{s.read_api_port}", paths, read_rate, longest)
        self.threads += [sampler, load]
        sampler.start()
        load.start()
        time.sleep(2.0)  # a little "before" on the plots
        before = int(self.redis.xlen(s.events_stream))
        self.publisher = spawn_publisher(
            a.ramp_stages, f"surge-{self.tag}", self.logs / "publish.log", bootstrap=False
        )
        deadline = time.monotonic() + 60
        while int(self.redis.xlen(s.events_stream)) <= before:
            if time.monotonic() > deadline or self.publisher.poll() is not None:
                raise RuntimeError(f"the publisher sent nothing; see {self.logs}/publish.log")
            time.sleep(0.01)
        origin = time.perf_counter()
        clicks = ClickProbes(
            self.redis, s.gateway_port, self.click_users, self.items,
            variant=VARIANT, rate=a.click_rate, timeout_s=a.probe_timeout,
        )  # fmt: skip
        outs = SoldOutProbes(
            self.redis, s.gateway_port, s.read_api_port, self.soldout_users,
            avoid=self.sale_items, events_stream=s.events_stream, rate=a.soldout_rate,
            timeout_s=a.probe_timeout,
        )  # fmt: skip
        self.probes = [clicks, outs]
        clicks.start()
        outs.start()
        if a.faults:
            assert self.redis_server is not None
            self.injector = Injector(
                self.stack, s, self.redis_server, schedule(a.ramp_stages, a.fault_gap),
                a.ramp_stages[-1][0], say, recovery_timeout_s=a.catch_up + 900,
            )  # fmt: skip
            self.injector.origin = origin
            self.injector.start()
        stages, t = [], 0.0
        for rate, seconds in a.ramp_stages:
            stages.append(Stage(rate, t, t + seconds))
            t += seconds
        total = sum(sec for _, sec in a.ramp_stages)
        while self.publisher.poll() is None:
            self.check_alive()
            time.sleep(0.5)
            if time.perf_counter() - origin > total + 120:
                break
        self.publish_reports["surge"] = publisher_report(self.publisher, 30)
        self.publisher = None
        end = time.perf_counter()
        self.load["surge_end"] = os.getloadavg()
        load.stop.set()
        say(f"  ramp done; waiting up to {a.drain:g}s for probes in flight")
        for p in self.probes:
            p.stop_sending()
        for p in self.probes:
            p.finish(end + a.drain)
        if self.injector is not None:
            self.injector.finish(120)  # every fault injected (their recoveries go on)
            self._fault_inputs = (sampler, load, origin)
        sampler.stop.set()
        load.join(90)
        sampler.join(5)
        clicks.classify(s.rescore_stream)
        outs.classify()
        probes = [
            Probe(kind, r.at - origin, r.ms, r.ref, r.outcome, r.legs)
            for kind, prober in (("click", clicks), ("soldout", outs))
            for r in prober.results
        ]
        self.meta["probes"] = {
            "click_skipped": clicks.skipped,
            "soldout_skipped": outs.skipped,
            "click_failures": clicks.failures[:5],
            "soldout_failures": outs.failures[:5],
        }
        self.errors["read_api_non2xx_surge"] = load.errors
        self.errors["read_load_failures"] = len(load.failures)
        self.errors["probe_failures"] = len(clicks.failures) + len(outs.failures)
        for kind, prober in (("click", clicks), ("sold-out", outs)):
            for failure in prober.failures[:3]:
                self.meta["notes"].append(f"{kind} probe failure (counted as an error): {failure}")
        if clicks.skipped or outs.skipped:
            self.meta["notes"].append(
                f"probes skipped because every probe shopper had one in flight: "
                f"{clicks.skipped} click, {outs.skipped} sold-out"
            )
        return stages, origin, sampler, load, probes

    # -- errors, report, cleanup -----------------------------------------------------------

    def count_errors(self) -> None:
        failed = unexpected = 0
        for name, rep in self.publish_reports.items():
            if "error" in rep:
                self.meta["notes"].append(f"{name} publisher: {rep['error']}")
                failed += 1
                continue
            failed += int(rep.get("failed", 0))
            deliberate = int(rep.get("bad_lines", 0)) + int(rep.get("duplicates", 0))
            unexpected += max(0, int(rep.get("rejected", 0)) - deliberate)
        self.errors["gateway_failed_lines"] = failed
        self.errors["gateway_unexpected_rejections"] = unexpected
        fives = 0
        for port in (self.settings.gateway_admin_port, self.settings.model_service_port):
            fives += int(server_errors(slo_read.metrics_text(port)))
        self.errors["gateway_and_model_5xx"] = fives

    def after_faults(self) -> None:
        """Catch-up, then every accepted event in the features and in the lake."""
        from bench.slo_faults import accepted_lines

        say("faults: waiting for the catch-up, then checking every accepted event")
        t0 = time.monotonic()
        self.wait_for_lag(self.args.catch_up)
        self.faults["catch_up_s"] = round(time.monotonic() - t0, 1)
        assert self.injector is not None
        self.injector.finish(60)  # the watchers have seen the lags drain by now
        sampler, load, origin = self._fault_inputs
        self.faults["around"] = {
            f.name: {
                "at_s": round(f.at - origin, 1),
                "back_s": round(f.back_s, 1),
                "recovered_s": round(f.recovered_s, 1),
                "note": f.note,
                **around(sampler.samples, load.slices, f),
            }
            for f in self.injector.faults
        }
        lines = accepted_lines(self.settings)
        self.faults["features"] = check_features(self.settings, lines)
        self.faults["lake"] = check_lake(self.settings, lines)
        say(f"  features {self.faults['features']}, lake {self.faults['lake']}")

    def close(self) -> None:
        """Stop everything this run started (idempotent; errors here never mask others)."""
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second TERM must not cut this short
        if self.injector is not None:
            self.injector.stop.set()
        for p in self.probes:
            p.stopped.set()
            p.stop_sending()
        for t in self.threads:
            t.stop.set()
        if self.publisher is not None and self.publisher.poll() is None:
            self.publisher.terminate()
            try:
                self.publisher.wait(10)
            except Exception:  # noqa: BLE001
                self.publisher.kill()
        if self.bare is not None:
            slo_read.stop(self.bare)
        self.stack.stop()
        for t in self.threads:
            t.join(10)
        self.redis.close()
        if self.redis_server is not None:
            self.redis_server.stop()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    started = time.monotonic()
    run = Run(args)
    say(f"{os.cpu_count()} cores, load average {run.load['start'][0]:.2f}; report in {run.out}")
    result: SloRun | None = None
    try:
        run.start_stack()
        users, sessions = run.warm_up()
        paths = read_sweep.read_paths([f"u:{u}" for u in users] + [f"s:{x}" for x in sessions])
        quiet, quiet_served = run.quiet(paths, run.click_users[0])
        stages, origin, sampler, load, probes = run.surge(paths, surge_read_rate(args, quiet))
        run.count_errors()
        if args.faults:
            run.after_faults()
        run.load["end"] = os.getloadavg()
        result = SloRun(
            cores=os.cpu_count() or 0,
            connections=0,
            quiet=quiet,
            stages=stages,
            slices=_relative(load.slices, origin),
            samples=_relative_samples(sampler.samples, origin),
            probes=probes,
            probe_timeout_s=args.probe_timeout,
            errors=run.errors,
            quiet_served=quiet_served,
            quiet_degraded=run.quiet_degraded,
            load=run.load,
            meta=run.meta,
        )
    except KeyboardInterrupt:
        say("interrupted: stopping everything")
        return 130
    finally:
        run.close()
    if run.load["start"][0] > 0.5 * (os.cpu_count() or 1):
        result.meta["notes"].append(
            f"the machine was already busy when the run started (load "
            f"{run.load['start'][0]:.2f} on {result.cores} cores): figures are pessimistic"
        )
    write_report(result, run)
    say(f"finished in {time.monotonic() - started:.0f}s; report {run.out / 'report.md'}")
    print(console(result))
    print(surge_line(result))
    if args.faults:
        print(fault_table(run.faults))
        print(fault_line(run.faults))
    print(last_line(make_headline(result)))
    return 0


def fault_table(faults: dict[str, Any]) -> str:
    """Per fault: recovery, reads and errors per second, answers by source around it."""
    rows = [
        "| fault | at (s) | back (s) | recovered (s) | reads/s | errors/s | worst 1 s errors "
        "| answers by source | from memory |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, f in faults.get("around", {}).items():
        sources = ", ".join(f"{k} {v:.0f}" for k, v in sorted(f["sources"].items()))
        rows.append(
            f"| {name} | {f['at_s']} | {f['back_s']} | {f['recovered_s']} | "
            f"{f['reads_per_s']:.0f} | {f['errors_per_s']:.2f} | {f['worst_slice_errors']} | "
            f"{sources} | {f['degraded']:.0f} |"
        )
    feats, lake = faults.get("features", {}), faults.get("lake", {})
    rows.append("")
    rows.append(
        f"After catch-up: {feats.get('events', 0):,} accepted events folded into "
        f"{feats.get('keys', 0):,} keys, {feats.get('mismatched_values', '?')} of "
        f"{feats.get('values', 0):,} feature values differ from the reference fold; lake: "
        f"{lake.get('missing', '?')} missing, {lake.get('duplicated', '?')} duplicated."
    )
    return "\n".join(rows)


def fault_line(faults: dict[str, Any]) -> str:
    around_ = faults.get("around", {})
    recovered = " ".join(f"{n}_recovered_s={f['recovered_s']}" for n, f in around_.items())
    read_errors = sum(int(f["errors"]) for f in around_.values())
    lost = int(faults.get("lake", {}).get("missing", -1))
    wrong = int(faults.get("features", {}).get("mismatched_values", -1))
    return (
        f"faults {recovered} read_errors={read_errors} features_mismatched={wrong} lake_lost={lost}"
    )


def surge_read_rate(args: argparse.Namespace, quiet: list[ReadRun]) -> float:
    """The surge's offered read rate: ``--surge-read-share`` of the read API's saturation.

    WHY a share: a storefront's read traffic is a rate, and latency targets are judged at a
    load; reads at saturation would take every cycle the event path (gateway, Flink,
    scorer, model) needs on two cores, measuring it starved by construction.
    """
    sats = [r.sat_rps for r in quiet if r.name == "read_api" and r.sat_rps > 0]
    rate = max(args.surge_read_share * (sats[0] if sats else 1000.0), 50.0)
    say(f"surge reads offered at {rate:.0f}/s ({args.surge_read_share:.0%} of the saturation)")
    return rate


def _interrupt(*_: Any) -> None:
    raise KeyboardInterrupt  # SIGTERM ends the run like Ctrl-C: through ``Run.close``


def _relative(slices: list[Any], origin: float) -> list[Any]:
    for s in slices:
        s.t0, s.t1 = s.t0 - origin, s.t1 - origin
    return slices


def _relative_samples(samples: list[Any], origin: float) -> list[Any]:
    for s in samples:
        s.t = s.t - origin
    return samples


def write_report(result: SloRun, run: Run) -> None:
    out = run.out
    files = plot(result, out)
    last = last_line(make_headline(result))
    (out / "report.md").write_text(markdown(result, files, last))
    raw = asdict(result)
    raw["samples"] = [
        {**asdict(s), "served": {f"{a}/{b}": v for (a, b), v in s.served.items()}}
        for s in result.samples
    ]
    raw["quiet_served"] = {f"{a}/{b}": v for (a, b), v in result.quiet_served.items()}
    raw["publish"] = run.publish_reports
    (out / "run.json").write_text(json.dumps(raw, indent=1, default=str))


if __name__ == "__main__":
    sys.exit(main())
