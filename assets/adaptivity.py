"""Drift detection as an asset with checks that fail visibly, plus the figures and a plot."""

from pathlib import Path

import dagster as dg
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import redis  # noqa: E402

from assets.compute import k8s_op_tags  # noqa: E402
from assets.resources import LakeResource  # noqa: E402
from flashrec.adaptivity.drift import (  # noqa: E402
    PSI_DRIFT,
    PSI_WARN,
    OnlineDecay,
    candidate_drift,
    candidate_positions,
)
from flashrec.adaptivity.report import DriftReport, build_report  # noqa: E402
from flashrec.settings import Settings  # noqa: E402
from orchestration.sensors import DRIFT_ASSET  # noqa: E402

ADAPTIVITY_GROUP = "adaptivity"
#: Numeric item features whose distribution the ranker depends on most.
DRIFT_FEATURES = (
    "item_views_5m",
    "item_carts_5m",
    "item_purchases_5m",
    "item_views_1h",
    "item_carts_1h",
    "item_purchases_1h",
    "item_trending_score",
    "item_price",
)


def compute_drift(lake: LakeResource) -> DriftReport:
    settings = lake.settings()
    features = (
        lake.table("gold/features_item_activity")
        .delta()
        .to_pyarrow_table(columns=["event_timestamp", *DRIFT_FEATURES])
    )
    interactions = (
        lake.table("gold/interactions").delta().to_pyarrow_table(columns=["event_time", "item_id"])
    )
    to_np = lambda col: col.to_numpy(zero_copy_only=False)  # noqa: E731
    times = to_np(features.column("event_timestamp")).astype("datetime64[us]")
    columns = {name: to_np(features.column(name)).astype(float) for name in DRIFT_FEATURES}
    return build_report(
        times,
        columns,
        to_np(interactions.column("event_time")).astype("datetime64[us]"),
        interactions.column("item_id").to_pylist(),
        settings.drift_recent_hours,
    )


#: Shoppers sampled per window for the candidate-position drift (bounded cost).
CANDIDATE_SAMPLE = 400
#: First CTR / conversion rate seen per variant: the baseline decay is measured against.
BASELINE_CTR = "flashrec:ab:baseline_ctr"


def _sessions_by_window(lake: LakeResource, cutoff) -> tuple[list[list[str]], list[list[str]]]:
    rows = (
        lake.table("gold/interactions")
        .delta()
        .to_pyarrow_table(columns=["session_id", "event_time", "event_seq", "item_id"])
        .to_pylist()
    )
    rows.sort(key=lambda r: (r["event_time"], r["event_seq"] or 0))
    sessions: dict[str, list[str]] = {}
    starts: dict[str, object] = {}
    for r in rows:
        items = sessions.setdefault(r["session_id"], [])
        starts.setdefault(r["session_id"], r["event_time"])
        if not items or items[-1] != r["item_id"]:
            items.append(r["item_id"])
    reference = [v for k, v in sessions.items() if starts[k].replace(tzinfo=None) <= cutoff]
    recent = [v for k, v in sessions.items() if starts[k].replace(tzinfo=None) > cutoff]
    return reference[-CANDIDATE_SAMPLE:], recent[-CANDIDATE_SAMPLE:]


def add_candidate_drift(lake: LakeResource, report: DriftReport) -> None:
    """Where the champion ranks what shoppers took next, reference vs recent window."""
    from bentos import model_registry

    try:
        model = model_registry.load("champion")
    except Exception as exc:  # no model yet: nothing to compare, say so
        report.notes.append(f"no champion model for candidate drift ({exc})")
        return
    reference, recent = _sessions_by_window(lake, report.cutoff)

    def recommend(prefixes: list[list[str]], k: int) -> list[list[str]]:
        return [[i for i, _ in row] for row in model.recommend_batch(prefixes, k)]

    drift = candidate_drift(
        candidate_positions(recommend, reference), candidate_positions(recommend, recent)
    )
    if drift is not None:
        report.features.append(drift)


def online_decay(settings: Settings) -> list[OnlineDecay]:
    """Per-variant CTR from the conversion tracking against the first CTR it showed."""
    from flashrec.serving.cache import read_ab_stats

    client = redis.Redis.from_url(settings.redis_url)
    out = []
    for variant, row in read_ab_stats(client).items():
        impressions = int(row.get("impressions", 0))
        if impressions < 500:
            continue
        client.hsetnx(BASELINE_CTR, variant, row["ctr"])
        client.hsetnx(BASELINE_CTR, f"{variant}:conversion", row["conversion_rate"])
        baseline = float(client.hget(BASELINE_CTR, variant) or row["ctr"])
        base_conv = float(client.hget(BASELINE_CTR, f"{variant}:conversion") or 0.0)
        out.append(
            OnlineDecay(
                variant,
                float(row["ctr"]),
                baseline,
                impressions,
                float(row["conversion_rate"]),
                base_conv,
            )
        )
    return out


def plot_drift(report: DriftReport, settings: Settings) -> Path:
    out = settings.artifacts_dir / "drift" / f"drift_{report.cutoff:%Y%m%dT%H%M%S}.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    names = [f.feature for f in report.features]
    values = [f.psi for f in report.features]
    fig, ax = plt.subplots(figsize=(8, 4))
    colors = [
        "tab:red" if v > PSI_DRIFT else "tab:orange" if v > PSI_WARN else "tab:green"
        for v in values
    ]
    ax.barh(names, values, color=colors)
    ax.axvline(PSI_WARN, color="tab:orange", linestyle="--", label=f"warn {PSI_WARN}")
    ax.axvline(PSI_DRIFT, color="tab:red", linestyle="--", label=f"drift {PSI_DRIFT}")
    ax.set_xlabel("PSI (recent window vs reference)")
    ax.set_title(f"Feature drift, cutoff {report.cutoff:%Y-%m-%d %H:%M} UTC")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def _psi_table(report: DriftReport) -> str:
    lines = ["| feature | PSI | KS | p | level |", "|---|---|---|---|---|"]
    for f in sorted(report.features, key=lambda f: -f.psi):
        lines.append(f"| {f.feature} | {f.psi:.3f} | {f.ks_stat:.3f} | {f.ks_p:.2g} | {f.level} |")
    return "\n".join(lines)


@dg.asset(
    key=DRIFT_ASSET,
    check_specs=[
        dg.AssetCheckSpec(
            "features_within_drift_threshold",
            asset=DRIFT_ASSET,
            description="Fails when a feature's PSI passes 0.25.",
        ),
        dg.AssetCheckSpec(
            "online_ctr_not_decayed",
            asset=DRIFT_ASSET,
            description="Fails when a variant's CTR falls below 80% of its own baseline.",
        ),
        dg.AssetCheckSpec(
            "catalog_within_drift_threshold",
            asset=DRIFT_ASSET,
            description="Fails on unknown-item traffic > 5% or viral items.",
        ),
    ],
    deps=["features_item_activity", "gold_interactions"],
    group_name=ADAPTIVITY_GROUP,
    kinds={"python"},
    op_tags=k8s_op_tags("light"),
)
def drift_report(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    """Recent window against the reference window: feature PSI/KS and catalog drift."""
    report = compute_drift(lake)
    add_candidate_drift(lake, report)
    decays = online_decay(lake.settings())
    plot = plot_drift(report, lake.settings())
    context.log.info("drift: %s", report.summary())
    drifted = [f.feature for f in report.drifted_features]
    psi_table = dg.MetadataValue.md(_psi_table(report))
    decayed = [d for d in decays if d.decayed]
    checks = [
        dg.AssetCheckResult(
            check_name="online_ctr_not_decayed",
            passed=not decayed,
            metadata={
                d.variant: f"ctr {d.ctr:.4f} vs baseline {d.baseline_ctr:.4f} "
                f"({d.impressions} impressions)"
                for d in decays
            }
            or {"variants": "none"},
        ),
        dg.AssetCheckResult(
            check_name="features_within_drift_threshold",
            passed=not drifted,
            metadata={"drifted_features": drifted, "features": psi_table},
        ),
        dg.AssetCheckResult(
            check_name="catalog_within_drift_threshold",
            passed=not report.catalog.drifted,
            metadata={
                "unknown_item_share": round(float(report.catalog.unknown_item_share), 4),
                "viral_items": report.catalog.viral_items[:20],
            },
        ),
    ]
    return dg.MaterializeResult(
        check_results=checks,
        metadata={
            "drift_detected": report.drift_detected or bool(decayed),
            "notes": "; ".join(report.notes) or "none",
            "summary": report.summary(),
            "cutoff": report.cutoff.isoformat(),
            "reference_rows": report.reference_rows,
            "recent_rows": report.recent_rows,
            "features": psi_table,
            "drifted_features": drifted,
            "unknown_item_share": round(float(report.catalog.unknown_item_share), 4),
            "viral_items": report.catalog.viral_items[:20],
            "plot": dg.MetadataValue.path(str(plot)),
        },
    )
