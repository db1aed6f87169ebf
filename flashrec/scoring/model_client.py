"""HTTP client of the model service (``bentos.model_service``), for the scorer only.

WHY chunks sent concurrently: the service's adaptive batcher merges requests that arrive
together into one model call, so the scorer sends its batch as several mid-sized requests
at once instead of one huge request (which would wait for the slowest row) or one request
per shopper (HTTP overhead dominates). Any transport failure or 5xx is reported as
``ModelServiceDown``: the caller then keeps the shopper's current list instead of writing
something worse.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx


class ModelServiceDown(RuntimeError):
    """The model service did not answer usefully (connection, timeout, 5xx, bad body)."""


class ModelClient:
    """``rank`` queries ``{recent_items, k, variant, user}`` -> ``{items, scores,
    model_version}``; ``user`` is the shopper's ``user_activity`` online row (or None),
    from which the ranker builds its shopper features."""

    def __init__(
        self, base_url: str, *, timeout_s: float = 10.0, chunk: int = 32, parallel: int = 4
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.chunk = chunk
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout_s)
        self._pool = ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="model-client")

    def _post(self, path: str, body: dict[str, Any], retries: int = 2) -> Any:
        try:
            resp = self._http.post(path, json=body)
        except httpx.HTTPError as exc:
            raise ModelServiceDown(f"{self.base_url}{path}: {exc!r}") from exc
        if resp.status_code == 503 and retries > 0:  # batcher queue full: back off, retry
            time.sleep(0.2 * (3 - retries))
            return self._post(path, body, retries - 1)
        if resp.status_code != 200:
            raise ModelServiceDown(f"{self.base_url}{path}: HTTP {resp.status_code}")
        try:
            return resp.json()
        except ValueError as exc:
            raise ModelServiceDown(f"{self.base_url}{path}: unreadable body") from exc

    def rank(self, queries: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """Ranked lists, one per query in order (all or nothing)."""
        if not queries:
            return []
        chunks = [list(queries[i : i + self.chunk]) for i in range(0, len(queries), self.chunk)]
        results = list(self._pool.map(lambda c: self._post("/rank", {"queries": c}), chunks))
        out: list[dict[str, Any]] = []
        for chunk, res in zip(chunks, results, strict=True):
            if not isinstance(res, list) or len(res) != len(chunk):
                raise ModelServiceDown("model service answered the wrong number of lists")
            out.extend(res)
        return out

    def info(self) -> dict[str, Any]:
        """``{variant: model_version}`` of the loaded models and the catalog's version."""
        return dict(self._post("/info", {}))

    def catalog(self) -> dict[str, Any]:
        """``{"model_version": ..., "catalog": <Catalog.to_json()>}`` of the champion."""
        return dict(self._post("/catalog", {}))

    def close(self) -> None:
        self._pool.shutdown(wait=False)
        self._http.close()
