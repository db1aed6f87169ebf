"""OpenAPI 3 description of the read API, built from the same constants the validator uses.

WHY hand-written: the hot route is a raw ASGI app (see ``read_asgi``) so BentoML cannot
derive its schema; deriving it here from ``read_core``'s limits keeps docs and validation
in step (a unit test checks that). Served at GET /openapi/read.json. Admin routes
(/metrics, /ab/stats) are not part of it: they are not on the storefront's port.
"""

from __future__ import annotations

from typing import Any

from bentos.read_query import ID_PATTERN, K_DEFAULT, K_MAX, K_MIN, LABEL_PATTERN


def _param(name: str, schema: dict[str, Any], doc: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": doc}


_ITEM = {
    "type": "object",
    "properties": {"item_id": {"type": "string"}, "score": {"type": "number"}},
}

_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "string", "description": "what was wrong"}},
}

OPENAPI: dict[str, Any] = {
    "openapi": "3.0.2",
    "info": {"title": "flashrec read API", "version": "1"},
    "paths": {
        "/recommendations": {
            "get": {
                "summary": "k in-stock recommendations for a shopper, from the Redis cache",
                "description": "Exactly one of user_id or session_id. Never runs a model.",
                "parameters": [
                    _param("user_id", {"type": "string", "pattern": ID_PATTERN}, "known shopper"),
                    _param("session_id", {"type": "string", "pattern": ID_PATTERN}, "anonymous"),
                    _param(
                        "k",
                        {
                            "type": "integer",
                            "minimum": K_MIN,
                            "maximum": K_MAX,
                            "default": K_DEFAULT,
                        },
                        "number of items",
                    ),
                    _param("device", {"type": "string", "pattern": LABEL_PATTERN}, "segment"),
                    _param("referrer", {"type": "string", "pattern": LABEL_PATTERN}, "segment"),
                    _param("category", {"type": "string", "pattern": LABEL_PATTERN}, "page"),
                    _param("item_id", {"type": "string", "pattern": ID_PATTERN}, "viewed item"),
                ],
                "responses": {
                    "200": {
                        "description": "the answer and where it came from",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "properties": {
                                        "request_id": {"type": "string"},
                                        "shopper": {"type": "string"},
                                        "variant": {"type": "string"},
                                        "model_version": {"type": "string"},
                                        "tier": {
                                            "type": "string",
                                            "enum": [
                                                "personalized",
                                                "content",
                                                "segment",
                                                "popularity",
                                            ],
                                        },
                                        "source": {
                                            "type": "string",
                                            "enum": [
                                                "cache",
                                                "last_known_good",
                                                "segment",
                                                "popularity",
                                            ],
                                        },
                                        "age_ms": {"type": "integer", "nullable": True},
                                        "degraded": {"type": "boolean"},
                                        "padded": {"type": "integer"},
                                        "items": {"type": "array", "items": _ITEM},
                                    },
                                }
                            }
                        },
                    },
                    "400": {
                        "description": "bad parameters",
                        "content": {"application/json": {"schema": _ERROR}},
                    },
                },
            }
        },
    },
}
