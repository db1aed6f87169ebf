"""Read-path load test: the real ``bentoml serve`` read API against the bare-ASGI ceiling.

WHY side by side in one run: on a shared 2-core machine absolute figures drift with other
jobs; the ratio of the two, taken minutes apart with the same data, is what says how much
BentoML costs. Steps: seed Redis (database 14 by default, never 0) with lists for N
shoppers, start both servers on free loopback ports, then measure both the same way,
*open loop* (``bench.read_sweep``: requests leave at a fixed offered rate and latency is
counted from each request's due time, so a slow answer cannot hide the requests queued
behind it): offered rates rising to saturation for each, then both at an offered rate of
half the bare ceiling's saturation throughput, where the headline p99 is taken (raw
samples, every request). Also printed: server-side p50/p99 from /metrics (the read API's
admin port), CPU per request, the core count and the load average; the last line is

    slo_read cores=<c> read_p99_ms=<x> read_offered_rps=<o> read_sat_rps=<r>
        baseline_sat_rps=<a> errors=<e>

    python -m bench.slo_read [--duration 15] [--stage-duration 6] [--shoppers 5000]
        [--with-default] [--rounds 1]
"""

from __future__ import annotations

import argparse
import http.client
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import psutil
import redis

from bench import read_sweep, stats
from bench.stats import histogram_quantile
from flashrec.serving import cache, keys

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
DEVICES = ("desktop", "mobile", "tablet", "app")
REFERRERS = ("direct", "search", "social", "email")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def seed(url: str, shoppers: int, items: int = 2000, list_len: int = 50, seed_: int = 7) -> None:
    """Lists for ``shoppers`` known users (most personalized, some content), segment lists,
    popularity, a few hundred sold-out items and 98/2 champion/challenger shares."""
    rng = random.Random(seed_)
    r = redis.Redis.from_url(url)
    r.flushdb()
    now = cache.now_ms()
    catalog = [f"item{i}" for i in range(items)]
    cache.write_segment_list(r, keys.POPULAR, catalog[:200])
    cache.write_segment_list(r, keys.TRENDING, rng.sample(catalog, 100))
    for d in DEVICES:
        cache.write_segment_list(r, keys.segment("device", d), rng.sample(catalog, 100))
    for ref in REFERRERS:
        cache.write_segment_list(r, keys.segment("referrer", ref), rng.sample(catalog, 100))
    for b in keys.TOD_BUCKETS:
        cache.write_segment_list(r, keys.segment("tod", b), rng.sample(catalog, 100))
    pipe = r.pipeline(transaction=False)
    for u in range(shoppers):
        for variant in ("champion", "challenger"):
            n = rng.choice((3, 12, 40))
            lst = cache.CachedList(
                items=tuple(rng.sample(catalog, list_len)),
                scores=tuple(sorted((rng.random() for _ in range(list_len)), reverse=True)),
                model_version=f"{variant}-v1",
                variant=variant,
                computed_at=now,
                tier="personalized" if n >= 10 else "content",
                n_interactions=n,
            )
            pipe.set(keys.rec_list(variant, f"u:{u}"), cache.encode_list(lst), ex=3600)
        if u % 500 == 499:
            pipe.execute()
    pipe.execute()
    cache.mark_sold_out(r, rng.sample(catalog, 300))
    cache.set_ab_shares(r, {"champion": 0.98, "challenger": 0.02}, shadow=[])
    r.close()


def metrics_text(port: int) -> str:
    """The server's /metrics exposition ("" when it has none, e.g. the bare baseline)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            return resp.read().decode()
    except (OSError, http.client.HTTPException):
        return ""


def parse_histogram(text: str, name: str = "flashrec_read_latency_seconds") -> dict[float, float]:
    """Cumulative bucket counts {le: count} of the read latency histogram in an exposition."""
    return stats.histogram_buckets(text, name)


def histogram(port: int, name: str = "flashrec_read_latency_seconds") -> dict[float, float]:
    return parse_histogram(metrics_text(port), name)


def cpu_seconds(pid: int) -> float:
    """User+system CPU of a server and its children (bentoml: arbiter + workers).

    WHY: on a shared machine wall-clock rps swings with other people's jobs; CPU spent per
    request does not, so it is the steadier measure of framework overhead.
    """
    try:
        root = psutil.Process(pid)
        total = 0.0
        for proc in [root, *root.children(recursive=True)]:
            t = proc.cpu_times()
            total += t.user + t.system
        return total
    except psutil.Error:
        return float("nan")


def wait_ready(proc: subprocess.Popen[bytes], port: int, path: str, timeout: float = 60.0) -> bool:
    """True once our server answers 200 on ``path``; False if it died (e.g. the free port
    was taken by someone else between choosing and binding it)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as resp:
                if resp.status == 200 and resp.read(1) == b"{":
                    return True
        except (OSError, http.client.HTTPException):
            pass
        time.sleep(0.3)
    return False


def start(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    # Own process group: bentoml's arbiter and workers are stopped together.
    return subprocess.Popen(
        cmd,
        cwd=ROOT,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def shopper_refs(shoppers: int) -> list[str]:
    """The seeded shoppers, as the read API names them."""
    return [f"u:{u}" for u in range(shoppers)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    ap.add_argument("--duration", type=int, default=15, help="seconds of the headline stage")
    ap.add_argument("--stage-duration", type=float, default=6.0, help="seconds per sweep stage")
    ap.add_argument("--shoppers", type=int, default=5000)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--workers", type=int, default=1, help="worker processes, both servers")
    ap.add_argument("--with-default", action="store_true", help="also BentoML defaults")
    ap.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME=OPTIONS",
        help="also ReadAPIDefault with BENTOML_CONFIG_OPTIONS, e.g. 'nometrics=services."
        "flashrec_read_default.metrics.enabled=false' (one knob at a time, for profiling)",
    )
    args = ap.parse_args()
    if args.redis_url.rstrip("/").endswith("/0"):
        raise SystemExit("refusing to seed Redis database 0")

    tmp = Path(tempfile.mkdtemp(prefix="slo_read-"))
    env = {
        **os.environ,
        "REDIS_URL": args.redis_url,
        "BENTOML_HOME": str(tmp / "bentoml"),
        "BENTOML_DO_NOT_TRACK": "true",
        "PYTHONWARNINGS": "ignore",
    }
    load0 = os.getloadavg()[0]
    seed(args.redis_url, args.shoppers)
    paths = read_sweep.read_paths(shopper_refs(args.shoppers))
    targets: dict[str, tuple[str, str] | None] = {
        "bare_asgi": None,
        "bentoml": ("bentos.read_api:ReadAPI", ""),
    }
    if args.with_default:
        targets["bentoml_default"] = ("bentos.read_api:ReadAPIDefault", "")
    for spec in args.variant:
        name, _, options = spec.partition("=")
        targets[name] = ("bentos.read_api:ReadAPIDefault", options)
    procs: dict[str, tuple[subprocess.Popen[bytes], int, int]] = {}
    sweeps: dict[str, tuple[list[read_sweep.Stage], float]] = {}
    headline: dict[str, list[tuple[read_sweep.Stage, float, float, float]]] = {
        n: [] for n in targets
    }
    try:
        for name, svc in targets.items():
            procs[name] = start_server(name, svc, env, tmp, args.workers)
        for _proc, port, _metrics in procs.values():
            read_sweep.stage(f"http://127.0.0.1:{port}", paths, 300, 2)  # warm-up
        for name, (_, port, _) in procs.items():
            print(f"  {name}: open-loop sweep to saturation", flush=True)
            sweeps[name] = read_sweep.saturate(
                f"http://127.0.0.1:{port}", paths, args.stage_duration
            )
        offered = round(sweeps["bare_asgi"][1] / 2)
        for _ in range(args.rounds):
            for name, (proc, port, metrics_port) in procs.items():
                before, cpu0 = histogram(metrics_port), cpu_seconds(proc.pid)
                st = read_sweep.stage(f"http://127.0.0.1:{port}", paths, offered, args.duration)
                cpu_us = (cpu_seconds(proc.pid) - cpu0) / max(st.completed, 1) * 1e6
                after = histogram(metrics_port)
                headline[name].append(
                    (
                        st,
                        histogram_quantile(before, after, 0.5),
                        histogram_quantile(before, after, 0.99),
                        cpu_us,
                    )
                )
    finally:
        for proc, _, _ in procs.values():
            stop(proc)
        shutil.rmtree(tmp, ignore_errors=True)

    cores = os.cpu_count() or 0
    load = os.getloadavg()
    print(
        f"cores={cores} load_avg={load[0]:.2f},{load[1]:.2f},{load[2]:.2f} "
        f"offered={offered}/s (half the bare saturation) duration={args.duration}s "
        f"shoppers={args.shoppers} workers={args.workers} load_at_start={load0:.2f}"
    )
    print(f"{'server':<16}{'saturation rps':>15}")
    for name, (_, sat) in sweeps.items():
        print(f"{name:<16}{sat:>15.0f}")
    print(
        f"{'server':<16}{'offered':>8}{'achieved':>9}{'p50 ms':>9}{'p99 ms':>9}{'p99.9':>9}"
        f"{'srv p50':>9}{'srv p99':>9}{'cpu us/req':>11}{'errors':>8}"
    )
    best: dict[str, tuple[read_sweep.Stage, float, float, float]] = {}
    for name, runs in headline.items():
        for st, sp50, sp99, cpu in runs:
            print(
                f"{name:<16}{st.offered_rps:>8.0f}{st.achieved_rps:>9.0f}{st.p50_ms:>9.2f}"
                f"{st.p99_ms:>9.2f}{st.p999_ms:>9.2f}{sp50:>9.2f}{sp99:>9.2f}{cpu:>11.0f}"
                f"{st.errors:>8}"
            )
        best[name] = sorted(runs, key=lambda r: r[0].p99_ms)[len(runs) // 2]  # median p99
    read, base = best["bentoml"], best["bare_asgi"]
    read_sat, base_sat = sweeps["bentoml"][1], sweeps["bare_asgi"][1]
    print(
        f"bentoml/bare: saturation ratio {read_sat / base_sat:.2f}, cpu-per-request ratio "
        f"{base[3] / read[3]:.2f} (capacity share on equal CPU)"
    )
    errors = sum(st.errors for st, *_ in headline["bentoml"]) + sum(
        s.errors for s in sweeps["bentoml"][0]
    )
    print(
        f"slo_read cores={cores} read_p99_ms={read[0].p99_ms:.2f} read_offered_rps={offered} "
        f"read_sat_rps={read_sat:.0f} baseline_sat_rps={base_sat:.0f} errors={errors}"
    )
    return 0


def start_server(
    name: str, svc: tuple[str, str] | None, env: dict[str, str], tmp: Path, workers: int
) -> tuple[subprocess.Popen[bytes], int, int]:
    """The bare app (``svc`` None) or a BentoML read service on free ports; ready or raise."""
    for _attempt in range(3):
        port = free_port()
        # /metrics is on the admin port (the bare app has none: "" -> nan).
        metrics_port = port if svc is None else free_port()
        # Own BENTOML_HOME each: a starting server empties its metrics directory.
        proc_env = {
            **env,
            "BENTOML_HOME": str(tmp / f"bentoml-{name}"),
            "FLASHREC_READ_API_ADMIN_PORT": str(metrics_port),
        }
        if svc is None:
            cmd = [PY, "-m", "bench.bare_asgi", "--port", str(port), "--workers", str(workers)]
        else:
            cmd = [PY, "-m", "bentoml", "serve", svc[0], "--host", "127.0.0.1", "--port", str(port)]
            service = svc[0].rsplit(":", 1)[1]
            in_config = {"ReadAPI": "flashrec_read"}.get(service, "flashrec_read_default")
            options = [f"services.{in_config}.workers={workers}"]
            if svc[1]:
                options.append(svc[1])
            proc_env["BENTOML_CONFIG_OPTIONS"] = " ".join(options)
        proc = start(cmd, proc_env, tmp / f"{name}.log")
        if wait_ready(proc, port, "/recommendations?user_id=1"):
            return proc, port, metrics_port
        stop(proc)
    raise RuntimeError(f"{name} did not start: {(tmp / f'{name}.log').read_text()}")


if __name__ == "__main__":
    raise SystemExit(main())
