"""Read-path load test: the real ``bentoml serve`` read API against the bare-ASGI ceiling.

WHY side by side in one run: on a shared 2-core machine absolute figures drift with other
jobs; the ratio of the two, taken minutes apart with the same data, is what says how much
BentoML costs. Steps: seed Redis (database 14 by default, never 0) with lists for N
shoppers, start both servers on free loopback ports, run wrk (bounded) against each with
a mix of known and anonymous shoppers, print client-side p50/p99 and rps, server-side
p50/p99 from /metrics, the core count and the load average, then one summary line:

    slo_read cores=<c> read_p99_ms=<x> read_rps=<r> baseline_rps=<a> errors=<e>

    python -m bench.slo_read [--duration 15] [--connections 16] [--shoppers 5000]
        [--with-default] [--rounds 1]
"""

from __future__ import annotations

import argparse
import http.client
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import psutil
import redis

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


WRK_LUA = """
local n = 0
local shoppers = {shoppers}
local devices = {{"desktop", "mobile", "tablet", "app"}}
request = function()
  n = n + 1
  local path
  if n % 5 == 0 then
    path = "/recommendations?session_id=anon" .. n .. "&device=" .. devices[n % 4 + 1]
      .. "&referrer=search&k=20"
  else
    path = "/recommendations?user_id=" .. ((n * 7919) % shoppers) .. "&k=20"
  end
  return wrk.format("GET", path)
end
"""


@dataclass
class WrkResult:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    requests: int


def _ms(text: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s)", text)
    if not m:
        return float("nan")
    value, unit = float(m.group(1)), m.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


def run_wrk(port: int, script: Path, duration: int, connections: int, nice: int = 10) -> WrkResult:
    out = subprocess.run(
        [
            "nice",
            "-n",
            str(nice),
            "wrk",
            "-t2",
            f"-c{connections}",
            f"-d{duration}s",
            "--latency",
            "-s",
            str(script),
            f"http://127.0.0.1:{port}/",
        ],
        capture_output=True,
        text=True,
        timeout=duration + 30,
        check=True,
    ).stdout
    pct = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", out, re.M))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    reqs = int(re.search(r"(\d+) requests in", out).group(1))
    errors = sum(int(x) for x in re.findall(r"Non-2xx or 3xx responses: (\d+)", out))
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if sock:
        errors += sum(int(x) for x in sock.groups())
    return WrkResult(rps, _ms(pct.get("50", "nan")), _ms(pct.get("99", "nan")), errors, reqs)


def metrics_text(port: int) -> str:
    """The server's /metrics exposition ("" when it has none, e.g. the bare baseline)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            return resp.read().decode()
    except (OSError, http.client.HTTPException):
        return ""


def parse_histogram(text: str, name: str = "flashrec_read_latency_seconds") -> dict[float, float]:
    """Cumulative bucket counts {le: count} of an unlabelled histogram in an exposition."""
    out: dict[float, float] = {}
    for le, v in re.findall(rf'^{name}_bucket{{le="([^"]+)"}} ([\d.e+]+)', text, re.M):
        out[float(le)] = out.get(float(le), 0.0) + float(v)
    return out


def histogram(port: int, name: str = "flashrec_read_latency_seconds") -> dict[float, float]:
    return parse_histogram(metrics_text(port), name)


def quantile(before: dict[float, float], after: dict[float, float], q: float) -> float:
    """Quantile (ms) of the observations between two scrapes, interpolated in buckets."""
    les = sorted(after)
    counts = [after[le] - before.get(le, 0.0) for le in les]
    if not counts or counts[-1] <= 0:
        return float("nan")
    target, prev_le, prev_c = q * counts[-1], 0.0, 0.0
    for le, c in zip(les, counts, strict=True):
        if c >= target:
            if le == float("inf"):
                return prev_le * 1000
            return (prev_le + (le - prev_le) * (target - prev_c) / max(c - prev_c, 1e-9)) * 1000
        prev_le, prev_c = le, c
    return float("nan")


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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    ap.add_argument("--duration", type=int, default=15)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--shoppers", type=int, default=5000)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--workers", type=int, default=1, help="worker processes, both servers")
    ap.add_argument(
        "--nice", type=int, default=10, help="niceness of wrk (10 on a machine others share)"
    )
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
    if not shutil.which("wrk"):
        raise SystemExit("wrk not found: apt-get install wrk")

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
    script = tmp / "mix.lua"
    script.write_text(WRK_LUA.format(shoppers=args.shoppers))
    targets: dict[str, tuple[str, str] | None] = {
        "bare_asgi": None,
        "bentoml": ("bentos.read_api:ReadAPI", ""),
    }
    if args.with_default:
        targets["bentoml_default"] = ("bentos.read_api:ReadAPIDefault", "")
    for spec in args.variant:
        name, _, options = spec.partition("=")
        targets[name] = ("bentos.read_api:ReadAPIDefault", options)
    procs: dict[str, tuple[subprocess.Popen[bytes], int]] = {}
    results: dict[str, list[tuple[WrkResult, float, float, float]]] = {n: [] for n in targets}
    try:
        for name, svc in targets.items():
            for _attempt in range(3):
                port = free_port()
                # Own BENTOML_HOME each: a starting server empties its metrics directory.
                proc_env = {**env, "BENTOML_HOME": str(tmp / f"bentoml-{name}")}
                if svc is None:
                    cmd = [
                        PY,
                        "-m",
                        "bench.bare_asgi",
                        "--port",
                        str(port),
                        "--workers",
                        str(args.workers),
                    ]
                else:
                    cmd = [
                        PY,
                        "-m",
                        "bentoml",
                        "serve",
                        svc[0],
                        "--host",
                        "127.0.0.1",
                        "--port",
                        str(port),
                    ]
                    service = svc[0].rsplit(":", 1)[1]
                    in_config = {"ReadAPI": "flashrec_read"}.get(service, "flashrec_read_default")
                    options = [f"services.{in_config}.workers={args.workers}"]
                    if svc[1]:
                        options.append(svc[1])
                    proc_env["BENTOML_CONFIG_OPTIONS"] = " ".join(options)
                proc = start(cmd, proc_env, tmp / f"{name}.log")
                if wait_ready(proc, port, "/recommendations?user_id=1"):
                    procs[name] = (proc, port)
                    break
                stop(proc)
            else:
                raise RuntimeError(f"{name} did not start: {(tmp / f'{name}.log').read_text()}")
        for _, port in procs.values():
            run_wrk(port, script, 2, args.connections)  # warm-up
        for _ in range(args.rounds):
            for name, (proc, port) in procs.items():
                before, cpu0 = histogram(port), cpu_seconds(proc.pid)
                res = run_wrk(port, script, args.duration, args.connections, args.nice)
                cpu_us = (cpu_seconds(proc.pid) - cpu0) / max(res.requests, 1) * 1e6
                after = histogram(port)
                results[name].append(
                    (res, quantile(before, after, 0.5), quantile(before, after, 0.99), cpu_us)
                )
    finally:
        for proc, _ in procs.values():
            stop(proc)
        shutil.rmtree(tmp, ignore_errors=True)

    cores = os.cpu_count() or 0
    load = os.getloadavg()
    print(
        f"cores={cores} load_avg={load[0]:.2f},{load[1]:.2f},{load[2]:.2f} "
        f"connections={args.connections} duration={args.duration}s shoppers={args.shoppers} "
        f"workers={args.workers} wrk_nice={args.nice} load_at_start={load0:.2f}"
    )
    print(
        f"{'server':<16}{'rps':>9}{'p50 ms':>9}{'p99 ms':>9}{'srv p50':>9}{'srv p99':>9}"
        f"{'cpu us/req':>11}{'errors':>8}"
    )
    best: dict[str, tuple[WrkResult, float, float, float]] = {}
    for name, runs in results.items():
        for res, sp50, sp99, cpu in runs:
            print(
                f"{name:<16}{res.rps:>9.0f}{res.p50_ms:>9.2f}{res.p99_ms:>9.2f}"
                f"{sp50:>9.2f}{sp99:>9.2f}{cpu:>11.0f}{res.errors:>8}"
            )
        best[name] = sorted(runs, key=lambda r: r[0].rps)[len(runs) // 2]  # median by rps
    read, base = best["bentoml"], best["bare_asgi"]
    print(
        f"bentoml/bare: rps ratio {read[0].rps / base[0].rps:.2f}, "
        f"cpu-per-request ratio {base[3] / read[3]:.2f} (capacity share on equal CPU)"
    )
    read = read[0]
    base = base[0]
    # errors of the read API under test (the baselines' own failures are in the table)
    errors = sum(r.errors for r, *_ in results["bentoml"])
    print(
        f"slo_read cores={cores} read_p99_ms={read.p99_ms:.2f} read_rps={read.rps:.0f} "
        f"baseline_rps={base.rps:.0f} errors={errors}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
