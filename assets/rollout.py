"""Registration and rollout as assets: a model that passed its checks enters the store and
the rollout (champion, shadow, or queued behind a running test); the rollout asset takes
each decision of the running test and applies it to every service at once.

Thin: the store is ``bentos.model_registry``, the transitions are
``flashrec.adaptivity.rollout`` (pure), the look at the counters is
``flashrec.adaptivity.rollout_look``, the state every service follows is
``flashrec.adaptivity.rollout_store``. Every step lands in the ledger
(``var/artifacts/rollout/decisions.jsonl``) and in this asset's metadata.
"""

import json
from typing import Any

import dagster as dg
import redis

from assets.compute import k8s_op_tags
from assets.groups import MODELS
from assets.resources import LakeResource
from bentos import model_registry
from flashrec.adaptivity import rollout_store
from flashrec.adaptivity.rollout import (
    CHALLENGER,
    CHAMPION,
    CONTINUE,
    PROMOTE,
    Ledger,
    RolloutState,
    Step,
    register,
)
from flashrec.adaptivity.rollout_look import RolloutPolicy, look
from flashrec.scoring.catalog_model import CatalogModel
from flashrec.settings import Settings


def ledger_of(settings: Settings) -> Ledger:
    return Ledger(settings.artifacts_dir / "rollout" / "decisions.jsonl")


def current_state(client: redis.Redis, settings: Settings) -> RolloutState | None:
    """Redis' state, else the ledger's, else the store's champion label (a store filled
    before the rollout kept state): the one place a deployment's history is picked up."""
    state = rollout_store.current(client, ledger_of(settings))
    if state is None:
        champion = model_registry.stage_versions().get(CHAMPION)
        if champion:
            state = RolloutState(champion, canary_share=settings.canary_share)
            rollout_store.write_state(client, state)
    return state


def enter_rollout(
    settings: Settings, model: CatalogModel, actor: str, reason: str
) -> tuple[str, Step]:
    """Register ``model`` in the store and in the rollout (champion when there is none,
    else shadow, or queued behind a running test); returns the store tag and the step."""
    client = redis.Redis.from_url(settings.redis_url)
    state = current_state(client, settings)
    first = state is None or not state.champion_version
    tag = model_registry.register(model, stage=CHAMPION if first else CHALLENGER)
    base = state or RolloutState("", canary_share=settings.canary_share)
    step = register(base, model.model_version, actor, reason)
    rollout_store.apply(client, ledger_of(settings), step)
    return tag, step


def _actor(context: dg.AssetExecutionContext) -> str:
    return f"dagster:{context.run.run_id[:8]}"


@dg.asset(group_name=MODELS, kinds={"bentoml"}, op_tags=k8s_op_tags("light"))
def registered_model(
    context: dg.AssetExecutionContext, lake: LakeResource, deployed_model: str
) -> dg.MaterializeResult:
    """Into the BentoML model store, then into the rollout: champion when there is none,
    else a challenger that enters shadow, or waits while another challenger is under test
    (the model under test is never replaced). Runs only when the evaluation checks passed
    (``deployed_model`` is refitted only then)."""
    settings = lake.settings()
    model = CatalogModel.load(deployed_model)
    tag, step = enter_rollout(
        settings, model, _actor(context), "retrained model passed its evaluation checks"
    )
    context.log.info("%s: %s", step.action, step.reason)
    return dg.MaterializeResult(
        metadata={
            "tag": tag,
            "action": step.action,
            "reason": step.reason,
            "model_version": model.model_version,
            "pins": json.dumps(step.state.pins()),
            "stage": step.state.stage,
        }
    )


def _history_table(ledger: Ledger) -> str:
    rows = [
        f"| {r['action']} | {r['before']} -> {r['after']} | {r['reason']} | {r['actor']} |"
        for r in ledger.records(last=20)
    ]
    return "| action | stage | why | who |\n|---|---|---|---|\n" + "\n".join(rows)


def _figures(step: Step) -> dict[str, Any]:
    """The decision's numbers, flat, for the asset's metadata (and the UI's plots)."""
    m = step.metrics
    out: dict[str, Any] = {}
    for arm in ("champion", "challenger"):
        row = m.get(arm)
        if isinstance(row, dict):
            for key in ("sessions", "conversions", "rate", "impressions", "clicks", "errors"):
                if key in row:
                    out[f"{arm}_{key}"] = row[key]
    conv = m.get("conversion")
    if isinstance(conv, dict):
        out.update(
            diff=conv["diff"],
            p_value=conv["p_value"],
            ci_low=conv["ci_low"],
            ci_high=conv["ci_high"],
        )
    if m.get("uplift_pct") is not None:
        out["uplift_pct"] = m["uplift_pct"]
    for key in ("lists", "errors", "overlap_at_10", "score_mean", "champion_score_mean"):
        if key in m and not isinstance(m[key], dict):
            out[f"shadow_{key}"] = m[key]
    return {k: float(v) if isinstance(v, int | float) else v for k, v in out.items()}


@dg.asset(
    group_name=MODELS, deps=[registered_model], kinds={"python"}, op_tags=k8s_op_tags("light")
)
def model_rollout(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    """One look at the running test and its decision, applied to every service at once:
    shadow -> canary -> promote or roll back by the sequential test (always-valid p-values,
    guardrails on errors and CTR); an idle rollout starts the queued model's test."""
    settings = lake.settings()
    client = redis.Redis.from_url(settings.redis_url)
    ledger = ledger_of(settings)
    state = current_state(client, settings)
    policy = RolloutPolicy.from_settings(settings)
    design = policy.design
    step = look(client, state, policy, _actor(context)) if state is not None else None
    if step is None:
        stage = state.stage if state else "none"
        return dg.MaterializeResult(metadata={"stage": stage, "action": "nothing to do"})
    if step.action == PROMOTE and state is not None and state.challenger_version:
        model_registry.promote(state.challenger_version)  # the store's label follows
    rollout_store.apply(client, ledger, step)
    context.log.info("%s: %s", step.action, step.reason)
    follow = look(client, step.state, policy, _actor(context)) if step.action != CONTINUE else None
    if follow is not None and follow.action == "shadow":
        rollout_store.apply(client, ledger, follow)
        context.log.info("%s: %s", follow.action, follow.reason)
    final = follow.state if follow is not None and follow.action == "shadow" else step.state
    shares, shadow = final.traffic()
    return dg.MaterializeResult(
        metadata={
            "action": step.action,
            "reason": step.reason,
            "stage": final.stage,
            "champion": final.champion_version,
            "challenger": final.challenger_version or "none",
            "test": (state.test_id if state else None) or "none",
            "shares": json.dumps(shares),
            "shadow": json.dumps(shadow),
            "design": json.dumps(
                {
                    "alpha": design.alpha,
                    "mde": design.mde,
                    "min_sessions": design.min_sessions,
                    "max_error_rate": design.max_error_rate,
                    "test": "mSPRT, tau = mde",
                }
            ),  # fmt: skip
            **_figures(step),
            "decisions": dg.MetadataValue.md(_history_table(ledger)),
        }
    )


ROLLOUT_ASSETS = [registered_model, model_rollout]
