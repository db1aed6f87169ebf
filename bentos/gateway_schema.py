"""OpenAPI 3.1 description of the event gateway, built from the event model and the limits.

WHY built, not written: the event schema comes from the pydantic models that validate the
events (``flashrec.events``) and the batch and body limits from ``GatewayConfig``, so the
published contract cannot drift from what the gateway does. Served at
GET /openapi/gateway.json; the fuzz tests generate requests from it.
"""

from __future__ import annotations

from typing import Any

from bentos.gateway_config import GatewayConfig
from flashrec.events import event_json_schema

_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "string", "description": "what was wrong"}},
}
_VERDICT = {
    "type": "object",
    "required": ["index", "event_id", "status", "reason", "field"],
    "properties": {
        "index": {"type": "integer", "minimum": 0},
        "event_id": {"type": ["string", "null"]},
        "status": {"type": "string", "enum": ["accepted", "rejected"]},
        "reason": {"type": ["string", "null"], "description": "why it was rejected"},
        "field": {"type": ["string", "null"], "description": "the field at fault"},
    },
}
_ANSWER = {
    "type": "object",
    "required": ["accepted", "rejected", "dead_lettered", "results"],
    "properties": {
        "accepted": {"type": "integer", "minimum": 0},
        "rejected": {"type": "integer", "minimum": 0},
        "dead_lettered": {
            "type": "integer",
            "minimum": 0,
            "description": "rejected events recorded in the dead-letter stream (all of them, "
            "unless that append failed after the accepted events were appended)",
        },
        "results": {"type": "array", "items": _VERDICT},
    },
}


def _error_response(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ERROR}}}


def gateway_openapi(config: GatewayConfig) -> dict[str, Any]:
    """The gateway's OpenAPI document for these limits."""
    event = event_json_schema(ref_template="#/components/schemas/{model}")
    components = event.pop("$defs")
    components["Event"] = event
    ref = {"$ref": "#/components/schemas/Event"}
    body = {
        "oneOf": [
            ref,
            {
                "type": "array",
                "minItems": 1,
                "maxItems": config.max_batch,
                "items": {"anyOf": [ref, {"type": "string", "description": "a raw event line"}]},
            },
        ]
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "flashrec event gateway", "version": "1"},
        "paths": {
            "/events": {
                "post": {
                    "summary": "one event, or a batch; a verdict per event",
                    "description": (
                        "200 with a verdict per event once the body is readable: rejected "
                        "events are dead-lettered with the reason, never dropped. 4xx only "
                        "when the body as a whole is unreadable. Bodies over "
                        f"{config.max_body_bytes} bytes get 413, bodies slower than "
                        f"{config.body_timeout_s:g} s get 408. Retry on 503: nothing was "
                        "accepted."
                    ),
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": body}},
                    },
                    "responses": {
                        "200": {
                            "description": "verdicts",
                            "content": {"application/json": {"schema": _ANSWER}},
                        },
                        "400": _error_response("the body is not a JSON event or batch"),
                        "408": _error_response("the body did not arrive in time"),
                        "413": _error_response("body or batch over the limits"),
                        "503": _error_response("event log unavailable: nothing was accepted"),
                    },
                }
            }
        },
        "components": {"schemas": components},
    }
