"""Drift detection as an asset with checks that fail visibly, plus the figures and a plot."""

from pathlib import Path

import dagster as dg
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
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

ADAPTIVITY_GROUP = "adaptivity"
DRIFT_ASSET = dg.AssetKey("drift_report")
#: Item feature columns read for the drift measures.
DRIFT_FEATURES = (
    "item_views_5m",
    "item_carts_5m",
    "item_purchases_5m",
    "item_views_1h",
    "item_carts_1h",
    "item_purchases_1h",
    "item_price",
)


MIN_RATE_VIEWS = 20


def drift_columns(raw: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """What drift compares: how shoppers behave around an item (funnel rates) and what it
    costs, not how many of them there are.

    WHY rates: window counts (views in the last hour, the trending score built on them)
    grow with traffic volume, and after any restart or traffic ramp they keep growing
    until their window has filled: PSI on them flags every surge of the *same* behaviour
    as drift, and a surge of the same behaviour needs no new model. A change in *what* is
    bought shows up in the catalog measures (unknown and viral items) and in candidate
    drift; a change in how shoppers convert shows up in these rates.
    """
    out = {"item_price": raw["item_price"]}
    for window in ("5m", "1h"):
        views = raw[f"item_views_{window}"]
        # a rate over a handful of views is noise (and after a restart every window
        # starts near empty): left out (NaN) below MIN_RATE_VIEWS
        enough = views >= MIN_RATE_VIEWS
        with np.errstate(divide="ignore", invalid="ignore"):
            out[f"item_cart_rate_{window}"] = np.where(
                enough, raw[f"item_carts_{window}"] / views, np.nan
            )
            out[f"item_purchase_rate_{window}"] = np.where(
                enough, raw[f"item_purchases_{window}"] / views, np.nan
            )
    return out


def window_rows(table, time_col: str, columns: list[str], hours: float):
    """The rows of the last ``hours`` of event time (all rows when ``hours`` <= 0), only
    the columns asked for: a drift report never loads whole tables."""
    import pyarrow.compute as pc

    dataset = table.delta().to_pyarrow_dataset()
    if hours <= 0:
        return dataset.to_table(columns=[time_col, *columns])
    newest = pc.max(dataset.to_table(columns=[time_col]).column(time_col))
    if not newest.is_valid:
        return dataset.to_table(columns=[time_col, *columns])
    start = pc.subtract(newest, pa.scalar(int(hours * 3600 * 1e6), pa.duration("us")))
    return dataset.to_table(columns=[time_col, *columns], filter=pc.field(time_col) > start)


def compute_drift(lake: LakeResource, known_items: set[str] | None = None) -> DriftReport:
    settings = lake.settings()
    reference = settings.drift_reference_hours
    span = settings.drift_recent_hours + reference if reference > 0 else 0.0
    features = window_rows(
        lake.table("gold/features_item_activity"), "event_timestamp", list(DRIFT_FEATURES), span
    )
    interactions = window_rows(lake.table("gold/interactions"), "event_time", ["item_id"], span)
    to_np = lambda col: col.to_numpy(zero_copy_only=False)  # noqa: E731
    times = to_np(features.column("event_timestamp")).astype("datetime64[us]")
    columns = drift_columns(
        {name: to_np(features.column(name)).astype(float) for name in DRIFT_FEATURES}
    )
    return build_report(
        times,
        columns,
        to_np(interactions.column("event_time")).astype("datetime64[us]"),
        interactions.column("item_id").to_pylist(),
        settings.drift_recent_hours,
        known_items=known_items,
        reference_hours=reference,
    )


#: Shoppers sampled per window for the candidate-position drift (bounded cost).
CANDIDATE_SAMPLE = 400
MIN_SESSIONS = 30
#: First CTR / conversion rate seen per variant: the baseline decay is measured against.
BASELINE_CTR = "flashrec:ab:baseline_ctr"


def _sessions_by_window(lake: LakeResource, cutoff) -> tuple[list[list[str]], list[list[str]]]:
    """The last sessions started before and after ``cutoff`` (within the drift windows)."""
    settings = lake.settings()
    reference = settings.drift_reference_hours
    span = settings.drift_recent_hours + reference if reference > 0 else 0.0
    rows = window_rows(
        lake.table("gold/interactions"), "event_time", ["session_id", "event_seq", "item_id"], span
    ).to_pylist()
    rows.sort(key=lambda r: (r["event_time"], r["event_seq"] or 0))
    sessions: dict[str, list[str]] = {}
    starts: dict[str, object] = {}
    for r in rows:
        items = sessions.setdefault(r["session_id"], [])
        starts.setdefault(r["session_id"], r["event_time"])
        if not items or items[-1] != r["item_id"]:
            items.append(r["item_id"])
    reference_sessions = [
        v for k, v in sessions.items() if starts[k].replace(tzinfo=None) <= cutoff
    ]
    recent = [v for k, v in sessions.items() if starts[k].replace(tzinfo=None) > cutoff]
    return reference_sessions[-CANDIDATE_SAMPLE:], recent[-CANDIDATE_SAMPLE:]


def add_candidate_drift(lake: LakeResource, report: DriftReport, model) -> None:
    """Where the champion ranks what shoppers took next, reference vs recent window."""
    if model is None:
        report.notes.append("no champion model yet: no candidate drift")
        return
    reference, recent = _sessions_by_window(lake, report.cutoff)
    if min(len(reference), len(recent)) < MIN_SESSIONS:
        report.notes.append(
            f"{len(reference)} / {len(recent)} sessions (reference / recent): under "
            f"{MIN_SESSIONS}, no candidate drift"
        )
        return

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
    """Recent window against the reference window: feature PSI/KS, catalog drift (traffic
    on items the serving champion has no embedding for, items gone viral) and where the
    champion ranks what shoppers took next."""
    from bentos.model_registry import serving_champion

    champion = serving_champion(lake.settings().redis_url)
    known = set(champion.vocab.ids) if champion is not None else None
    report = compute_drift(lake, known_items=known)
    add_candidate_drift(lake, report, champion)
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
            # what the retrain sensor acts on: drift in the lake a new model can fix
            "retrain": report.model_stale,
            "retrain_reason": report.retrain_reason([d.variant for d in decayed]),
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
