"""Configuration enters through one module, and the README documents all of it."""

from __future__ import annotations

from pathlib import Path

import pytest

from flashrec.settings import PROJECT_ROOT, SETTINGS, Settings


def test_defaults_run_on_one_machine():
    settings = Settings.from_env(environ={})
    assert settings.redis_url == "redis://127.0.0.1:6379/0"
    assert settings.lake_dir == settings.var_dir / "lake"
    assert settings.spark_master.startswith("local")


def test_environment_overrides_and_derived_paths(tmp_path):
    settings = Settings.from_env(environ={"FLASHREC_VAR_DIR": str(tmp_path), "FLASHREC_SEED": "7"})
    assert settings.seed == 7
    assert settings.lake_dir == tmp_path / "lake"
    explicit = Settings.from_env(environ={}, var_dir=Path("/x"), seed=3)
    assert explicit.landing_dir == Path("/x/landing") and explicit.seed == 3


def test_bad_values_name_the_variable():
    with pytest.raises(ValueError, match="FLASHREC_SEED"):
        Settings.from_env(environ={"FLASHREC_SEED": "many"})
    with pytest.raises(ValueError, match="FLASHREC_LAKE_WRITER"):
        Settings.from_env(environ={"FLASHREC_LAKE_WRITER": "csv"})
    with pytest.raises(TypeError, match="unknown settings"):
        Settings.from_env(environ={}, colour="red")


def test_every_setting_is_documented_in_the_readme():
    readme = (PROJECT_ROOT / "README.md").read_text()
    missing = [s.env for s in SETTINGS if f"`{s.env}`" not in readme]
    assert not missing, f"README.md does not document: {missing}"


def test_component_configs_take_their_defaults_from_the_settings_module():
    """Each tunable default is written once (``flashrec.settings``); a component's config
    that restated one, with another value, would silently differ from the deployed one."""
    import dataclasses

    from bentos.gateway_config import GatewayConfig
    from bentos.read_core import ServingConfig
    from flashrec.ingest import IngestLimits
    from flashrec.scoring.scorer import ScorerConfig
    from flashrec.settings import SETTINGS, default_of

    plain = {s.field for s in SETTINGS if not callable(s.default)}
    mapped = {
        ServingConfig: lambda f: f"serving_{f}" if f != "redis_url" else f,
        ScorerConfig: lambda f: f"scorer_{f}",
        IngestLimits: lambda f: f,
        GatewayConfig: lambda f: {"max_batch": "gateway_max_batch"}.get(f, f),
    }
    checked = 0
    for config, setting_of in mapped.items():
        for f in dataclasses.fields(config):
            name = setting_of(f.name)
            if name in plain and f.default is not dataclasses.MISSING:
                assert f.default == default_of(name), (config.__name__, f.name)
                checked += 1
    assert checked >= 15
