"""Catalog models in the BentoML model store: register with a stage label, load by label.

WHY the BentoML store: the model service finds models by tag and the store keeps every
version with its labels and metadata (the selection metrics), so "which model is
champion" is answered in one place. A model is registered only after it was fully fitted
and saved (``bentoml.models.create`` removes the entry if the block raises), so a crash or
a too-small training set never leaves a half model labelled champion.

Stages: ``champion`` (served by default) and ``challenger`` (A/B or shadow). The newest
model carrying a stage label holds that stage: promoting = registering with the label.
"""

from __future__ import annotations

import os
from typing import Any

os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")

import bentoml  # noqa: E402

from flashrec.scoring.catalog_model import CatalogModel  # noqa: E402

MODEL_NAME = "flashrec-catalog"
STAGES = ("champion", "challenger")


def register(
    model: CatalogModel, stage: str = "challenger", tag_version: str | None = None, **labels: str
) -> str:
    """Save ``model`` into the store as ``flashrec-catalog:<model_version>``; returns the tag.

    ``tag_version`` names the store entry when the same model is registered again (store
    tags are immutable): a promotion re-registers the challenger under ``<version>-champion``.
    """
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")
    metric_labels = {k.replace("@", "_at_").lower(): f"{v:.6g}" for k, v in model.metrics.items()}
    with bentoml.models.create(
        f"{MODEL_NAME}:{tag_version or model.model_version}",
        labels={"stage": stage, **metric_labels, **labels},
        metadata={
            "model_version": model.model_version,
            "created_at": model.created_at,
            "metrics": model.metrics,
        },
        module="flashrec.scoring.catalog_model",
    ) as entry:
        model.save(entry.path_of("artifact"))
    return str(entry.tag)


def find(ref: str) -> Any:
    """The store entry for ``ref``: a stage (newest with that label), a version or a tag."""
    if ref in STAGES:
        try:
            models = bentoml.models.list(MODEL_NAME)
        except bentoml.exceptions.NotFound:  # an empty store
            models = []
        staged = [m for m in models if m.info.labels.get("stage") == ref]
        if not staged:
            raise LookupError(f"no {MODEL_NAME} model labelled stage={ref}")
        return max(staged, key=lambda m: m.info.creation_time)
    tag = ref if ":" in ref else f"{MODEL_NAME}:{ref}"
    return bentoml.models.get(tag)


def stage_versions() -> dict[str, str]:
    """``{stage: model_version}`` of the newest model carrying each stage label."""
    out = {}
    for stage in STAGES:
        try:
            out[stage] = str(find(stage).info.metadata["model_version"])
        except LookupError:
            continue
    return out


def serving_champion(redis_url: str) -> CatalogModel | None:
    """The model serving as champion now: the version the rollout pins in Redis, else the
    store's champion label; None before the first model."""
    import redis

    from flashrec.adaptivity.rollout_store import read_state

    try:
        state = read_state(redis.Redis.from_url(redis_url, socket_timeout=5))
    except redis.RedisError:
        state = None
    version = state.champion_version if state and state.champion_version else "champion"
    try:
        return load(version)
    except Exception:  # noqa: BLE001 - no store yet, or no champion: nothing to compare with
        return None


def promote(version: str) -> str:
    """Make the challenger ``version`` the champion (the newest entry labelled champion)."""
    model = load(version)
    return register(
        model, stage="champion", tag_version=f"{version}-champion", promoted_from=version
    )


def load(ref: str = "champion") -> CatalogModel:
    """Load a catalog model by stage, version or tag."""
    return CatalogModel.load(find(ref).path_of("artifact"))


def train_from_lake(settings: Any, stage: str, **fit_kwargs: Any) -> str:
    """Fit on the lake's ``gold/interactions`` (all sessions) with each position's
    point-in-time user row from Feast's offline store, built as the model assets build it
    (``feature_repo.offline.shopper_training_set``), and register the model.

    Needs the Feast registry applied and the ``user_activity`` history in the lake (the
    ``feast_registry`` and ``features_user_activity`` assets), as ``model_training_set`` does.
    """
    from feature_repo.offline import shopper_training_set
    from feature_repo.store import feature_store

    built = shopper_training_set(feature_store(settings), settings)
    model = CatalogModel.fit(
        built.data.sessions, built.data.catalog, shopper_rows=built.shopper_rows, **fit_kwargs
    )
    model.save_versioned(settings.artifacts_dir / "models")
    return register(model, stage)


def main(argv: list[str] | None = None) -> int:
    """``python -m bentos.model_registry register|train|list``."""
    import argparse
    import json

    from flashrec.settings import Settings

    parser = argparse.ArgumentParser(prog="python -m bentos.model_registry")
    sub = parser.add_subparsers(dest="command", required=True)
    reg = sub.add_parser("register", help="register saved artifact folders")
    for stage in STAGES:
        reg.add_argument(f"--{stage}", help=f"artifact folder to register as {stage}")
    train = sub.add_parser("train", help="fit on gold/interactions and register")
    train.add_argument("--stage", default="challenger", choices=STAGES)
    sub.add_parser("list", help="registered models with their labels")
    args = parser.parse_args(argv)
    if args.command == "register":
        for stage in STAGES:
            folder = getattr(args, stage)
            if folder:
                print(register(CatalogModel.load(folder), stage))
    elif args.command == "train":
        print(train_from_lake(Settings.from_env(), args.stage))
    else:
        for m in bentoml.models.list(MODEL_NAME):
            print(json.dumps({"tag": str(m.tag), "labels": m.info.labels}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
