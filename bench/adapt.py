"""`make bench-adapt`: the adaptive loop on live traffic, with nothing injected.

    python -m bench.adapt [--preset default|ci] [--redis-db 10] [--no-broken]

What one run does:

1. A work folder of its own (``var/bench/adapt/work``), Redis database 10 (flushed), free
   ports, and the loop's settings of the preset (short windows and intervals so that a
   run takes minutes, a 50% canary; printed at the start).
2. Day 1, offline, through Dagster (the same instance the UI then shows): the simulator's
   history -> lake -> features -> the model chain; its model is the champion.
3. The whole stack as ``make up`` starts it, Dagster included (its sensors run by default):
   model service, read API, Flink job (features and the live lake), scorer, gateway,
   attribution, Dagster (webserver and daemon).
4. Live traffic through the HTTP APIs (``bench.adapt_traffic``): reactive shoppers from
   the history's world (``flashrec.simulator.reactive``) at a stated rate of steps/s,
   open loop; each step reads the shopper's list, then posts what they did.
5. The shift: a flash sale of new items the day-1 model never saw. From then on the
   platform runs by itself: live events -> lake -> drift -> retrain -> challenger
   hot-loaded -> shadow -> canary -> promotion. The benchmark only watches
   (``bench.adapt_observe``).
6. A deliberately broken challenger (the champion with its item ids shuffled) enters the
   rollout through the registration path a retrain uses; it must be rolled back.
7. The traffic stops; the lake must hold every event the gateway accepted.

The last line is

    adapt cores=<c> shift_to_drift_s=<..> shift_to_canary_s=<..> shift_to_promoted_s=<..>
        conv_uplift_pct=<..> viral_item_p50_s=<..> viral_item_p99_s=<..> lost_events=<n>
        errors=<n>

Why one module of ~460 lines: one scenario run end to end (bootstrap, stack, traffic phases,
drain, report); traffic and observation are ``adapt_traffic`` and ``adapt_observe``.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import random
import shutil
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import redis

from bench.adapt_observe import Observer, Timeline, wilson
from bench.adapt_traffic import Driver, TrafficStats
from bench.slo_stack import Stack, environment, redis_db_url
from bench.stats import percentile
from flashrec.lake_layout import LIVE_SOURCE
from flashrec.settings import PROJECT_ROOT, Settings
from flashrec.simulator.reactive import ReactiveConfig, ReactiveTraffic, Shift

SIM_DEFAULT = {
    "FLASHREC_SIM_USERS": "1000",
    "FLASHREC_SIM_ITEMS": "300",
    "FLASHREC_SIM_DAYS": "2",
    "FLASHREC_SIM_SESSIONS_PER_DAY": "1000",
}
LOOP_DEFAULT = {
    "FLASHREC_LIVE_LAKE_ROLL_S": "10",
    "FLASHREC_FLINK_CHECKPOINT_INTERVAL_MS": "2000",
    "FLASHREC_LIVE_REFRESH_INTERVAL_S": "15",
    "FLASHREC_RETRAIN_COOLDOWN_S": "1200",
    "FLASHREC_ROLLOUT_INTERVAL_S": "10",
    "FLASHREC_CANARY_SHARE": "0.5",
    "FLASHREC_AB_MIN_SESSIONS": "150",
    "FLASHREC_AB_MDE": "0.05",
    "FLASHREC_DRIFT_RECENT_HOURS": "0.05",
    "FLASHREC_DRIFT_REFERENCE_HOURS": "0.05",
    "FLASHREC_AUTOML_TRIALS": "2",
    # Retrains without the sequence model (minutes of training on 2 cores): the loop's
    # timing is the point here; `make bench-quality` measures the model with it.
    "FLASHREC_SEQUENCE_MODEL": "off",
}


@dataclass(frozen=True)
class Scenario:
    name: str
    rate: float  # shopper steps per second (open loop)
    concurrency: int  # sessions open at once
    pre_shift_s: float
    decision_timeout_s: float
    after_decision_s: float  # traffic kept after the decision (served version change)
    broken: bool
    broken_timeout_s: float
    drain_timeout_s: float
    shift: Shift = field(default_factory=Shift)
    sim: dict[str, str] = field(default_factory=lambda: dict(SIM_DEFAULT))
    loop: dict[str, str] = field(default_factory=lambda: dict(LOOP_DEFAULT))


PRESETS = {
    "default": Scenario("default", 25.0, 60, 240.0, 1200.0, 45.0, True, 600.0, 240.0),
    "ci": Scenario(
        "ci",
        # 20 steps/s over 40 open sessions: the canary reaches its sample sooner than at
        # 15/30 (the default preset runs 25/60 on the same 2 cores); 150 s of live traffic
        # before the shift are most of the drift's reference window (0.05 h = 180 s).
        20.0,
        40,
        150.0,
        1200.0,
        15.0,
        False,
        0.0,
        240.0,
        # A sale that takes 90% of new sessions' interest: the stale champion's lists lose
        # most of their value, so the sequential test can decide on the ~150 shoppers per
        # arm a CI canary sees in minutes (at 60%, the gap of ~6 points needs ~650 each).
        shift=Shift(share=0.9),
        sim={
            **SIM_DEFAULT,
            "FLASHREC_SIM_USERS": "400",
            "FLASHREC_SIM_ITEMS": "150",
            "FLASHREC_SIM_SESSIONS_PER_DAY": "700",
        },  # fmt: skip
        loop={
            **LOOP_DEFAULT,
            "FLASHREC_AB_MIN_SESSIONS": "80",
            "FLASHREC_DRIFT_RECENT_HOURS": "0.025",
            # No live-candidate blending: CI proves the retrain -> promote loop in minutes on
            # a few hundred shoppers, so the stale champion must not follow the sale by
            # itself (with blending, one CI-scale run stood at 0.50 against 0.46 when its
            # time ran out).
            "FLASHREC_SCORER_LIVE_SLOTS": "0",
        },
    ),
}


@dataclass
class AdaptResult:
    scenario: str
    cores: int
    timeline: Timeline
    traffic: TrafficStats
    arms: dict[str, dict[str, float]]
    broken: Timeline | None
    bronze_live_rows: int
    lost_events: int
    errors: int
    failed_runs: int
    viral_latency_s: list[float]
    viral_missing: int
    served_versions: dict[str, int]

    def line(self) -> str:
        t = self.timeline
        lat = np.array(self.viral_latency_s) if self.viral_latency_s else None

        def f(x: float | None) -> str:
            return "inf" if x is None else f"{x:.1f}"

        uplift = t.decision_metrics.get("uplift_pct")
        return (
            f"adapt cores={self.cores} shift_to_drift_s={f(t.since_shift(t.drift_at))} "
            f"shift_to_canary_s={f(t.since_shift(t.canary_at))} "
            f"shift_to_promoted_s="
            f"{f(t.since_shift(t.decided_at) if t.decision == 'promote' else None)} "
            f"conv_uplift_pct={'nan' if uplift is None else f'{uplift:.1f}'} "
            f"viral_item_p50_s={f(_pct(lat, 50, self.viral_missing))} "
            f"viral_item_p99_s={f(_pct(lat, 99, self.viral_missing))} "
            f"lost_events={self.lost_events} errors={self.errors}"
        )


def _pct(values: np.ndarray | None, q: float, missing: int) -> float | None:
    """Percentile with items never seen counted as slower than any seen (None: it falls on
    one of those, or there is nothing to measure)."""
    seen = [] if values is None else values.tolist()
    value = percentile([*seen, *([None] * missing)], q)
    return value if math.isfinite(value) else None


def bootstrap_offline(log=print) -> str:
    """Day 1 through Dagster: history -> lake -> features -> champion; its version."""
    import dagster as dg

    from orchestration.demo import FEATURES, MODELS, _run, materialize_lake

    settings = Settings.from_env()
    instance = dg.DagsterInstance.get()
    t0 = time.monotonic()
    materialize_lake(instance, settings)
    _run(instance, FEATURES)
    _run(instance, MODELS)
    from flashrec.adaptivity.rollout_store import read_state

    state = read_state(redis.Redis.from_url(settings.redis_url))
    assert state is not None and state.champion_version, "no champion after the model chain"
    log(f"day 1 done in {time.monotonic() - t0:.0f}s: champion {state.champion_version}")
    return state.champion_version


def broken_model(settings: Settings, champion: str, seed: int) -> Any:
    """The champion with its item ids shuffled: valid lists, wrong items (a corrupted
    artifact). A new version, registered through the path every retrain takes."""
    from bentos import model_registry
    from flashrec.scoring.catalog_model import new_version
    from flashrec.scoring.vocab import Vocabulary

    model = model_registry.load(champion)
    ids = list(model.vocab.ids)
    random.Random(seed).shuffle(ids)
    model.vocab = Vocabulary(ids)
    model.model_version = f"{new_version()}-broken"
    return model


def bronze_live_rows(settings: Settings) -> int:
    from spark_jobs.tables import lake_table

    table = lake_table(settings, "bronze/events")
    if not table.exists():
        return 0
    return (
        table.delta()
        .to_pyarrow_table(columns=["source"], filters=[("source", "=", LIVE_SOURCE)])
        .num_rows
    )


async def _traffic_until(
    driver: Driver, rate: float, done, timeout_s: float, chunk_s: float = 5.0
) -> None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s and not done():
        await driver.run(rate, min(chunk_s, timeout_s - (time.monotonic() - t0)))


def run(scenario: Scenario, redis_url: str, work: Path, log=print) -> AdaptResult:
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    env = {**environment(work, redis_url), **scenario.sim, **scenario.loop}
    os.environ.update(env)  # the processes it starts (and Dagster's instance) read these
    settings = Settings.from_env()
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    from orchestration.instance import write_instance_yaml

    write_instance_yaml(Path(env["DAGSTER_HOME"]))
    log(f"bench-adapt ({scenario.name}) in {work}; Redis {redis_url}; settings:")
    for key, value in sorted({**scenario.sim, **scenario.loop}.items()):
        log(f"  {key}={value}")
    champion = bootstrap_offline(log)

    import dagster as dg

    from assets.rollout import enter_rollout, ledger_of
    from flashrec.simulator import SimulationConfig
    from flashrec.simulator.world import build_world

    stack = Stack(settings, with_dagster=True, extra=("attribution",), log=log)
    instance = dg.DagsterInstance.get()
    observer = Observer(ledger_of(settings), settings.model_service_url, instance)
    broken_observer: Observer | None = None
    result_traffic: TrafficStats | None = None
    try:
        t0 = time.monotonic()
        stack.start({})
        log(f"stack up in {time.monotonic() - t0:.0f}s")
        sim = SimulationConfig.from_settings(settings)
        world, _ = build_world(sim)
        traffic = ReactiveTraffic(
            sim,
            world,
            ReactiveConfig(concurrency=scenario.concurrency),
            run_id=uuid.uuid4().hex[:6],
        )
        gateway = f"http://127.0.0.1:{settings.gateway_port}"
        read = f"http://127.0.0.1:{settings.read_api_port}"
        driver = Driver(traffic, gateway, read)
        observer.start()

        async def live() -> None:
            nonlocal broken_observer
            import httpx

            async with httpx.AsyncClient(timeout=30) as http:
                lines = traffic.bootstrap()
                for i in range(0, len(lines), 500):
                    await driver.send_lines(http, lines[i : i + 500])
            log(f"pre-shift traffic: {scenario.rate:.0f} steps/s for {scenario.pre_shift_s:.0f}s")
            await driver.run(scenario.rate, scenario.pre_shift_s)
            new_items, created = traffic.shift(scenario.shift)
            async with httpx.AsyncClient(timeout=30) as http:
                await driver.send_lines(http, created)
            driver.watch = set(new_items)
            observer.timeline.shift_at = time.time()
            observer.timeline.note(f"shift: {len(new_items)} new items go viral")
            log(f"shift at {time.strftime('%H:%M:%S')}: {len(new_items)} new items")
            await _traffic_until(
                driver,
                scenario.rate,
                lambda: observer.timeline.decided_at is not None,
                scenario.decision_timeout_s,
            )
            t = observer.timeline
            log(f"decision: {t.decision} after {t.since_shift(t.decided_at)}s: {t.decision_reason}")
            await driver.run(scenario.rate, scenario.after_decision_s)
            if scenario.broken and t.decision is not None:
                broken = broken_model(
                    settings, t.challenger if t.decision == "promote" else champion, 1
                )
                broken_observer = Observer(
                    ledger_of(settings), settings.model_service_url, instance
                )
                broken_observer.timeline.shift_at = time.time()
                broken_observer.start()
                _, step = enter_rollout(settings, broken, "bench:broken", "a corrupted artifact")
                log(f"broken challenger {broken.model_version}: {step.action}")
                await _traffic_until(
                    driver,
                    scenario.rate,
                    lambda: broken_observer.timeline.decided_at is not None,
                    scenario.broken_timeout_s,
                )

        asyncio.run(live())
        result_traffic = driver.stats
        served_after = _served_change(observer.timeline, driver.stats)
        observer.timeline.served_changed_at = served_after
        lost, rows = _drain_lake(settings, driver.stats.accepted, scenario.drain_timeout_s, log)
        failed = len(
            instance.get_run_records(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE]))
        )
        dead = [name for name, ok in stack.alive().items() if not ok]
    finally:
        observer.stop()
        if broken_observer is not None:
            broken_observer.stop()
        stack.stop()
    assert result_traffic is not None
    arms = _arms(client, observer.timeline)
    latencies = [
        result_traffic.first_personalized[i] - result_traffic.first_sent[i]
        for i in result_traffic.first_sent
        if i in result_traffic.first_personalized
    ]
    missing = len(set(result_traffic.first_sent) - set(result_traffic.first_personalized))
    errors = (
        result_traffic.read_errors
        + result_traffic.gateway_errors
        + result_traffic.driver_errors
        + failed
        + len(dead)
    )
    return AdaptResult(
        scenario.name, os.cpu_count() or 1, observer.timeline, result_traffic, arms,
        broken_observer.timeline if broken_observer else None, rows, lost, errors, failed,
        latencies, missing, dict(result_traffic.served_versions),
    )  # fmt: skip


def _served_change(t: Timeline, stats: TrafficStats) -> float | None:
    """First time, after a promotion, the read API served the new champion's lists."""
    if t.decision != "promote" or t.decided_at is None:
        return None
    hits = [
        at
        for at, variant, version in stats.versions_timeline
        if at >= t.decided_at - 5 and variant == "champion" and version == t.challenger
    ]
    return min(hits) if hits else None


def _drain_lake(settings: Settings, accepted: int, timeout_s: float, log) -> tuple[int, int]:
    """Wait until bronze holds every accepted event (files roll, the sensor refreshes)."""
    deadline = time.monotonic() + timeout_s
    rows = 0
    while time.monotonic() < deadline:
        rows = bronze_live_rows(settings)
        if rows >= accepted:
            break
        time.sleep(5)
    log(f"lake: {rows} live rows in bronze for {accepted} accepted events")
    return max(0, accepted - rows), rows


def _arms(client: redis.Redis, t: Timeline) -> dict[str, dict[str, float]]:
    """The canary's exact counters, per arm (what the decision was taken on, and after)."""
    from flashrec.adaptivity import test_counters

    if not t.test_id:
        return {}
    key = f"{t.test_id}:canary"
    return {arm: test_counters.read_raw(client, key, arm) for arm in ("champion", "challenger")}


def report(res: AdaptResult) -> str:
    t = res.timeline
    lines = [f"bench-adapt ({res.scenario}) on {res.cores} cores"]
    lines.append("timeline (seconds after the shift):")
    for name, at in (
        ("drift detected on live data", t.drift_at),
        ("retrain started", t.retrain_started_at),
        ("challenger registered (shadow)", t.registered_at),
        ("challenger hot-loaded", t.loaded_at),
        ("canary", t.canary_at),
        (f"decision: {t.decision}", t.decided_at),
        ("read API serves the new version", t.served_changed_at),
    ):
        since = t.since_shift(at)
        lines.append(f"  {name:<34} {'-' if since is None else f'{since:8.1f}'}")
    if res.arms:
        lines.append("arms (canary, exact counts; 95% Wilson intervals):")
        for arm, row in res.arms.items():
            s, c = int(row["sessions"]), int(row["conversions"])
            i, k = int(row.get("impressions", 0)), int(row.get("clicks", 0))
            lo, hi = wilson(c, s)
            clo, chi = wilson(k, i)
            lines.append(
                f"  {arm:<10} sessions {s:6d} conversion {c / max(s, 1):.3f} [{lo:.3f}, {hi:.3f}]"
                f"  CTR {k / max(i, 1):.3f} [{clo:.3f}, {chi:.3f}] ({i} impressions)"
            )
    conv = t.decision_metrics.get("conversion") or {}
    if conv:
        lines.append(
            f"difference (challenger - champion): {conv['diff']:+.4f}, always-valid 95% CI "
            f"[{conv['ci_low']:+.4f}, {conv['ci_high']:+.4f}], p={conv['p_value']:.4g}"
        )
    lat = sorted(res.viral_latency_s)
    lines.append(
        f"viral items: {len(lat)} reached personalized lists of their category's shoppers, "
        f"{res.viral_missing} never; p50 {np.percentile(lat, 50) if lat else float('nan'):.1f}s"
        f" max {max(lat) if lat else float('nan'):.1f}s"
    )
    if res.broken is not None:
        b = res.broken
        lines.append(
            f"broken challenger: {b.decision or 'no decision'} after "
            f"{b.since_shift(b.decided_at)}s ({b.decision_reason})"
        )
    st = res.traffic
    lines.append(
        f"traffic: {st.steps} steps, {st.reads} reads ({st.read_errors} errors), "
        f"{st.events_sent} events sent, {st.accepted} accepted, {st.rejected} rejected, "
        f"{st.gateway_errors} gateway errors, {st.late_ticks} late ticks; "
        f"bronze live rows {res.bronze_live_rows}; failed Dagster runs {res.failed_runs}"
    )
    lines.append(res.line())
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.adapt", description=__doc__)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="default")
    parser.add_argument("--redis-db", type=int, default=10)
    parser.add_argument("--no-broken", action="store_true")
    args = parser.parse_args(argv)
    scenario = PRESETS[args.preset]
    if args.no_broken:
        from dataclasses import replace

        scenario = replace(scenario, broken=False)
    base = Settings.from_env()
    work = PROJECT_ROOT / "var" / "bench" / "adapt" / "work"
    res = run(scenario, redis_db_url(base.redis_url, args.redis_db), work)
    print(report(res), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
