"""Open-loop read measurements: offered rates up to saturation, and p99 at a fixed rate.

Used by ``bench.slo_read`` (the read API alone) and ``bench.slo`` (the whole stack): the
bare-ASGI ceiling and the read API are measured the same way, in the same run, with the
same request mix. Each stage runs the constant-rate generator (``bench.open_loop``) in a
process of its own (its CPU is not the benchmark's), and hands back every latency sample.

Saturation: offered rates rise along ``RATES`` until a stage falls behind (completes less
than 95% of what it offered, or its p99 passes ``OVERLOAD_P99_MS``: the queue grows);
the saturation throughput is the highest rate achieved by a stage that kept up (a stage
that fell behind still completes most of what it was offered, late: its throughput would
flatter the server). The headline p99
is then taken at an offered rate of half the bare ceiling's saturation throughput, for
both servers.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

RATES = (250, 500, 1000, 1500, 2000, 2500, 3000, 3500, 4000, 5000, 6000)
OVERLOAD_P99_MS = 250.0
DEVICES = ("desktop", "mobile", "tablet", "app")


def read_paths(shoppers: Sequence[str], n: int = 4000, seed: int = 7) -> list[str]:
    """Request paths: ``shoppers`` are ``u:<id>`` / ``s:<id>`` refs with a cached list (as
    the storefront asks for them), and one in five a fresh anonymous session."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        device = DEVICES[i % len(DEVICES)]
        if rng.random() < 0.2 or not shoppers:
            out.append(f"/recommendations?session_id=fresh-{i}&k=10&device={device}")
            continue
        kind, _, ident = rng.choice(shoppers).partition(":")
        param = "user_id" if kind == "u" else "session_id"
        out.append(f"/recommendations?{param}={ident}&k=10&device={device}")
    return out


@dataclass(frozen=True)
class Stage:
    offered_rps: float
    achieved_rps: float
    p50_ms: float
    p99_ms: float
    p999_ms: float
    completed: int
    errors: int
    unfinished: int
    latencies_ms: np.ndarray

    @property
    def behind(self) -> bool:
        """The server did not keep up with this rate (saturated)."""
        return self.achieved_rps < 0.95 * self.offered_rps or self.p99_ms > OVERLOAD_P99_MS


def stage(url: str, paths: list[str], rate: float, duration_s: float) -> Stage:
    """One constant-rate stage in a separate generator process."""
    with tempfile.TemporaryDirectory(prefix="open-loop-") as tmp:
        paths_file = Path(tmp) / "paths.txt"
        paths_file.write_text("\n".join(paths))
        out = Path(tmp) / "samples.npy"
        done = subprocess.run(
            [
                sys.executable, "-m", "bench.open_loop", "--url", url, "--paths", str(paths_file),
                "--rate", str(rate), "--duration", str(duration_s), "--out", str(out),
            ],
            capture_output=True, text=True, timeout=duration_s + 120, check=True,
        )  # fmt: skip
        summary = json.loads(done.stdout.strip().splitlines()[-1])
        samples = np.load(out)[:, 1] if out.stat().st_size else np.empty(0)
    return Stage(
        offered_rps=rate,
        achieved_rps=float(summary["achieved_rps"]),
        p50_ms=float(summary["p50_ms"]),
        p99_ms=float(summary["p99_ms"]),
        p999_ms=float(summary["p999_ms"]),
        completed=int(summary["completed"]),
        errors=int(summary["errors"]),
        unfinished=int(summary["unfinished"]),
        latencies_ms=samples,
    )


def saturate(
    url: str, paths: list[str], duration_s: float, rates: Sequence[float] = RATES, log=print
) -> tuple[list[Stage], float]:
    """Stages at rising rates until one falls behind; (stages, saturation throughput)."""
    stages = []
    for rate in rates:
        s = stage(url, paths, rate, duration_s)
        stages.append(s)
        log(
            f"    offered {rate:6.0f}/s achieved {s.achieved_rps:7.0f}/s p50 {s.p50_ms:7.2f} "
            f"p99 {s.p99_ms:8.2f} ms errors {s.errors}{'  (behind)' if s.behind else ''}"
        )
        if s.behind:
            break
    kept_up = [s.achieved_rps for s in stages if not s.behind]
    return stages, max(kept_up) if kept_up else stages[0].achieved_rps
