"""`make bench-soak`: millions of events with shoppers coming and going; memory must stay flat.

    python -m bench.soak [--events 2700000] [--rate 500] [--window-s 120] [--sample-s 10]

What one run does:

1. Start the gateway, read API, model service, Flink features job, scorer and attribution
   (``bench.slo_stack``, supervised as under ``make up``) on free ports, a work folder of
   its own (``var/bench/soak/work``) and a redis-server of its own (memory only: its
   ``used_memory`` is what is measured), with every retention window scaled to
   ``--window-s`` (state TTLs, Feast key TTL, list and last-known-good TTLs, dedupe and
   attribution windows, stream lengths): the steady state a production day reaches after
   its longest window (days) is reached here after a few windows (minutes). The bound is
   the same code; only the durations differ.
2. Drive ``--events`` through the gateway at ``--rate`` (``bench.soak_traffic``: a new
   cohort of shoppers and sessions every ``--cohort-s``, reads for impressions).
3. Every ``--sample-s``: the RSS of each component's process tree (the Flink JVM and the
   BentoML workers included), Redis ``used_memory``, the Flink checkpoint's size on disk,
   the Flink and scorer lags, against the events accepted so far.
4. After the traffic: wait for the lags to drain and the lake's live files to be
   committed, count the run's events in the lake (``lost`` = accepted by the gateway and
   not in the lake), and fit each series after warm-up: slope in MB per million events,
   ~0 when nothing grows. Warm-up is the first ``--warmup`` share of the events, and at
   least an hour plus four windows of traffic: the feature definitions' longest window
   (one hour of per-second buckets per key) is not a retention setting, so an item's
   state grows for the first hour of traffic before it is at its bound (a run too short
   for that is fitted on its second half, and says so).

Report in ``var/bench/soak/`` (``report.md``, ``samples.json``); the last line is

    soak cores=<c> events=<n> rss_slope_mb_per_m=<..> redis_slope_mb_per_m=<..>
        checkpoint_slope_mb_per_m=<..> lost=<n>

Why one module of ~350 lines: one benchmark's run loop (windows, samples, verdict); its
statistics are ``soak_stats``, its traffic ``soak_traffic``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import asdict
from pathlib import Path
from typing import Any

import psutil
import redis

from bench.redis_server import RedisServer
from bench.slo_stack import Stack, environment, run_helper
from bench.soak_stats import Sample, level, slopes
from flashrec.settings import PROJECT_ROOT, Settings
from orchestration import supervise

COMPONENTS = ("gateway", "read_api", "model_service", "flink_features", "scorer", "attribution")


def say(message: str) -> None:
    print(f"[bench-soak {time.strftime('%H:%M:%S')}] {message}", flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # 500/s is what the whole stack sustains on 2 cores (at 1,000/s the stream job fell
    # ~18,000 events behind a minute); 2.7 M at 500/s is 90 minutes: the 68-minute warm-up
    # (an hour of item windows plus four retention windows) and 22 minutes to fit.
    ap.add_argument("--events", type=int, default=2_700_000)
    ap.add_argument("--rate", type=float, default=500.0, help="events/s")
    ap.add_argument("--window-s", type=int, default=120, help="every retention window, scaled")
    ap.add_argument("--cohort-s", type=float, default=60.0, help="new shoppers this often")
    ap.add_argument("--users", type=int, default=2000, help="shoppers per cohort")
    ap.add_argument("--sample-s", type=float, default=10.0)
    ap.add_argument("--warmup", type=float, default=0.3, help="share of events before fitting")
    ap.add_argument("--drain-s", type=float, default=300.0, help="wait for lags and the lake")
    ap.add_argument("--out", type=Path, default=PROJECT_ROOT / "var" / "bench" / "soak")
    return ap.parse_args(argv)


def windows(window_s: int, rate: float) -> dict[str, str]:
    """Every retention bound of the platform, scaled to one window (see the docstring)."""
    w = window_s
    return {
        "FLASHREC_FLINK_SESSION_TTL_S": str(w // 2),
        "FLASHREC_FLINK_USER_TTL_S": str(w),
        "FLASHREC_FEAST_KEY_TTL_S": str(w + w // 2),
        "FLASHREC_SCORER_LIST_TTL_S": str(w + w // 2),
        "FLASHREC_SCORER_LKG_TTL_S": str(2 * w),
        "FLASHREC_SCORER_PREWARM_WINDOW_S": str(w),
        "FLASHREC_DEDUPE_WINDOW_S": str(w // 2),
        "FLASHREC_ATTRIBUTION_WINDOW_S": str(w),
        # ten minutes of traffic (at least): a consumer that falls behind must not find
        # its events trimmed away (production sizes this for its longest outage)
        "FLASHREC_EVENTS_MAXLEN": str(int(rate * max(w, 600))),
        "FLASHREC_DEADLETTER_MAXLEN": "10000",
        "FLASHREC_SERVING_IMPRESSIONS_MAXLEN": "20000",
        "FLASHREC_SERVING_MAX_AGE_S": str(w),
        "FLASHREC_SERVING_LKG_MAX_AGE_S": str(2 * w),
    }


class Run:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.out = args.out.resolve()
        self.work = self.out / "work"
        # a run starts from nothing: first end a stack an interrupted run may have left
        supervise.shutdown(supervise.Paths(self.work / "var" / "run", self.work / "var" / "logs"))
        for sub in ("var", "redis", "logs"):
            shutil.rmtree(self.work / sub, ignore_errors=True)
        (self.work / "logs").mkdir(parents=True, exist_ok=True)
        self.redis_server = RedisServer(self.work / "redis", appendonly=False)
        self.run_id = uuid.uuid4().hex[:6]
        self.stack: Stack | None = None
        self.traffic: subprocess.Popen[bytes] | None = None
        self.samples: list[Sample] = []
        self.stop = threading.Event()

    def start(self) -> None:
        from flink_jobs import build_java

        self.redis_server.start()
        var = self.work / "var"
        env = environment(var, self.redis_server.url)
        env.update(windows(self.args.window_s, self.args.rate))
        env.update(
            FLASHREC_ADAPTIVE_LOOP="off",
            # a bounded heap: the JVM's RSS then says whether state is bounded, not how
            # far the collector lets the heap grow before it bothers
            JVM_ARGS="-Xmx1g",
        )
        os.environ.update(env)
        (var / "dagster").mkdir(parents=True, exist_ok=True)
        self.settings = Settings.from_env()
        self.stack = Stack(self.settings, extra=("attribution",), log=say)
        jar = build_java.build(PROJECT_ROOT / "var" / "flink" / build_java.JAR_NAME, log=say)
        self.stack.use_jar(jar)
        logs = self.work / "logs"
        say(f"model and Feast registry (work {self.work})")
        feast = threading.Thread(
            target=run_helper,
            args=(["-m", "bench.slo_stack", "apply-feast"], logs / "feast.log", 600),
            daemon=True,
        )
        feast.start()
        run_helper(["-m", "bench.slo_model", "--work", str(var)], logs / "model.log", 900)
        feast.join()
        t0 = time.monotonic()
        self.stack.start({})
        say(f"stack up in {time.monotonic() - t0:.0f}s")

    def sample(self, t0: float) -> Sample:
        assert self.stack is not None
        r = redis.Redis.from_url(self.settings.redis_url, decode_responses=True)
        try:
            events = int(r.xinfo_stream(self.settings.events_stream)["entries-added"])
            used = int(r.info("memory")["used_memory"])
            lags = {
                g["name"]: int(g.get("lag") or 0)
                for g in r.xinfo_groups(self.settings.events_stream)
            }
            rescore = {
                g["name"]: int(g.get("lag") or 0)
                for g in r.xinfo_groups(self.settings.rescore_stream)
            }
        except redis.RedisError:
            events, used, lags, rescore = 0, 0, {}, {}
        finally:
            r.close()
        rss = {}
        for name in COMPONENTS:
            pid = self.stack.pid(name)
            if pid:
                rss[name] = _tree_rss_mb(pid)
        return Sample(
            t=round(time.monotonic() - t0, 1),
            events=events,
            rss_mb=rss,
            redis_mb=used / 2**20,
            checkpoint_mb=_checkpoint_mb(self.settings),
            flink_lag=lags.get("flink-features", 0),
            scorer_lag=rescore.get("scorer", 0),
        )

    def drive(self) -> dict[str, Any]:
        a = self.args
        say(f"traffic: {a.events:,} events at {a.rate:g}/s, a new cohort every {a.cohort_s:g}s")
        self.traffic = subprocess.Popen(
            [sys.executable, "-m", "bench.soak_traffic", "--events", str(a.events),
             "--rate", str(a.rate), "--cohort-s", str(a.cohort_s), "--users", str(a.users),
             "--run-id", self.run_id],
            cwd=PROJECT_ROOT, env=dict(os.environ), stdout=subprocess.PIPE,
            stderr=(self.work / "logs" / "traffic.log").open("wb"),
        )  # fmt: skip
        t0 = time.monotonic()
        last_log = 0.0
        while self.traffic.poll() is None:
            s = self.sample(t0)
            self.samples.append(s)
            if time.monotonic() - last_log > 60:
                last_log = time.monotonic()
                say(f"  {s.events:>9,} events  rss {s.total_rss_mb:7.0f} MB  redis "
                    f"{s.redis_mb:6.0f} MB  checkpoint {s.checkpoint_mb:6.1f} MB  lag flink "
                    f"{s.flink_lag} scorer {s.scorer_lag}")  # fmt: skip
            self.stop.wait(a.sample_s)
        out, _ = self.traffic.communicate()
        lines = [x for x in out.decode(errors="replace").splitlines() if x.startswith("{")]
        report = json.loads(lines[-1]) if lines else {"error": f"exit {self.traffic.returncode}"}
        self.traffic = None
        say(f"traffic done: {report}")
        return report

    def drain(self, accepted: int) -> int:
        """Wait for the lags to reach 0 and the lake to hold the run's events; returns how
        many of the run's events the lake holds."""
        from flashrec.lake_layout import LIVE_SOURCE, days_with_files, finished_files

        t0 = time.monotonic()
        deadline = t0 + self.args.drain_s
        found = -1
        while time.monotonic() < deadline:
            s = self.sample(t0)
            landing = self.settings.landing_dir
            ids = set()
            for day in days_with_files(landing, LIVE_SOURCE):
                for f in finished_files(landing, LIVE_SOURCE, day):
                    for line in f.read_text().splitlines():
                        if f'"soak-{self.run_id}-' in line:
                            ids.add(json.loads(line)["event_id"])
            found = len(ids)
            if s.flink_lag == 0 and s.scorer_lag == 0 and found >= accepted:
                break
            time.sleep(5)
        say(f"drained in {time.monotonic() - t0:.0f}s: the lake holds {found:,} of {accepted:,}")
        return found

    def close(self) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second TERM must not cut this short
        self.stop.set()
        if self.traffic is not None and self.traffic.poll() is None:
            self.traffic.terminate()
            self.traffic.wait(10)
        if self.stack is not None:
            self.stack.stop()
        self.redis_server.stop()


def _tree_rss_mb(pid: int) -> float:
    try:
        proc = psutil.Process(pid)
        procs = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return 0.0
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            continue
    return total / 2**20


def _checkpoint_mb(settings: Settings) -> float:
    from flink_jobs.job_metrics import _folder_bytes
    from flink_jobs.job_process import latest_checkpoint

    root = settings.flink_checkpoint_dir or settings.var_dir / "flink" / "checkpoints"
    for _ in range(3):  # a newer checkpoint may replace the one being walked: look again
        try:
            latest = latest_checkpoint(root)
            return _folder_bytes(latest.parent, keep=latest.name) / 2**20 if latest else 0.0
        except OSError:
            time.sleep(0.2)
    return float("nan")  # no reading: left out of the fit, not counted as 0 MB


def report(args: argparse.Namespace, run: Run, traffic: dict[str, Any], found: int) -> str:
    from flashrec.features.windows import LONGEST_WINDOW_S

    accepted = int(traffic.get("accepted", 0))
    rate = float(traffic.get("achieved_eps") or args.rate)
    warmup = max(int(args.warmup * accepted), int((LONGEST_WINDOW_S + 4 * args.window_s) * rate))
    short = warmup >= 0.9 * accepted
    if short:
        warmup = int(0.5 * accepted)  # a short run: fit the second half
    fitted = slopes(run.samples, warmup)
    lost = max(0, accepted - found)
    lines = [
        "# Soak",
        "",
        f"{os.cpu_count()} cores; {accepted:,} events accepted at "
        f"{traffic.get('achieved_eps', 0)}/s over {traffic.get('elapsed_s', 0)} s, "
        f"{traffic.get('cohorts', 0)} cohorts of {args.users} shoppers; windows {args.window_s} s; "
        f"fitted after {warmup:,} events ({len([s for s in run.samples if s.events >= warmup])} "
        "samples)."
        + (
            " A short run: fitted before the hour-long feature windows were full, so the "
            "Flink job's state (checkpoint, JVM) still grows towards its bound in it."
            if short
            else ""
        ),
        "",
        "| series | after warm-up (MB, min-max) | slope (MB per million events) |",
        "|---|---|---|",
    ]
    for key in ("rss", "redis", "checkpoint"):
        lo, hi = level(run.samples, warmup, key)
        lines.append(f"| {key} | {lo:.1f}-{hi:.1f} | {fitted[key]:+.2f} |")
    for key, value in sorted(fitted.items()):
        if key.startswith("rss:"):
            lines.append(f"| rss {key[4:]} | | {value:+.2f} |")
    lines += [
        "",
        f"Lake: {found:,} of the run's {accepted:,} accepted events (lost {lost}).",
        "",
        last_line(accepted, fitted, lost),
    ]
    return "\n".join(lines)


def last_line(events: int, fitted: dict[str, float], lost: int) -> str:
    return (
        f"soak cores={os.cpu_count()} events={events} "
        f"rss_slope_mb_per_m={fitted['rss']:.2f} redis_slope_mb_per_m={fitted['redis']:.2f} "
        f"checkpoint_slope_mb_per_m={fitted['checkpoint']:.2f} lost={lost}"
    )


def _interrupt(*_: Any) -> None:
    raise KeyboardInterrupt  # SIGTERM ends the run like Ctrl-C: through ``Run.close``


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    run = Run(args)
    try:
        run.start()
        traffic = run.drive()
        found = run.drain(int(traffic.get("accepted", 0)))
    except KeyboardInterrupt:
        say("interrupted: stopping everything")
        return 130
    finally:
        run.close()
    text = report(args, run, traffic, found)
    run.out.mkdir(parents=True, exist_ok=True)
    (run.out / "report.md").write_text(text + "\n")
    (run.out / "samples.json").write_text(json.dumps([asdict(s) for s in run.samples]))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
