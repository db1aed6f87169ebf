"""HTTP client of the model service (``bentos.model_service``), for the scorer only.

WHY chunks sent concurrently: the service's adaptive batcher merges requests that arrive
together into one model call, so the scorer sends its batch as several mid-sized requests
at once instead of one huge request (which would wait for the slowest row) or one request
per shopper (HTTP overhead dominates). Any transport failure or 5xx is reported as
``ModelServiceDown``: the caller then keeps the shopper's current list instead of writing
something worse. A 4xx (the service refused what was sent) is ``QueryRejected``.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_incrementing


class ModelServiceDown(RuntimeError):
    """The model service did not answer usefully (connection, timeout, 5xx, bad body)."""


class QueryRejected(ValueError):
    """The model service refused the request's content (4xx): not an outage, so the
    caller looks for the query at fault instead of waiting for the service."""


class _Busy(Exception):
    """A 503 from the model service: its batcher's queue is full, worth a retry."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(response.status_code)
        self.response = response


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

    @retry(
        retry=retry_if_exception_type(_Busy),
        wait=wait_incrementing(start=0.2, increment=0.2),
        stop=stop_after_attempt(3),
        retry_error_callback=lambda state: state.outcome.exception().response,
    )
    def _send(self, path: str, body: dict[str, Any]) -> httpx.Response:
        """One POST; a 503 (the batcher's queue is full) is retried twice, backing off."""
        try:
            resp = self._http.post(path, json=body)
        except httpx.HTTPError as exc:
            raise ModelServiceDown(f"{self.base_url}{path}: {exc!r}") from exc
        if resp.status_code == 503:
            raise _Busy(resp)
        return resp

    def _post(self, path: str, body: dict[str, Any]) -> Any:
        resp = self._send(path, body)
        if 400 <= resp.status_code < 500 and resp.status_code not in (408, 429):
            raise QueryRejected(
                f"{self.base_url}{path}: HTTP {resp.status_code}: {resp.text[:200]}"
            )
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
