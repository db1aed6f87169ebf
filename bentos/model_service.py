"""Model inference service: ranked lists for batches of shopper queries.

``bentoml serve bentos.model_service:ModelService``. Only the background scorer calls it
(``flashrec.scoring.model_client``); the storefront read API never does, so a slow or
dead model can never slow a page. It answers with the versions the rollout pins in Redis
(champion, and the challenger while one is under test), loaded from the BentoML model
store (``bentos.model_registry``) and hot-swapped when the pins change
(``bentos.model_pins``): a new challenger or a promotion needs no restart.

``POST /rank`` is batchable: BentoML's adaptive batcher merges the query lists of requests
arriving together (up to ``MAX_BATCH`` queries, within ``MAX_LATENCY_MS``) into
one call, so tier-1 candidate generation and the XGBoost ranker run on large matrices.
Each query names a variant; a variant with no pinned model is answered by the champion,
and ``model_version`` says which model answered. A model that fails fails only its own
queries: they come back with ``error`` set and no items (the scorer counts them against
that variant, which is what the rollout's error guardrail reads). A query may carry the shopper's
``user_activity`` online row (``user``); the ranker turns it into its shopper features
exactly as in training (``flashrec.recsys.shopper_features``); without it they are missing.
``POST /info`` and ``POST /catalog`` let the scorer see versions and fetch the catalog
(content tier, segment lists) without importing training code.

GPU: set ``FLASHREC_MODEL_DEVICE=cuda`` (Settings ``model_device``) where XGBoost has CUDA;
the ranker's booster then predicts on the GPU. The default is CPU.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from typing import Any

os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")

import bentoml  # noqa: E402
from pydantic import BaseModel, Field  # noqa: E402

from bentos import model_registry  # noqa: E402
from bentos.admin import AdminConfig, AdminServer, is_first_worker  # noqa: E402
from bentos.model_metrics import ModelMetrics, admin_metrics  # noqa: E402
from bentos.model_pins import PinnedModels  # noqa: E402
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
    error: str | None = None


@bentoml.service(
    name="flashrec-model",
    workers=1,
    traffic={"timeout": 60},
    logging={"access": {"enabled": False}},
)
class ModelService:
    def __init__(self) -> None:
        import redis

        from flashrec.adaptivity.rollout_store import read_state

        settings = Settings.from_env()
        device = settings.model_device
        client = redis.Redis.from_url(settings.redis_url, socket_timeout=2.0)

        def read_pins() -> dict[str, str] | None:
            state = read_state(client)
            return state.pins() if state is not None else None

        self.pinned = PinnedModels(
            model_registry.load,
            read_pins,
            model_registry.stage_versions,
            prepare=lambda m: m.use_device(device),  # ranker and sequence model
            interval_s=settings.model_watch_interval_s,
        )
        self.pinned.start()
        self.metrics = ModelMetrics()
        self.admin: AdminServer | None = None
        if is_first_worker():
            self.admin = AdminServer(
                "model_service",
                AdminConfig.for_service(settings, "model_service"),
                {"/metrics": functools.partial(admin_metrics, self.pinned)},
            )
            self.admin.start()
        log.info(
            "model service ready: %s on %s",
            {k: m.model_version for k, m in self.pinned.current.models.items()},
            device,
        )

    @property
    def models(self) -> dict[str, CatalogModel]:
        return dict(self.pinned.current.models)

    @bentoml.api(batchable=True, max_batch_size=MAX_BATCH, max_latency_ms=MAX_LATENCY_MS)
    def rank(self, queries: list[Query]) -> list[Ranked]:
        """One ranked list per query, in order (queries grouped by model, k by max)."""
        serving = self.pinned.current  # read once: this batch sees one consistent set
        started = time.perf_counter()
        failed: dict[str, int] = {}
        out: list[Ranked | None] = [None] * len(queries)
        by_model: dict[str, list[int]] = {}
        for i, q in enumerate(queries):
            name, _ = serving.for_variant(q.variant)
            by_model.setdefault(name, []).append(i)
        for name, idx in by_model.items():
            model = serving.models[name]
            k = max(queries[i].k for i in idx)
            try:
                lists = model.recommend_batch(
                    [queries[i].recent_items for i in idx], k, [queries[i].user for i in idx]
                )
            except Exception as exc:  # noqa: BLE001 - one model's failure is its own
                log.exception(
                    "model %s (%s) failed on %d queries", name, model.model_version, len(idx)
                )
                for i in idx:
                    failed[queries[i].variant] = failed.get(queries[i].variant, 0) + 1
                    out[i] = Ranked(
                        items=[],
                        scores=[],
                        model_version=model.model_version,
                        variant=queries[i].variant,
                        error=f"{type(exc).__name__}: {exc}"[:300],
                    )
                continue
            for i, ranked in zip(idx, lists, strict=True):
                top = ranked[: queries[i].k]
                out[i] = Ranked(
                    items=[item for item, _ in top],
                    scores=[score for _, score in top],
                    model_version=model.model_version,
                    variant=queries[i].variant,
                )
        self.metrics.ranked(len(queries), time.perf_counter() - started, failed)
        return [r for r in out if r is not None]

    @bentoml.api
    def info(self) -> dict[str, Any]:
        """``{variant: model_version}`` being served, the pins, and selection metrics."""
        serving = self.pinned.current
        return {
            "versions": {k: m.model_version for k, m in serving.models.items()},
            "pins": dict(serving.pins),
            "swaps": self.pinned.swaps,
            "last_error": self.pinned.last_error,
            "metrics": {k: m.metrics for k, m in serving.models.items()},
        }

    @bentoml.api
    def catalog(self) -> dict[str, Any]:
        """The champion's catalog (items, attributes, popularity per segment)."""
        champion = self.pinned.current.models["champion"]
        return {"model_version": champion.model_version, "catalog": champion.catalog.to_json()}
