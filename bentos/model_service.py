"""Model inference service: ranked lists for batches of shopper queries.

``bentoml serve bentos.model_service:ModelService``. Only the background scorer calls it
(``flashrec.scoring.model_client``); the storefront read API never does, so a slow or
dead model can never slow a page. At start it loads the champion (required) and the
challenger (if one is registered) from the BentoML model store (``bentos.model_registry``).

``POST /rank`` is batchable: BentoML's adaptive batcher merges the query lists of requests
arriving together (up to ``MAX_BATCH`` queries, within ``MAX_LATENCY_MS``) into
one call, so tier-1 candidate generation and the XGBoost ranker run on large matrices.
Each query names a variant; a variant with no model of that stage is answered by the
champion, and ``model_version`` says which model answered. A query may carry the shopper's
``user_activity`` online row (``user``); the ranker turns it into its shopper features
exactly as in training (``flashrec.recsys.shopper_features``); without it they are missing.
``POST /info`` and ``POST /catalog`` let the scorer see versions and fetch the catalog
(content tier, segment lists) without importing training code.

GPU: set ``FLASHREC_MODEL_DEVICE=cuda`` (Settings ``model_device``) where XGBoost has CUDA;
the ranker's booster then predicts on the GPU. The default is CPU.
"""

from __future__ import annotations

import logging
import os
from typing import Any

os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")

import bentoml  # noqa: E402
from pydantic import BaseModel, Field  # noqa: E402

from bentos import model_registry  # noqa: E402
from flashrec.scoring.catalog_model import CatalogModel  # noqa: E402
from flashrec.settings import Settings  # noqa: E402

log = logging.getLogger("flashrec.model_service")
MAX_BATCH = 256
# The batcher answers 503 to requests it cannot serve within this bound; the only caller is
# the background scorer, so a generous bound trades nothing visible for fewer refusals.
MAX_LATENCY_MS = 5000
MAX_K = 500


class Query(BaseModel):
    recent_items: list[str] = Field(default_factory=list, description="most recent first")
    k: int = Field(default=50, ge=1, le=MAX_K)
    variant: str = "champion"
    user: dict[str, Any] | None = Field(
        default=None, description="user_activity online row (Feast); null: anonymous"
    )


class Ranked(BaseModel):
    items: list[str]
    scores: list[float]
    model_version: str
    variant: str


def _use_device(model: CatalogModel, device: str) -> None:
    """Move the ranker's predictions to ``device`` (``cuda`` where XGBoost supports it)."""
    booster = model.model.ranker.booster
    if booster is not None and device != "cpu":
        booster.set_param({"device": device})


@bentoml.service(
    name="flashrec-model",
    workers=1,
    traffic={"timeout": 60},
    logging={"access": {"enabled": False}},
)
class ModelService:
    def __init__(self) -> None:
        settings = Settings.from_env()
        device = settings.model_device
        self.models: dict[str, CatalogModel] = {"champion": model_registry.load("champion")}
        try:
            self.models["challenger"] = model_registry.load("challenger")
        except LookupError:
            log.info("no challenger registered: every variant is answered by the champion")
        for m in self.models.values():
            _use_device(m, device)
        log.info(
            "model service ready: %s on %s",
            {k: m.model_version for k, m in self.models.items()},
            device,
        )

    @bentoml.api(batchable=True, max_batch_size=MAX_BATCH, max_latency_ms=MAX_LATENCY_MS)
    def rank(self, queries: list[Query]) -> list[Ranked]:
        """One ranked list per query, in order (queries grouped by model, k by max)."""
        out: list[Ranked | None] = [None] * len(queries)
        by_model: dict[str, list[int]] = {}
        for i, q in enumerate(queries):
            stage = q.variant if q.variant in self.models else "champion"
            by_model.setdefault(stage, []).append(i)
        for stage, idx in by_model.items():
            model = self.models[stage]
            k = max(queries[i].k for i in idx)
            lists = model.recommend_batch(
                [queries[i].recent_items for i in idx], k, [queries[i].user for i in idx]
            )
            for i, ranked in zip(idx, lists, strict=True):
                top = ranked[: queries[i].k]
                out[i] = Ranked(
                    items=[item for item, _ in top],
                    scores=[score for _, score in top],
                    model_version=model.model_version,
                    variant=queries[i].variant,
                )
        return [r for r in out if r is not None]

    @bentoml.api
    def info(self) -> dict[str, Any]:
        """``{stage: model_version}`` of the loaded models, and their selection metrics."""
        return {
            "versions": {k: m.model_version for k, m in self.models.items()},
            "metrics": {k: m.metrics for k, m in self.models.items()},
        }

    @bentoml.api
    def catalog(self) -> dict[str, Any]:
        """The champion's catalog (items, attributes, popularity per segment)."""
        champion = self.models["champion"]
        return {"model_version": champion.model_version, "catalog": champion.catalog.to_json()}
