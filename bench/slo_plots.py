"""PNG plots of the SLO benchmark through the surge: read latency, throughput with the
event rate and consumer lag, and the freshness probes (matplotlib, no display needed).

Pure like ``bench.slo_report``: a ``SloRun`` in, three files out.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.slo_report import (
    CLICK_P99_TARGET_MS,
    READ_P99_TARGET_MS,
    SOLDOUT_P99_TARGET_MS,
    SloRun,
    Stage,
    median_run,
    per_second,
)


def _stage_bands(ax: Any, stages: Sequence[Stage]) -> None:
    for i, st in enumerate(stages):
        ax.axvspan(st.t0, st.t1, color="0.9" if i % 2 else "0.96", zorder=0)
        ax.text(
            (st.t0 + st.t1) / 2,
            0.98,
            f"{st.rate:g}/s",
            transform=ax.get_xaxis_transform(),
            ha="center",
            va="top",
            fontsize=8,
            color="0.3",
        )


def _events_axis(ax: Any, secs: Sequence[dict[str, float]]) -> Any:
    twin = ax.twinx()
    twin.step(
        [r["t"] for r in secs],
        [r["events_per_s"] for r in secs],
        where="post",
        color="tab:gray",
        alpha=0.6,
        label="events/s accepted",
    )
    twin.set_ylabel("events/s accepted (gray)")
    return twin


def _finish(fig: Any, axes: Sequence[Any], path: Path) -> None:
    """One legend under the plot for every line of ``axes`` (twins included), so it never
    hides data or the stage labels; then save."""
    handles, labels = [], []
    for ax in axes:
        h, lab = ax.get_legend_handles_labels()
        handles += h
        labels += lab
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 5), fontsize=8)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    fig.savefig(path, dpi=110)


def plot(run: SloRun, out_dir: Path) -> dict[str, str]:
    """latency.png, throughput.png, freshness.png in ``out_dir``; name -> file name."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    secs = per_second(run.samples)
    mid = [(s.t0 + s.t1) / 2 for s in run.slices]
    files: dict[str, str] = {}

    fig, ax = plt.subplots(figsize=(10, 4.5))
    _stage_bands(ax, run.stages)
    ax.plot(mid, [s.q(50) for s in run.slices], color="tab:blue", label="client p50")
    ax.plot(mid, [s.q(99) for s in run.slices], color="tab:red", label="client p99")
    ax.plot(
        [r["t"] for r in secs],
        [r["server_p99_ms"] for r in secs],
        color="tab:orange",
        linestyle=":",
        label="server p99",
    )
    ax.axhline(READ_P99_TARGET_MS, color="tab:red", linestyle="--", linewidth=0.8)
    ax.set_yscale("log")
    ax.set_xlabel("seconds since the surge started")
    ax.set_ylabel("read latency, ms (log)")
    ax.set_title("Read API latency through the surge (open loop, from due times)")
    twin = _events_axis(ax, secs)
    _finish(fig, [ax, twin], out_dir / "latency.png")
    plt.close(fig)
    files["latency"] = "latency.png"

    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(10, 6.5), sharex=True)
    _stage_bands(ax, run.stages)
    ax.plot(mid, [s.rps for s in run.slices], color="tab:blue", label="read rps (open loop)")
    ax.plot(
        [r["t"] for r in secs],
        [r["server_rps"] for r in secs],
        color="tab:cyan",
        linestyle=":",
        label="answers/s (server)",
    )
    base = median_run([r for r in run.quiet if r.name == "bare_asgi"])
    if base is not None:
        ax.axhline(base.rps, color="tab:green", linestyle="--", linewidth=0.8)
        ax.text(
            ax.get_xlim()[1], base.rps, "bare ASGI, quiet ", ha="right", va="bottom", fontsize=8
        )
    ax.set_ylabel("reads per second")
    ax.set_ylim(bottom=0)
    ax.set_title("Throughput through the surge")
    _stage_bands(ax2, run.stages)
    ax2.step(
        [r["t"] for r in secs],
        [r["events_per_s"] for r in secs],
        where="post",
        color="tab:gray",
        label="events/s accepted",
    )
    ax2.set_yscale("symlog", linthresh=10)
    ax2.set_ylabel("events/s (symlog)")
    lag = ax2.twinx()
    lags = [r["flink_lag"] for r in secs]
    scorer = [r["scorer_lag"] for r in secs]
    lag.plot([r["t"] for r in secs], lags, color="tab:purple", label="Flink lag (events)")
    lag.plot([r["t"] for r in secs], scorer, color="tab:brown", linestyle=":", label="scorer lag")
    lag.set_ylim(0, max([x for x in lags + scorer if x == x] + [0.0]) * 1.1 + 10)
    lag.set_ylabel("consumer lag, entries")
    ax2.set_xlabel("seconds since the surge started")
    _finish(fig, [ax, ax2, lag], out_dir / "throughput.png")
    plt.close(fig)
    files["throughput"] = "throughput.png"

    fig, ax = plt.subplots(figsize=(10, 4.5))
    _stage_bands(ax, run.stages)
    ceiling = run.probe_timeout_s * 1000
    for kind, color, label, target in (
        ("click", "tab:blue", "click -> updated list", CLICK_P99_TARGET_MS),
        ("soldout", "tab:orange", "sold-out -> gone", SOLDOUT_P99_TARGET_MS),
    ):
        seen = [p for p in run.probes if p.kind == kind and p.ms is not None]
        lost = [p for p in run.probes if p.kind == kind and p.outcome == "unseen"]
        same = [p for p in run.probes if p.kind == kind and p.outcome == "unchanged"]
        ax.scatter([p.t for p in seen], [max(p.ms, 0.1) for p in seen], s=10, c=color, label=label)
        if lost:
            ax.scatter(
                [p.t for p in lost], [ceiling] * len(lost), s=24, c=color, marker="x",
                label=f"{label}: not seen",
            )  # fmt: skip
        if same:
            ax.scatter(
                [p.t for p in same], [ceiling] * len(same), s=24, c="0.5", marker="+",
                label="click: list unchanged (nothing to wait for)",
            )  # fmt: skip
        ax.axhline(target, color=color, linestyle="--", linewidth=0.8)
    ax.set_yscale("log")
    ax.set_xlabel("seconds since the surge started (when the gateway accepted the probe)")
    ax.set_ylabel("ms (log); top row: no latency")
    ax.set_title("Freshness probes through the surge (dashed: targets)")
    _finish(fig, [ax], out_dir / "freshness.png")
    plt.close(fig)
    files["freshness"] = "freshness.png"
    return files
