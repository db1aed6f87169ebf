"""``make bench-scaling``: predictive vs CPU-reactive autoscaling on the flash-sale trace.

A SIMULATION, not a load test: nothing is deployed. The simulator's flash sale (the
surge day, from an hour before the sale to an hour and a half after it) gives the shape of
the event rate and of the read rate (one read per product view: every view shows a list);
it is scaled to ``--peak-events`` and drawn per second (Poisson). Each scaled service
(gateway, read API, scorer) is a pool of pods of the per-pod capacity in
``flashrec.forecast.capacity`` (measured here, see that module); a pod starts serving
``--startup-s`` after it is asked for. Both policies use the HPA rules rendered in
``orchestration/k8s/autoscaling.py``: a sync every 15 s, scale-up by at most
max(100%, 4 pods) per sync, scale-down held for the 300 s stabilization window.

- reactive: CPU only. Utilization (served / capacity of the ready pods, so at most 100%)
  averaged over the metrics window and seen after it, target 70%.
- predictive: the larger of that and ``forecast / target_per_pod``, the forecast being the
  exporter's (Holt, ``flashrec.forecast.holt``) over the observed per-second rate, seen
  ``--scrape-lag-s`` late, looking ``--horizon-s`` ahead.

Per second: requests over capacity (arrivals beyond what the ready pods serve) and a
latency estimate: each pod an M/M/1 queue at its capacity (p99 of the sojourn time,
ln(100) / (mu - lambda)) plus the wait of any backlog; p50/p99 are taken over requests.
Pod-minutes count starting pods too. The last line:

    scaling reactive_over_capacity_pct=<..> predictive_over_capacity_pct=<..>
    reactive_pod_min=<..> predictive_pod_min=<..>
"""

from __future__ import annotations

import argparse
import math
import os
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from flashrec.events import StorefrontEvent
from flashrec.forecast.capacity import CAPACITY, PodCapacity
from flashrec.forecast.holt import HoltForecaster
from flashrec.settings import Settings
from flashrec.simulator import SimulationConfig
from flashrec.simulator.flash_sale import simulate
from orchestration.k8s.autoscaling import CPU_TARGET_UTILIZATION, SCALE_DOWN_STABILIZATION_S
from orchestration.k8s.workloads import processes

SYNC_S = 15
METRICS_WINDOW_S = 30
TOLERANCE = 0.1  # the HPA skips changes within 10% of the target
P99_FACTOR = math.log(100)


@dataclass(frozen=True)
class Trace:
    """Per-second arrivals of events and reads."""

    events: np.ndarray
    reads: np.ndarray
    sale_start_s: int  # index of the sale's first second


def flash_sale_trace(args: argparse.Namespace, settings: Settings) -> Trace:
    """The simulator's surge day as per-second rates scaled to ``--peak-events``."""
    config = SimulationConfig.from_settings(
        settings, days=1, sessions_per_day=args.sessions, seed=args.seed
    )
    result = simulate(config)
    start = result.sale.start.timestamp()
    lo, hi = start - args.before_s, result.sale.end.timestamp() + args.after_s
    bins = np.arange(lo, hi + 1, 1.0)
    stamps = [
        (e.event_time.timestamp(), e.event_type == "view")
        for e in result.events
        if isinstance(e, StorefrontEvent)
    ]
    times = np.array([t for t, _ in stamps])
    views = np.array([t for t, is_view in stamps if is_view])
    events, _ = np.histogram(times, bins=bins)
    reads, _ = np.histogram(views, bins=bins)
    # The simulated sale is small: its shape is kept (a 60 s moving average), its level
    # scaled, and per-second counts drawn around it as a real crowd's would be.
    kernel = np.ones(60) / 60
    shape_events = np.convolve(events, kernel, mode="same")
    shape_reads = np.convolve(reads, kernel, mode="same")
    scale = args.peak_events / shape_events.max()
    rng = np.random.default_rng(args.seed)
    return Trace(
        events=rng.poisson(shape_events * scale).astype(float),
        reads=rng.poisson(shape_reads * scale * args.reads_per_view).astype(float),
        sale_start_s=int(args.before_s),
    )


@dataclass
class Pool:
    """The pods of one service: ready ones, starting ones, and what they cost."""

    ready: int
    starting: deque = field(default_factory=deque)  # ready_at seconds, one per pod

    @property
    def total(self) -> int:
        return self.ready + len(self.starting)

    def tick(self, now: int) -> None:
        while self.starting and self.starting[0] <= now:
            self.starting.popleft()
            self.ready += 1

    def scale_to(self, want: int, now: int, startup_s: int) -> None:
        for _ in range(want - self.total):
            self.starting.append(now + startup_s)
        for _ in range(self.total - want):
            if self.starting:
                self.starting.pop()
            else:
                self.ready -= 1


@dataclass
class Outcome:
    over: float = 0.0
    arrived: float = 0.0
    pod_seconds: float = 0.0
    latencies: list[tuple[float, float]] = field(default_factory=list)  # (seconds, weight)

    @property
    def over_pct(self) -> float:
        return 100.0 * self.over / self.arrived if self.arrived else 0.0

    def percentile(self, q: float) -> float:
        values = np.array([v for v, _ in self.latencies])
        weights = np.array([w for _, w in self.latencies])
        order = np.argsort(values)
        cumulative = np.cumsum(weights[order])
        index = np.searchsorted(cumulative, q * cumulative[-1])
        return float(values[order][min(index, len(values) - 1)]) * 1000.0


def simulate_service(
    load: np.ndarray,
    capacity: PodCapacity,
    min_pods: int,
    max_pods: int,
    predictive: bool,
    args: argparse.Namespace,
) -> Outcome:
    """Run one service through the trace under one policy."""
    mu = capacity.per_pod
    target_cpu = CPU_TARGET_UTILIZATION / 100
    pool = Pool(ready=max(min_pods, math.ceil(load[:60].mean() / capacity.target_per_pod)))
    model = HoltForecaster(alpha=args.alpha, beta=args.beta, phi=args.phi)
    forecasts: list[float] = []
    utilization: list[float] = []
    recommendations: deque[tuple[int, int]] = deque()
    backlog = 0.0
    out = Outcome()
    for now, arrived in enumerate(load):
        pool.tick(now)
        cap = pool.ready * mu
        demand = arrived + backlog
        served = min(demand, cap)
        out.over += max(arrived - max(cap - backlog, 0.0), 0.0)
        backlog = demand - served
        out.arrived += arrived
        out.pod_seconds += pool.total
        per_pod = min(served / max(pool.ready, 1), 0.99 * mu)
        wait = backlog / cap if cap else 60.0
        out.latencies.append((P99_FACTOR / (mu - per_pod) + wait, arrived))
        utilization.append(served / cap if cap else 1.0)
        model.update(arrived)
        forecasts.append(model.forecast(args.horizon_s))
        if now % SYNC_S:
            continue
        # The HPA's view: CPU averaged over the metrics window, the forecast as last scraped.
        seen_util = float(np.mean(utilization[-METRICS_WINDOW_S:]))
        want = pool.ready
        if abs(seen_util / target_cpu - 1) > TOLERANCE:
            want = math.ceil(pool.ready * seen_util / target_cpu)
        if predictive:
            seen = forecasts[max(len(forecasts) - 1 - args.scrape_lag_s, 0)]
            want = max(want, math.ceil(seen / capacity.target_per_pod))
        want = min(want, max(2 * pool.total, pool.total + 4))  # scale-up policy
        want = min(max(want, min_pods), max_pods)
        recommendations.append((now, want))
        while recommendations[0][0] < now - SCALE_DOWN_STABILIZATION_S:
            recommendations.popleft()
        if want < pool.total:  # scale down no lower than the window's highest recommendation
            want = min(pool.total, max(r for _, r in recommendations))
        pool.scale_to(want, now, args.startup_s)
    return out


def main(argv: list[str] | None = None) -> int:
    settings = Settings.from_env()
    ap = argparse.ArgumentParser(prog="python -m bench.scaling", description=__doc__.split("\n")[0])
    ap.add_argument("--peak-events", type=float, default=3000.0, help="events/s at the top")
    ap.add_argument("--reads-per-view", type=float, default=4.0, help="lists shown per view")
    ap.add_argument("--startup-s", type=int, default=45, help="pod asked -> pod serving")
    ap.add_argument("--scrape-lag-s", type=int, default=15, help="forecast -> HPA delay")
    ap.add_argument("--horizon-s", type=float, default=settings.forecast_horizon_s)
    defaults = HoltForecaster()  # the exporter's forecaster, as deployed
    ap.add_argument("--alpha", type=float, default=defaults.alpha)
    ap.add_argument("--beta", type=float, default=defaults.beta)
    ap.add_argument("--phi", type=float, default=defaults.phi)
    ap.add_argument("--sessions", type=int, default=3000, help="simulated sessions per day")
    ap.add_argument("--before-s", type=float, default=3600.0)
    ap.add_argument("--after-s", type=float, default=5400.0)
    ap.add_argument("--seed", type=int, default=settings.seed)
    args = ap.parse_args(argv)

    trace = flash_sale_trace(args, settings)
    print(
        "SIMULATION (capacity model, nothing deployed): the simulator's flash sale scaled to "
        f"{args.peak_events:.0f} events/s at its top, {len(trace.events)} s; pod start-up "
        f"{args.startup_s} s, forecast horizon {args.horizon_s:.0f} s, scrape lag "
        f"{args.scrape_lag_s} s; cores here: {os.cpu_count()}"
    )
    print(
        f"trace: events/s p50 {np.percentile(trace.events, 50):.0f} max {trace.events.max():.0f};"
        f" reads/s p50 {np.percentile(trace.reads, 50):.0f} max {trace.reads.max():.0f}"
    )
    print(
        f"{'service':<9} {'policy':<10} {'per pod/s':>9} {'over cap %':>10} "
        f"{'p50 ms':>8} {'p99 ms':>9} {'pod-min':>8}"
    )
    by_name = {p.name: p for p in processes(settings)}
    totals = {False: Outcome(), True: Outcome()}
    for name, capacity in CAPACITY.items():
        load = trace.reads if capacity.driver == "reads" else trace.events
        process = by_name[name]
        for predictive in (False, True):
            result = simulate_service(
                load, capacity, process.replicas, process.max_replicas or 1, predictive, args
            )
            total = totals[predictive]
            total.over += result.over
            total.arrived += result.arrived
            total.pod_seconds += result.pod_seconds
            print(
                f"{name:<9} {'predictive' if predictive else 'reactive':<10} "
                f"{capacity.per_pod:>9.0f} {result.over_pct:>10.2f} {result.percentile(0.5):>8.1f}"
                f" {result.percentile(0.99):>9.1f} {result.pod_seconds / 60:>8.0f}"
            )
    reactive, predictive = totals[False], totals[True]
    extra = 100 * (predictive.pod_seconds / reactive.pod_seconds - 1)
    print(
        f"all       over capacity: reactive {reactive.over_pct:.2f}%, predictive "
        f"{predictive.over_pct:.2f}%; pod-minutes {reactive.pod_seconds / 60:.0f} -> "
        f"{predictive.pod_seconds / 60:.0f} ({extra:+.1f}%)"
    )
    print(
        f"scaling reactive_over_capacity_pct={reactive.over_pct:.2f} "
        f"predictive_over_capacity_pct={predictive.over_pct:.2f} "
        f"reactive_pod_min={reactive.pod_seconds / 60:.0f} "
        f"predictive_pod_min={predictive.pod_seconds / 60:.0f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
