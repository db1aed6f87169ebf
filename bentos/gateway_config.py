"""The gateway's limits, read from ``Settings``."""

from __future__ import annotations

from dataclasses import dataclass, field

from flashrec.settings import Settings, default_of

DEFAULT_MAX_BATCH = default_of("gateway_max_batch")


@dataclass(frozen=True)
class GatewayConfig:
    """How big and how slow a request may be, and how long event ids are remembered."""

    max_batch: int = DEFAULT_MAX_BATCH
    max_body_bytes: int = DEFAULT_MAX_BATCH * default_of("max_event_bytes") + 65536
    dedupe_window_s: int = default_of("dedupe_window_s")
    dedupe_prefix: str = "flashrec:events:seen:"
    body_timeout_s: float = field(kw_only=True)  # default: FLASHREC_GATEWAY_BODY_TIMEOUT_S

    @classmethod
    def from_settings(cls, settings: Settings) -> GatewayConfig:
        return cls(
            max_batch=settings.gateway_max_batch,
            max_body_bytes=settings.gateway_max_body_bytes,
            dedupe_window_s=settings.dedupe_window_s,
            # Next to the stream it protects, so two logs (or two tests) never share ids.
            dedupe_prefix=f"{settings.events_stream}:seen:",
            body_timeout_s=settings.gateway_body_timeout_s,
        )
