"""The gateway's limits, read from ``Settings``."""

from __future__ import annotations

from dataclasses import dataclass

from flashrec.ingest import DEFAULT_DEDUPE_WINDOW_S
from flashrec.settings import Settings

DEFAULT_MAX_BATCH = 1000


@dataclass(frozen=True)
class GatewayConfig:
    """How big a request may be and how long event ids are remembered."""

    max_batch: int = DEFAULT_MAX_BATCH
    max_body_bytes: int = DEFAULT_MAX_BATCH * 8192
    dedupe_window_s: int = DEFAULT_DEDUPE_WINDOW_S
    dedupe_prefix: str = "flashrec:events:seen:"

    @classmethod
    def from_settings(cls, settings: Settings) -> GatewayConfig:
        return cls(
            max_batch=settings.gateway_max_batch,
            max_body_bytes=settings.gateway_max_body_bytes,
            dedupe_window_s=settings.dedupe_window_s,
            # Next to the stream it protects, so two logs (or two tests) never share ids.
            dedupe_prefix=f"{settings.events_stream}:seen:",
        )
