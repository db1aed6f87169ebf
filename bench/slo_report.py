"""Figures of the SLO benchmark from raw samples: percentiles, per-stage and per-second
aggregates, the console table, the markdown report and the last line (plots:
``bench.slo_plots``).

Pure (no servers, no clock): ``bench.slo`` collects samples into ``SloRun`` and hands it
here, and the unit tests feed it invented samples. Conventions: times are seconds since the
surge started (negative before it), latencies are milliseconds, a probe whose effect was
never seen has ``ms=None`` and counts as slower than every seen one (a percentile that
falls on such probes is ``inf``: "not seen within the probe timeout", never a guess);
a click probe whose list the scorer found unchanged has no latency and is only counted.

Why one module of ~760 lines: pure functions over one run's samples (no servers, no clock),
kept together so the unit tests can feed one module invented runs; splitting by output
format would scatter the shared figures.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from tabulate import tabulate

from bench import stats
from bench.stats import histogram_quantile, percentile

READ_P99_TARGET_MS = 5.0
READ_SHARE_TARGET = 0.80  # of the bare ceiling's saturation throughput
CLICK_P99_TARGET_MS = 100.0
SOLDOUT_P99_TARGET_MS = 1000.0
CLICK_TARGET_EPS = 1000.0


# -- samples --------------------------------------------------------------------------------


@dataclass
class SliceStats:
    """One second of the surge's reads: requests, errors and every latency sample (raw,
    from the open-loop generator; ``quantiles`` only for older runs loaded from json)."""

    t0: float
    t1: float
    requests: int
    errors: int
    duration_s: float
    quantiles: list[tuple[float, float]] = field(default_factory=list)  # (percent, ms)
    latencies_ms: Any = None  # numpy array of every completed request's latency

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s > 0 else 0.0

    def q(self, percent: float) -> float:
        """Latency at ``percent`` (0-100): from the raw samples when there are."""
        if self.latencies_ms is not None:
            return raw_percentile(self.latencies_ms, percent)
        pts = self.quantiles
        if not pts:
            return math.nan
        if percent <= pts[0][0]:
            return pts[0][1]
        for (p0, v0), (p1, v1) in zip(pts, pts[1:], strict=False):
            if p0 <= percent <= p1:
                return v0 if p1 == p0 else v0 + (v1 - v0) * (percent - p0) / (p1 - p0)
        return pts[-1][1]


@dataclass
class Sample:
    """One scrape, about every second: cumulative counters, so deltas give rates."""

    t: float
    events: int  # entries appended to the event log so far (accepted by the gateway)
    latency: dict[float, float]  # the read API's server-side histogram (le -> count)
    served: dict[tuple[str, str], float]  # (source, tier) -> answers so far
    flink_lag: int | None = None  # event-log entries the Flink job has not read yet
    scorer_lag: int | None = None  # rescore signals the scorer has not read yet
    load1: float = math.nan
    degraded: float = 0.0  # answers from process memory (Redis read over its bound) so far


@dataclass
class Probe:
    kind: str  # "click" (click -> updated cached list) | "soldout" (stock 0 -> not served)
    t: float  # when the gateway accepted the event
    ms: float | None  # None: not seen before the end of the run
    ref: str = ""  # the probe shopper (click) or item (sold-out), for diagnosis
    #: "seen", "unseen" (slower than the run could wait), "unchanged" (a click whose
    #: signal the scorer processed without rewriting: the recomputed list was identical)
    #: or "superseded" (a sold-out probe whose item another producer restocked first)
    outcome: str = "seen"
    legs: dict[str, float] | None = None  # click probes: ms per leg of the path


@dataclass
class ReadRun:
    """One quiet-phase open-loop stage against one server (at ``offered_rps``), with the
    server's saturation throughput from its sweep (``bench.read_sweep``)."""

    name: str
    rps: float
    p50_ms: float
    p99_ms: float
    srv_p50_ms: float
    srv_p99_ms: float
    errors: int
    requests: int
    cpu_us: float = math.nan  # CPU of the server (all its processes) per request
    offered_rps: float = math.nan
    sat_rps: float = math.nan


@dataclass
class Stage:
    rate: float  # target events/s
    t0: float
    t1: float


@dataclass
class SloRun:
    """Everything one run measured (plus what describes it)."""

    cores: int
    connections: int
    quiet: list[ReadRun]
    stages: list[Stage]
    slices: list[SliceStats]
    samples: list[Sample]
    probes: list[Probe]
    probe_timeout_s: float
    errors: dict[str, int] = field(default_factory=dict)
    quiet_served: dict[tuple[str, str], float] = field(default_factory=dict)
    quiet_degraded: float = 0.0
    load: dict[str, tuple[float, float, float]] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)


# -- statistics -----------------------------------------------------------------------------


def raw_percentile(samples: Any, percent: float) -> float:
    """Percentile of raw latency samples (numpy, linear), nan when there are none."""
    return float(np.percentile(samples, percent)) if len(samples) else math.nan


def merged_quantile(slices: Sequence[SliceStats], percent: float) -> float:
    """Latency quantile over several slices: of every raw sample in them (older runs
    without samples: each reported point stands for its share of the slice's requests)."""
    if slices and all(s.latencies_ms is not None for s in slices):
        return raw_percentile(np.concatenate([s.latencies_ms for s in slices]), percent)
    mass: list[tuple[float, float]] = []
    for s in slices:
        prev = 0.0
        for p, v in s.quantiles:
            w = s.requests * (p - prev) / 100.0
            if w > 0:
                mass.append((v, w))
            prev = p
    if not mass:
        return math.nan
    mass.sort()
    total = sum(w for _, w in mass)
    target, acc = total * percent / 100.0, 0.0
    for v, w in mass:
        acc += w
        if acc >= target - 1e-9:
            return v
    return mass[-1][0]


def in_window(t: float, t0: float, t1: float) -> bool:
    return t0 <= t < t1


def slices_in(slices: Sequence[SliceStats], t0: float, t1: float) -> list[SliceStats]:
    """Slices whose middle lies in [t0, t1)."""
    return [s for s in slices if in_window((s.t0 + s.t1) / 2, t0, t1)]


def sample_at(samples: Sequence[Sample], t: float) -> Sample | None:
    """The last sample taken at or before ``t`` (else the first one)."""
    best = None
    for s in samples:
        if s.t <= t + 1e-9:
            best = s
    return best or (samples[0] if samples else None)


def served_delta(
    before: dict[tuple[str, str], float], after: dict[tuple[str, str], float]
) -> dict[tuple[str, str], float]:
    out = {k: v - before.get(k, 0.0) for k, v in after.items()}
    return {k: v for k, v in out.items() if v > 0}


GROUPS = (
    ("personalized", "personalized list (cache)"),
    ("content", "cold start: content tier"),
    ("segment", "cold start: segment tier"),
    ("last_known_good", "fallback: last-known-good list"),
    ("popularity", "fallback: popularity"),
)


def source_group(source: str, tier: str) -> str:
    """Where an answer came from, in the report's words (``GROUPS``)."""
    if source in ("last_known_good", "popularity"):
        return source
    if source == "segment" or tier == "segment":
        return "segment"
    return "personalized" if tier == "personalized" else "content"


def source_shares(served: dict[tuple[str, str], float]) -> dict[str, float]:
    total = sum(served.values())
    out = dict.fromkeys((g for g, _ in GROUPS), 0.0)
    for (source, tier), n in served.items():
        out[source_group(source, tier)] += n
    return {k: (v / total if total else math.nan) for k, v in out.items()}


def per_second(samples: Sequence[Sample]) -> list[dict[str, float]]:
    """Rates and server-side quantiles between consecutive samples."""
    rows = []
    for a, b in zip(samples, samples[1:], strict=False):
        dt = b.t - a.t
        if dt <= 0:
            continue
        served = sum(b.served.values()) - sum(a.served.values())
        rows.append(
            {
                "t": b.t,
                "events_per_s": (b.events - a.events) / dt,
                "server_rps": served / dt,
                "server_p50_ms": histogram_quantile(a.latency, b.latency, 0.5),
                "server_p99_ms": histogram_quantile(a.latency, b.latency, 0.99),
                "flink_lag": math.nan if b.flink_lag is None else float(b.flink_lag),
                "scorer_lag": math.nan if b.scorer_lag is None else float(b.scorer_lag),
                "load1": b.load1,
            }
        )
    return rows


@dataclass
class StageSummary:
    rate: float
    seconds: float
    achieved_eps: float
    flink_lag_end: float
    read_rps: float
    read_p50_ms: float
    read_p99_ms: float
    srv_p99_ms: float
    read_errors: int
    click: list[float | None]
    soldout: list[float | None]
    scorer_lag_end: float = math.nan
    click_unchanged: int = 0
    soldout_superseded: int = 0

    @property
    def sustained(self) -> bool:
        """The pipeline kept up: at the stage's end neither the Flink job (events) nor the
        scorer (rescore signals) was more than a second of traffic (or 200 entries)
        behind, and the gateway took 90% of the target rate."""
        bound = max(self.rate, 200)
        lags = (self.flink_lag_end, self.scorer_lag_end)
        lag_ok = all(not math.isnan(x) and x <= bound for x in lags)
        return lag_ok and self.achieved_eps >= 0.9 * self.rate


def summarize_stages(run: SloRun) -> list[StageSummary]:
    out = []
    for st in run.stages:
        sl = slices_in(run.slices, st.t0, st.t1)
        a, b = sample_at(run.samples, st.t0), sample_at(run.samples, st.t1)
        achieved = srv99 = lag = scorer_lag = math.nan
        if a is not None and b is not None and b.t > a.t:
            achieved = (b.events - a.events) / (b.t - a.t)
            srv99 = histogram_quantile(a.latency, b.latency, 0.99)
            lag = math.nan if b.flink_lag is None else float(b.flink_lag)
            scorer_lag = math.nan if b.scorer_lag is None else float(b.scorer_lag)
        probes = [p for p in run.probes if st.t0 <= p.t < st.t1]
        dur = sum(s.duration_s for s in sl)
        out.append(
            StageSummary(
                rate=st.rate,
                seconds=st.t1 - st.t0,
                achieved_eps=achieved,
                flink_lag_end=lag,
                read_rps=sum(s.requests for s in sl) / dur if dur else math.nan,
                read_p50_ms=merged_quantile(sl, 50),
                read_p99_ms=merged_quantile(sl, 99),
                srv_p99_ms=srv99,
                read_errors=sum(s.errors for s in sl),
                click=[p.ms for p in probes if p.kind == "click" and p.outcome != "unchanged"],
                soldout=[p.ms for p in probes if p.kind == "soldout" and p.outcome != "superseded"],
                scorer_lag_end=scorer_lag,
                click_unchanged=sum(p.kind == "click" and p.outcome == "unchanged" for p in probes),
                soldout_superseded=sum(
                    p.kind == "soldout" and p.outcome == "superseded" for p in probes
                ),
            )
        )
    return out


# -- headline -------------------------------------------------------------------------------


@dataclass
class Headline:
    cores: int
    read_p99_ms: float
    read_offered_rps: float
    read_sat_rps: float
    baseline_sat_rps: float
    click_p99_ms: float
    soldout_p99_ms: float
    soldout_p99_with_superseded_ms: float
    soldout_superseded: int
    errors: int
    top_rate: float

    @property
    def sat_share(self) -> float:
        """The read API's saturation throughput as a share of the bare ceiling's."""
        return self.read_sat_rps / self.baseline_sat_rps if self.baseline_sat_rps else math.nan


def median_run(runs: Sequence[ReadRun]) -> ReadRun | None:
    """The median round by p99 (as ``bench.slo_read`` reports it)."""
    ordered = sorted(runs, key=lambda r: r.p99_ms)
    return ordered[len(ordered) // 2] if ordered else None


def headline(run: SloRun) -> Headline:
    """Reads from the quiet phase (where the bare ceiling is measured the same way);
    freshness at the surge's top rate; every error counted anywhere."""
    read = median_run([r for r in run.quiet if r.name == "read_api"])
    base = median_run([r for r in run.quiet if r.name == "bare_asgi"])
    stages = summarize_stages(run)
    top = max(stages, key=lambda s: s.rate) if stages else None
    return Headline(
        cores=run.cores,
        read_p99_ms=read.p99_ms if read else math.nan,
        read_offered_rps=read.offered_rps if read else math.nan,
        read_sat_rps=read.sat_rps if read else math.nan,
        baseline_sat_rps=base.sat_rps if base else math.nan,
        click_p99_ms=percentile(top.click, 99) if top else math.nan,
        soldout_p99_ms=percentile(top.soldout, 99) if top else math.nan,
        soldout_p99_with_superseded_ms=(
            percentile(list(top.soldout) + [None] * top.soldout_superseded, 99) if top else math.nan
        ),
        soldout_superseded=top.soldout_superseded if top else 0,
        errors=sum(run.errors.values()),
        top_rate=top.rate if top else math.nan,
    )


def last_line(h: Headline) -> str:
    return (
        f"slo cores={h.cores} read_p99_ms={h.read_p99_ms:.2f} "
        f"read_offered_rps={h.read_offered_rps:.0f} read_sat_rps={h.read_sat_rps:.0f} "
        f"baseline_sat_rps={h.baseline_sat_rps:.0f} click_to_recs_p99_ms={h.click_p99_ms:.0f} "
        f"soldout_p99_ms={h.soldout_p99_ms:.0f} soldout_superseded={h.soldout_superseded} "
        f"errors={h.errors}"
    )


def surge_line(run: SloRun) -> str:
    """The read API under the surge's top rate (the line before the last one)."""
    stages = summarize_stages(run)
    top = max(stages, key=lambda s: s.rate) if stages else None
    if top is None:
        return "slo_surge (no surge)"
    return (
        f"slo_surge events_eps={top.rate:.0f} achieved_eps={top.achieved_eps:.0f} "
        f"read_p99_ms={top.read_p99_ms:.2f} read_rps={top.read_rps:.0f} "
        f"sustained={'yes' if top.sustained else 'no'}"
    )


# -- text -----------------------------------------------------------------------------------


def fmt(value: float, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if math.isinf(value):
        return "unseen"
    return f"{value:.{digits}f}"


def probe_cell(values: Sequence[float | None], apart: int = 0, label: str = "unchanged") -> str:
    """p50 / p99 (n, unseen, and the probes counted apart: unchanged clicks or superseded
    sold-out probes)."""
    if not values:
        return "-" if not apart else f"- ({apart} {label})"
    lost = sum(v is None for v in values)
    text = f"{fmt(percentile(values, 50), 0)} / {fmt(percentile(values, 99), 0)}"
    extra = (f", {lost} unseen" if lost else "") + (f", {apart} {label}" if apart else "")
    return f"{text} (n={len(values)}{extra})"


def _verdict(ok: bool | None) -> str:
    return "-" if ok is None else ("met" if ok else "MISSED")


def targets(run: SloRun) -> list[tuple[str, str, str, str]]:
    """(target, reached, verdict, note) rows."""
    h = headline(run)
    share = h.sat_share
    stages = summarize_stages(run)
    top = max(stages, key=lambda s: s.rate) if stages else None
    at_target = top is not None and top.rate >= CLICK_TARGET_EPS
    note = f"at {fmt(h.top_rate, 0)} events/s" + (
        "" if top is None else f" ({'sustained' if top.sustained else 'not sustained'})"
    )
    rows = [
        (
            f"read saturation throughput >= {READ_SHARE_TARGET:.0%} of bare ASGI's",
            f"{fmt(share * 100, 0)}%",
            _verdict(None if math.isnan(share) else share >= READ_SHARE_TARGET),
            "open loop, quiet phase",
        ),
        (
            f"read p99 <= {READ_P99_TARGET_MS:g} ms (client, open loop)",
            f"{fmt(h.read_p99_ms, 2)} ms",
            _verdict(None if math.isnan(h.read_p99_ms) else h.read_p99_ms <= READ_P99_TARGET_MS),
            f"offered {fmt(h.read_offered_rps, 0)}/s = half the bare saturation",
        ),
        (
            f"click -> updated list p99 <= {CLICK_P99_TARGET_MS:g} ms at "
            f"{CLICK_TARGET_EPS:g} events/s",
            f"{fmt(h.click_p99_ms, 0)} ms",
            _verdict(
                None
                if math.isnan(h.click_p99_ms) or not at_target
                else h.click_p99_ms <= CLICK_P99_TARGET_MS
            ),
            note,
        ),
        (
            f"sold-out -> gone p99 <= {SOLDOUT_P99_TARGET_MS:g} ms",
            f"{fmt(h.soldout_p99_ms, 0)} ms ({fmt(h.soldout_p99_with_superseded_ms, 0)} ms "
            f"counting {h.soldout_superseded} superseded as never gone)",
            _verdict(
                None if math.isnan(h.soldout_p99_ms) else h.soldout_p99_ms <= SOLDOUT_P99_TARGET_MS
            ),
            note + "; superseded: restocked (stock > 0) by another producer within 2 s",
        ),
        ("zero errors (5xx, non-2xx, failed sends)", str(h.errors), _verdict(h.errors == 0), ""),
    ]
    if top is not None and top.read_p99_ms == top.read_p99_ms:
        rows.insert(
            2,
            (
                f"read p99 <= {READ_P99_TARGET_MS:g} ms under the surge (not a stated target)",
                f"{fmt(top.read_p99_ms, 2)} ms",
                _verdict(top.read_p99_ms <= READ_P99_TARGET_MS),
                note,
            ),
        )
    return rows


LEG_ORDER = (
    "gateway",
    "event log -> stream job flush",
    "rescore stream wait",
    "scorer queueing",
    "model service",
    "write",
    "cache -> read",
)


def leg_breakdown(run: SloRun) -> list[tuple[str, float, float, int]]:
    """(leg, p50, p99, n) of the seen click probes of the top stage, in path order: each
    list's own trace (``flashrec.scoring.trace``) says where its time went."""
    if not run.stages:
        return []
    top = max(run.stages, key=lambda st: st.rate)
    legs: dict[str, list[float]] = {}
    for p in run.probes:
        if p.kind == "click" and p.legs and top.t0 <= p.t < top.t1:
            for name, ms in p.legs.items():
                if not math.isnan(ms):
                    legs.setdefault(name, []).append(ms)
    return [
        (leg, percentile(legs[leg], 50), percentile(legs[leg], 99), len(legs[leg]))
        for leg in LEG_ORDER
        if leg in legs
    ]


def table(
    rows: Sequence[Sequence[Any]], headers: Sequence[str], align: str, markdown: bool = False
) -> list[str]:
    """Rows of already formatted cells as lines: aligned columns for the console (indented
    two spaces), a pipe table for the report. ``align``: one of l/r per column."""
    colalign = ["right" if a == "r" else "left" for a in align]
    text = tabulate(
        rows, headers=headers, tablefmt="pipe" if markdown else "simple",
        colalign=colalign, disable_numparse=True,
    )  # fmt: skip
    lines = text.splitlines()
    return lines if markdown else [f"  {line}" for line in lines]


def quiet_rows(run: SloRun) -> list[list[Any]]:
    return [
        [
            r.name,
            fmt(r.sat_rps, 0),
            fmt(r.offered_rps, 0),
            f"{r.rps:.0f}",
            fmt(r.p50_ms, 2),
            fmt(r.p99_ms, 2),
            fmt(r.srv_p50_ms, 2),
            fmt(r.srv_p99_ms, 2),
            fmt(r.cpu_us, 0),
            r.errors,
        ]  # fmt: skip
        for r in run.quiet
    ]


def console(run: SloRun) -> str:
    """The side-by-side table printed to stdout."""
    lines = []
    load = run.load
    start, end = load.get("start"), load.get("end")
    lines.append(
        f"cores={run.cores} load_avg_start={_load(start)} load_avg_end={_load(end)} "
        + " ".join(f"{k}={v}" for k, v in run.meta.items() if k in CONSOLE_META)
    )
    lines.append("")
    lines.append(
        "reads, quiet phase (same shoppers, same bytes, same cores, open loop at a fixed "
        "offered rate, latency from each request's due time):"
    )
    lines += table(
        quiet_rows(run),
        ["server", "sat rps", "offered", "achieved", "p50 ms", "p99 ms", "srv p50", "srv p99",
         "cpu us/req", "errors"],
        "lrrrrrrrrr",
    )  # fmt: skip
    h = headline(run)
    if not math.isnan(h.sat_share):
        lines.append(f"  read API / bare ASGI saturation throughput: {h.sat_share:.0%}")
    lines.append("")
    lines.append(
        "flash-sale surge (events through the gateway + open-loop reads at the same time):"
    )
    lines += table(
        [
            [
                f"{s.rate:.0f}", fmt(s.achieved_eps, 0),
                f"{fmt(s.flink_lag_end, 0)}/{fmt(s.scorer_lag_end, 0)}", fmt(s.read_rps, 0),
                fmt(s.read_p50_ms, 2), fmt(s.read_p99_ms, 2), fmt(s.srv_p99_ms, 2),
                probe_cell(s.click, s.click_unchanged),
                probe_cell(s.soldout, s.soldout_superseded, "superseded"),
            ]  # fmt: skip
            for s in summarize_stages(run)
        ],
        ["events/s", "achieved", "lag F/S", "read rps", "p50 ms", "p99 ms", "srv p99",
         "click->list p50/p99 ms", "sold-out->gone p50/p99 ms"],
        "rrrrrrrll",
    )  # fmt: skip
    breakdown = leg_breakdown(run)
    if breakdown:
        top = max(st.rate for st in run.stages)
        lines.append("")
        lines.append(f"click -> updated list, leg by leg at {top:.0f} events/s (ms):")
        lines += table(
            [[leg, fmt(p50, 1), fmt(p99, 1), n] for leg, p50, p99, n in breakdown],
            ["leg", "p50", "p99", "n"],
            "lrrr",
        )
    lines.append("")
    lines.append("answers by source (surge | quiet read API):")
    lines += table(source_rows(run), ["source", "surge", "quiet"], "lrr")
    lines.append("errors: " + (", ".join(f"{k}={v}" for k, v in run.errors.items()) or "none"))
    lines.append("")
    lines += table(
        [[verdict, target, reached, note] for target, reached, verdict, note in targets(run)],
        ["verdict", "target", "reached", "conditions"],
        "llrl",
    )
    return "\n".join(lines)


def source_rows(run: SloRun) -> list[list[str]]:
    """Share of answers per source group, surge and quiet, then the degraded share."""
    surge = source_shares(surge_served(run))
    quiet = source_shares(run.quiet_served)
    rows = [[label, _pct(surge[key]), _pct(quiet[key])] for key, label in GROUPS]
    return [*rows, [DEGRADED_LABEL, *map(_pct, degraded_shares(run))]]


CONSOLE_META = ("ramp", "quiet_s", "model", "dagster")


def _load(v: tuple[float, float, float] | None) -> str:
    return "-" if v is None else ",".join(f"{x:.2f}" for x in v)


def _pct(v: float) -> str:
    return "-" if math.isnan(v) else f"{v:.1%}"


DEGRADED_LABEL = "of which degraded (process memory)"


def degraded_shares(run: SloRun) -> tuple[float, float]:
    """Share of degraded answers (surge, quiet read API)."""
    surge_total = sum(surge_served(run).values())
    surge = math.nan
    if run.stages and run.samples and surge_total:
        a = sample_at(run.samples, run.stages[0].t0)
        b = sample_at(run.samples, run.stages[-1].t1)
        if a and b:
            surge = (b.degraded - a.degraded) / surge_total
    quiet_total = sum(run.quiet_served.values())
    quiet = run.quiet_degraded / quiet_total if quiet_total else math.nan
    return surge, quiet


def surge_served(run: SloRun) -> dict[tuple[str, str], float]:
    if not run.stages or not run.samples:
        return {}
    a = sample_at(run.samples, run.stages[0].t0)
    b = sample_at(run.samples, run.stages[-1].t1)
    return served_delta(a.served, b.served) if a and b else {}


DAGSTER_OFF = (
    "; Dagster, the offline orchestrator, was not started: it is on neither the event nor "
    "the read path"
)


def markdown(run: SloRun, plots: dict[str, str], last: str) -> str:
    """The report a person reads (``plots``: name -> file name next to the report)."""
    h = headline(run)
    m = run.meta
    out = [
        "# Flash-sale SLO benchmark",
        "",
        f"Run {m.get('started', '')} on {run.cores} cores (load average at start "
        f"{_load(run.load.get('start'))}, at end {_load(run.load.get('end'))}). "
        f"Everything on this machine, loopback only, Redis database {m.get('redis_db', '?')}.",
        "",
        "**What ran.** The serving stack as `make up` starts it (model service, read API, "
        "Flink features job, scorer, gateway"
        + (", Dagster" if m.get("dagster") == "on" else DAGSTER_OFF)
        + f"), champion model `{m.get('model', '?')}` ({m.get('model_origin', '?')}). "
        "Events come from the flash-sale simulator through the gateway "
        f"(ramp {m.get('ramp', '?')}, events/s:seconds); reads come from an open-loop "
        "generator in a process of its own (`bench/open_loop.py`): requests leave at a "
        "fixed offered rate and each latency counts from the request's due time.",
        "",
        "## Reads: the read API next to its honest ceiling",
        "",
        "Quiet phase: the same request mix (the same shoppers in the same order) against a "
        "bare ASGI app under uvicorn (`bench/bare_asgi.py`: the same `ReadPath`, the same "
        "Redis round trip, the same bytes, no framework, no metrics) and against the "
        "BentoML read API, open loop: offered rates rising until each falls behind (its "
        "saturation throughput), then both at half the bare app's saturation rate for "
        f"{m.get('quiet_s', '?')} s (p50/p99 over every request).",
        "",
    ]
    out += table(
        quiet_rows(run),
        ["server", "saturation rps", "offered rps", "achieved rps", "p50 ms", "p99 ms",
         "server p50 ms", "server p99 ms", "CPU us/request", "errors"],
        "lrrrrrrrrr",
        markdown=True,
    )  # fmt: skip
    if not math.isnan(h.sat_share):
        out += [
            "",
            f"Read API saturation throughput = **{h.sat_share:.0%}** of the bare app's. "
            "Server-side figures come from the read API's own histogram (coarse buckets, "
            "interpolated); the bare app has none.",
        ]
    out += [
        "",
        "## The surge",
        "",
        "Per stage: the event rate asked of the simulator and what the gateway accepted, the "
        "Flink job's and the scorer's consumer lag at the stage's end (events and rescore "
        "signals not yet read; *sustained*: both under a second of traffic), the read API "
        "under open-loop reads at the same time (client side; server p99 from /metrics), and the "
        "freshness probes sent during the stage (p50 / p99 ms; *unseen* = not observed "
        f"within {run.probe_timeout_s:.0f} s nor by the end of the drain "
        f"({run.meta.get('drain_s', '?')} s after the ramp), counted as slower than every "
        "seen one).",
        "",
    ]
    out += table(
        [
            [
                f"{s.rate:.0f}", fmt(s.achieved_eps, 0), fmt(s.flink_lag_end, 0),
                fmt(s.scorer_lag_end, 0), "yes" if s.sustained else "no", fmt(s.read_rps, 0),
                fmt(s.read_p50_ms, 2), fmt(s.read_p99_ms, 2), fmt(s.srv_p99_ms, 2),
                probe_cell(s.click, s.click_unchanged),
                probe_cell(s.soldout, s.soldout_superseded, "superseded"),
            ]
            for s in summarize_stages(run)
        ],
        ["events/s", "achieved", "Flink lag", "scorer lag", "sustained", "read rps",
         "read p50 ms", "read p99 ms", "server p99 ms", "click -> updated list",
         "sold-out -> gone"],
        "rrrrlrrrrll",
        markdown=True,
    )  # fmt: skip
    out += [
        "",
        "- *click -> updated list*: a click of a warm, known probe shopper (10+ recent items, "
        "personalized tier) is posted to the gateway; the clock starts when the gateway "
        "accepts it and stops when that shopper's cached list in Redis carries a newer "
        "`computed_at` (Flink features -> rescore signal -> scorer -> model service -> "
        "cache). The clicked item is one the shopper has neither seen nor been shown, so the "
        "recomputed list almost always differs. The scorer does not rewrite an identical "
        "list; a click whose rescore signal it processed without a new list is counted as "
        "*unchanged*, apart from the latencies.",
        "- *sold-out -> gone*: an item the read API serves to a probe shopper gets a "
        "`stock_change` to 0 through the gateway; the clock stops at the first read API "
        "answer for that shopper without it. The item is restocked afterwards.",
        "",
    ]
    for name in ("latency", "throughput", "freshness"):
        if name in plots:
            out.append(f"![{name}]({plots[name]})")
            out.append("")
    out += ["## Answers by source", ""]
    out += table(source_rows(run), ["source", "surge", "quiet"], "lrr", markdown=True)
    out += [
        "",
        "*Degraded* answers are counted inside the rows above: when the read API's one Redis "
        "round trip takes longer than its bound (`FLASHREC_SERVING_REDIS_TIMEOUT_MS`, 100 ms) "
        "it answers from process memory (this worker's copy of the shopper's last list, "
        "reported as last-known-good, else popularity) instead of waiting: a sign of an "
        "overloaded machine, not of missing lists.",
        "",
        "The read mix: 80% shoppers with a cached list (known shoppers and anonymous "
        "sessions), 20% fresh anonymous sessions (segment tier by design).",
        "",
        "## Errors",
        "",
    ]
    out += [f"- {k}: {v}" for k, v in run.errors.items()] or ["- none"]
    out += ["", "## Targets", ""]
    out += table(
        [list(row) for row in targets(run)],
        ["target", "reached", "verdict", "conditions"],
        "lrll",
        markdown=True,
    )
    if m.get("notes"):
        out += ["", "## Notes", ""] + [f"- {n}" for n in m["notes"]]
    out += ["", "```", last, "```", ""]
    return "\n".join(out)


# -- Prometheus text (parsed by ``bench.stats``) -------------------------------------------


def served_counts(text: str) -> dict[tuple[str, str], float]:
    """The read API's answers so far per (source, tier)."""
    out: dict[tuple[str, str], float] = {}
    for labels, v in stats.samples(text, "flashrec_read_served_total"):
        key = (labels.get("source", ""), labels.get("tier", ""))
        out[key] = out.get(key, 0.0) + v
    return out


def degraded_count(text: str) -> float:
    """The read API's answers so far served from process memory (Redis too slow/away)."""
    return sum(v for _, v in stats.samples(text, "flashrec_read_degraded_total"))


def server_errors(text: str) -> float:
    """5xx answers so far of a BentoML service (``*_request_total`` by response code)."""
    return sum(
        value
        for labels, value in stats.all_samples(text)
        if labels.get("__name__", "").endswith("_request_total")
        and labels.get("http_response_code", "").startswith("5")
    )
