"""The gateway's published OpenAPI document follows the event model and the limits."""

from __future__ import annotations

from bentos.gateway_config import GatewayConfig
from bentos.gateway_schema import gateway_openapi
from flashrec.settings import Settings


def test_schema_carries_the_configured_limits_and_both_event_kinds():
    config = GatewayConfig.from_settings(
        Settings.from_env(environ={}, gateway_max_batch=7, gateway_body_timeout_s=3.0)
    )
    spec = gateway_openapi(config)
    post = spec["paths"]["/events"]["post"]
    body = post["requestBody"]["content"]["application/json"]["schema"]
    assert body["oneOf"][1]["maxItems"] == 7 and body["oneOf"][1]["minItems"] == 1
    assert f"over {config.max_body_bytes} bytes get 413" in post["description"]
    assert "slower than 3 s get 408" in post["description"]
    schemas = spec["components"]["schemas"]
    assert {"Event", "StorefrontEvent", "CatalogEvent", "Device"} <= set(schemas)
    refs = schemas["Event"]["discriminator"]["mapping"].values()
    assert all(ref.startswith("#/components/schemas/") for ref in refs)
    assert {"200", "400", "408", "413", "503"} == set(post["responses"])


def test_admin_ports_and_token_come_from_settings():
    from bentos.admin import AdminConfig

    settings = Settings.from_env(environ={"FLASHREC_ADMIN_TOKEN": "t"})
    assert AdminConfig.for_service(settings, "gateway") == AdminConfig("127.0.0.1", 3011, "t")
    assert AdminConfig.for_service(settings, "read_api").port == 3012
