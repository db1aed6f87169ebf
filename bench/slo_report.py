"""Figures of the SLO benchmark from raw samples: percentiles, per-stage and per-second
aggregates, the console table, the markdown report and the last line (plots:
``bench.slo_plots``).

Pure (no servers, no clock): ``bench.slo`` collects samples into ``SloRun`` and hands it
here, and the unit tests feed it invented samples. Conventions: times are seconds since the
surge started (negative before it), latencies are milliseconds, a probe whose effect was
never seen has ``ms=None`` and counts as slower than every seen one (a percentile that
falls on such probes is ``inf``: "not seen within the probe timeout", never a guess);
a click probe whose list the scorer found unchanged has no latency and is only counted.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.slo_read import quantile as histogram_quantile

READ_P99_TARGET_MS = 5.0
READ_SHARE_TARGET = 0.60
CLICK_P99_TARGET_MS = 100.0
SOLDOUT_P99_TARGET_MS = 1000.0
CLICK_TARGET_EPS = 1000.0


# -- samples --------------------------------------------------------------------------------


@dataclass
class SliceStats:
    """One wrk run of the surge (a second or so): requests, errors and latency quantiles."""

    t0: float
    t1: float
    requests: int
    errors: int
    duration_s: float
    quantiles: list[tuple[float, float]] = field(default_factory=list)  # (percent, ms)

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s > 0 else 0.0

    def q(self, percent: float) -> float:
        """Latency at ``percent`` (0-100), linear between the reported points."""
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


@dataclass
class ReadRun:
    """One quiet-phase wrk run against one server."""

    name: str
    rps: float
    p50_ms: float
    p99_ms: float
    srv_p50_ms: float
    srv_p99_ms: float
    errors: int
    requests: int
    cpu_us: float = math.nan  # CPU of the server (all its processes) per request


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


def percentile(values: Iterable[float | None], q: float) -> float:
    """``q``-th percentile (0-100), linear between order statistics; ``None`` = inf."""
    xs = sorted(math.inf if v is None else float(v) for v in values)
    if not xs:
        return math.nan
    pos = (len(xs) - 1) * q / 100.0
    lo = math.floor(pos)
    frac = pos - lo
    if frac == 0 or lo + 1 >= len(xs):
        return xs[lo]
    a, b = xs[lo], xs[lo + 1]
    return math.inf if math.isinf(b) else a + (b - a) * frac


def merged_quantile(slices: Sequence[SliceStats], percent: float) -> float:
    """Latency quantile over several slices: each reported point stands for its share of
    that slice's requests (so a busy second weighs more than a quiet one)."""
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
    read_rps: float
    baseline_rps: float
    click_p99_ms: float
    soldout_p99_ms: float
    errors: int
    top_rate: float


def median_run(runs: Sequence[ReadRun]) -> ReadRun | None:
    """The median round by throughput (as ``bench.slo_read`` reports it)."""
    ordered = sorted(runs, key=lambda r: r.rps)
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
        read_rps=read.rps if read else math.nan,
        baseline_rps=base.rps if base else math.nan,
        click_p99_ms=percentile(top.click, 99) if top else math.nan,
        soldout_p99_ms=percentile(top.soldout, 99) if top else math.nan,
        errors=sum(run.errors.values()),
        top_rate=top.rate if top else math.nan,
    )


def last_line(h: Headline) -> str:
    return (
        f"slo cores={h.cores} read_p99_ms={h.read_p99_ms:.2f} read_rps={h.read_rps:.0f} "
        f"baseline_rps={h.baseline_rps:.0f} click_to_recs_p99_ms={h.click_p99_ms:.0f} "
        f"soldout_p99_ms={h.soldout_p99_ms:.0f} errors={h.errors}"
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
    share = h.read_rps / h.baseline_rps if h.baseline_rps else math.nan
    stages = summarize_stages(run)
    top = max(stages, key=lambda s: s.rate) if stages else None
    at_target = top is not None and top.rate >= CLICK_TARGET_EPS
    note = f"at {fmt(h.top_rate, 0)} events/s" + (
        "" if top is None else f" ({'sustained' if top.sustained else 'not sustained'})"
    )
    rows = [
        (
            f"read throughput >= {READ_SHARE_TARGET:.0%} of bare ASGI",
            f"{fmt(share * 100, 0)}%",
            _verdict(None if math.isnan(share) else share >= READ_SHARE_TARGET),
            f"{run.connections} connections, quiet phase",
        ),
        (
            f"read p99 <= {READ_P99_TARGET_MS:g} ms (client)",
            f"{fmt(h.read_p99_ms, 2)} ms",
            _verdict(None if math.isnan(h.read_p99_ms) else h.read_p99_ms <= READ_P99_TARGET_MS),
            f"{run.connections} connections, quiet phase",
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
            f"{fmt(h.soldout_p99_ms, 0)} ms",
            _verdict(
                None if math.isnan(h.soldout_p99_ms) else h.soldout_p99_ms <= SOLDOUT_P99_TARGET_MS
            ),
            note,
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


def console(run: SloRun) -> str:
    """The side-by-side table printed to stdout."""
    lines = []
    load = run.load
    start, end = load.get("start"), load.get("end")
    lines.append(
        f"cores={run.cores} load_avg_start={_load(start)} load_avg_end={_load(end)} "
        f"connections={run.connections} "
        + " ".join(f"{k}={v}" for k, v in run.meta.items() if k in CONSOLE_META)
    )
    lines.append("")
    lines.append("reads, quiet phase (same shoppers, same bytes, same cores, wrk):")
    lines.append(
        f"  {'server':<12}{'rps':>8}{'p50 ms':>9}{'p99 ms':>9}{'srv p50':>9}{'srv p99':>9}"
        f"{'cpu us/req':>11}{'errors':>8}"
    )
    for r in run.quiet:
        lines.append(
            f"  {r.name:<12}{r.rps:>8.0f}{fmt(r.p50_ms, 2):>9}{fmt(r.p99_ms, 2):>9}"
            f"{fmt(r.srv_p50_ms, 2):>9}{fmt(r.srv_p99_ms, 2):>9}{fmt(r.cpu_us, 0):>11}"
            f"{r.errors:>8}"
        )
    h = headline(run)
    if h.baseline_rps:
        lines.append(f"  read API / bare ASGI throughput: {h.read_rps / h.baseline_rps:.0%}")
    lines.append("")
    lines.append("flash-sale surge (events through the gateway + wrk reads at the same time):")
    lines.append(
        f"  {'events/s':>9}{'achieved':>9}{'lag F/S':>12}{'read rps':>9}{'p50 ms':>8}"
        f"{'p99 ms':>8}{'srv p99':>8}  {'click->list p50/p99 ms':<34}{'sold-out->gone p50/p99 ms'}"
    )
    for s in summarize_stages(run):
        lines.append(
            f"  {s.rate:>9.0f}{fmt(s.achieved_eps, 0):>9}"
            f"{fmt(s.flink_lag_end, 0) + '/' + fmt(s.scorer_lag_end, 0):>12}"
            f"{fmt(s.read_rps, 0):>9}{fmt(s.read_p50_ms, 2):>8}{fmt(s.read_p99_ms, 2):>8}"
            f"{fmt(s.srv_p99_ms, 2):>8}  {probe_cell(s.click, s.click_unchanged):<34}"
            f"{probe_cell(s.soldout, s.soldout_superseded, 'superseded')}"
        )
    lines.append("")
    lines.append("answers by source (surge | quiet read API):")
    surge = source_shares(surge_served(run))
    quiet = source_shares(run.quiet_served)
    for key, label in GROUPS:
        lines.append(f"  {label:<34}{_pct(surge[key]):>7} |{_pct(quiet[key]):>7}")
    sd, qd = degraded_shares(run)
    lines.append(f"  {DEGRADED_LABEL:<34}{_pct(sd):>7} |{_pct(qd):>7}")
    lines.append("errors: " + (", ".join(f"{k}={v}" for k, v in run.errors.items()) or "none"))
    lines.append("")
    for target, reached, verdict, note in targets(run):
        lines.append(f"  {verdict:<7}{target:<58}{reached:>12}  {note}")
    return "\n".join(lines)


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
        f"(ramp {m.get('ramp', '?')}, events/s:seconds); reads come from wrk, a separate "
        f"process, at {run.connections} connections.",
        "",
        "## Reads: the read API next to its honest ceiling",
        "",
        f"Quiet phase ({m.get('quiet_s', '?')} s per server and round): the same wrk script "
        "(the same shoppers in the same order) against a bare ASGI app under uvicorn "
        "(`bench/bare_asgi.py`: the same `ReadPath`, the same Redis round trip, the same "
        "bytes, no framework, no metrics) and against the BentoML read API.",
        "",
        "| server | rps | p50 ms | p99 ms | server p50 ms | server p99 ms | CPU us/request "
        "| errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in run.quiet:
        out.append(
            f"| {r.name} | {r.rps:.0f} | {fmt(r.p50_ms, 2)} | {fmt(r.p99_ms, 2)} | "
            f"{fmt(r.srv_p50_ms, 2)} | {fmt(r.srv_p99_ms, 2)} | {fmt(r.cpu_us, 0)} | "
            f"{r.errors} |"
        )
    if h.baseline_rps:
        out += [
            "",
            f"Read API throughput = **{h.read_rps / h.baseline_rps:.0%}** of the bare app's. "
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
        "under wrk at the same time (client side; server p99 from /metrics), and the "
        "freshness probes sent during the stage (p50 / p99 ms; *unseen* = not observed "
        f"within {run.probe_timeout_s:.0f} s nor by the end of the drain "
        f"({run.meta.get('drain_s', '?')} s after the ramp), counted as slower than every "
        "seen one).",
        "",
        "| events/s | achieved | Flink lag | scorer lag | sustained | read rps | read p50 ms "
        "| read p99 ms | server p99 ms | click -> updated list | sold-out -> gone |",
        "|---:|---:|---:|---:|---|---:|---:|---:|---:|---|---|",
    ]
    for s in summarize_stages(run):
        out.append(
            f"| {s.rate:.0f} | {fmt(s.achieved_eps, 0)} | {fmt(s.flink_lag_end, 0)} | "
            f"{fmt(s.scorer_lag_end, 0)} | {'yes' if s.sustained else 'no'} | "
            f"{fmt(s.read_rps, 0)} | {fmt(s.read_p50_ms, 2)} | {fmt(s.read_p99_ms, 2)} | "
            f"{fmt(s.srv_p99_ms, 2)} | {probe_cell(s.click, s.click_unchanged)} | "
            f"{probe_cell(s.soldout, s.soldout_superseded, 'superseded')} |"
        )
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
    surge, quiet = source_shares(surge_served(run)), source_shares(run.quiet_served)
    out += [
        "## Answers by source",
        "",
        "| source | surge | quiet |",
        "|---|---:|---:|",
    ]
    out += [f"| {label} | {_pct(surge[key])} | {_pct(quiet[key])} |" for key, label in GROUPS]
    sd, qd = degraded_shares(run)
    out += [
        f"| {DEGRADED_LABEL} | {_pct(sd)} | {_pct(qd)} |",
        "",
        "*Degraded* answers are counted inside the rows above: when the read API's one Redis "
        "round trip takes longer than its bound (`FLASHREC_SERVING_REDIS_TIMEOUT_MS`, 100 ms) "
        "it answers from process memory (this worker's copy of the shopper's last list, "
        "reported as last-known-good, else popularity) instead of waiting: a sign of an "
        "overloaded machine, not of missing lists.",
        "",
        "The wrk mix: 60% known shoppers with a cached list, 20% anonymous sessions with one, "
        "20% fresh anonymous sessions (segment tier by design).",
        "",
        "## Errors",
        "",
    ]
    out += [f"- {k}: {v}" for k, v in run.errors.items()] or ["- none"]
    out += [
        "",
        "## Targets",
        "",
        "| target | reached | verdict | conditions |",
        "|---|---:|---|---|",
    ]
    out += [f"| {t} | {r} | {v} | {n} |" for t, r, v, n in targets(run)]
    if m.get("notes"):
        out += ["", "## Notes", ""] + [f"- {n}" for n in m["notes"]]
    out += ["", "```", last, "```", ""]
    return "\n".join(out)


# -- Prometheus text ------------------------------------------------------------------------

_SAMPLE = re.compile(r"^([A-Za-z_:][\w:]*)(?:\{([^}]*)\})?\s+([-+\d.eEinfNa]+)", re.M)
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def metric_samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    """(labels, value) of every sample called ``name`` in a Prometheus exposition."""
    out = []
    for metric, labels, value in _SAMPLE.findall(text):
        if metric == name:
            out.append((dict(_LABEL.findall(labels or "")), float(value)))
    return out


def served_counts(text: str) -> dict[tuple[str, str], float]:
    """The read API's answers so far per (source, tier)."""
    out: dict[tuple[str, str], float] = {}
    for labels, v in metric_samples(text, "flashrec_read_served_total"):
        key = (labels.get("source", ""), labels.get("tier", ""))
        out[key] = out.get(key, 0.0) + v
    return out


def degraded_count(text: str) -> float:
    """The read API's answers so far served from process memory (Redis too slow/away)."""
    return sum(v for _, v in metric_samples(text, "flashrec_read_degraded_total"))


def server_errors(text: str) -> float:
    """5xx answers so far of a BentoML service (``*_request_total`` by response code)."""
    total = 0.0
    for metric, labels, value in _SAMPLE.findall(text):
        if metric.endswith("_request_total"):
            code = dict(_LABEL.findall(labels or "")).get("http_response_code", "")
            if code.startswith("5"):
                total += float(value)
    return total
