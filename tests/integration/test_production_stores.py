"""The production profile's stores, for real: Dagster's instance on PostgreSQL
(dagster-postgres, configured as the Helm chart configures it from our values) and Feast's
SQL registry, both against a real PostgreSQL server (`make setup` finds or starts one).

Each test gets a database of its own, created and dropped here.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from urllib.parse import urlparse

import dagster as dg
import pytest

from flashrec.settings import Settings
from orchestration.k8s.dagster_values import (
    PASSWORD_ENV,
    DagsterPostgres,
    dagster_helm_values,
    instance_storage,
)

pytestmark = pytest.mark.integration

#: A PostgreSQL server whose user may create databases (setup: local, trust auth).
SERVER_URL = os.environ.get(
    "FLASHREC_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


@pytest.fixture
def database() -> Iterator[str]:
    """A fresh database on the test server; its name."""
    import psycopg

    name = f"flashrec_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(SERVER_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:  # pragma: no cover - environment problem
        raise RuntimeError(f"no PostgreSQL answers at {SERVER_URL}: run `make setup`") from exc
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield name
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def server_settings(database: str, **overrides) -> Settings:
    url = urlparse(SERVER_URL)
    target = f"{url.username or 'postgres'}@{url.hostname}:{url.port or 5432}/{database}"
    return Settings.from_env(environ={}, k8s_dagster_postgres=target, **overrides)


@dg.asset
def numbers() -> list[int]:
    return [1, 2, 3]


@dg.asset
def total(numbers: list[int]) -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"total": sum(numbers)})


def test_dagster_instance_runs_on_postgres(database, monkeypatch, tmp_path):
    settings = server_settings(database)
    values = dagster_helm_values(settings)
    assert values["postgresql"]["postgresqlDatabase"] == database
    pg = DagsterPostgres.from_settings(settings)
    # The chart passes the Secret's password in this variable; trust auth ignores it.
    monkeypatch.setenv(PASSWORD_ENV, urlparse(SERVER_URL).password or "unused")
    overrides = {"storage": instance_storage(pg), "telemetry": {"enabled": False}}
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with dg.instance_for_test(overrides=overrides, temp_dir=str(tmp_path / "a")) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        assert type(instance.schedule_storage).__name__ == "PostgresScheduleStorage"
        result = dg.materialize([numbers, total], instance=instance)
        assert result.success
        run_id = result.run_id
    # A second instance (another pod) sees the run and the materialization.
    with dg.instance_for_test(overrides=overrides, temp_dir=str(tmp_path / "b")) as other:
        assert other.get_run_by_id(run_id).is_success
        event = other.get_latest_materialization_event(dg.AssetKey("total"))
        assert event.asset_materialization.metadata["total"].value == 6


def test_feast_sql_registry_on_postgres(database, tmp_path, redis_url):
    from feature_repo.store import apply_definitions, feature_store
    from flashrec import features as shared

    url = urlparse(SERVER_URL)
    registry = (
        f"postgresql+psycopg://{url.username or 'postgres'}@{url.hostname}:{url.port or 5432}"
        f"/{database}"
    )
    settings = Settings.from_env(var_dir=tmp_path, redis_url=redis_url, feast_registry=registry)
    store = feature_store(settings)
    assert store.config.registry.registry_type == "sql"
    apply_definitions(store)
    # Another process opening the same registry sees every view, and re-applying is a no-op.
    again = feature_store(settings)
    names = {view.name for view in again.list_feature_views()}
    assert names == {view.name for view in shared.FEATURE_VIEWS}
    apply_definitions(again)
    assert {v.name for v in feature_store(settings).list_feature_views()} == names
    assert not (tmp_path / "feast").exists()  # nothing on the pod's disk


def test_setup_finds_the_running_server_and_tells_a_dead_one():
    """scripts/lib/postgres.sh as setup.sh sources it (the install path is not run here)."""
    import subprocess

    from flashrec.settings import PROJECT_ROOT

    script = (
        'set -euo pipefail; VENV=.venv; say() { echo "$*"; }; '
        'apt_install() { echo "would install $*"; return 1; }; '
        ". scripts/lib/postgres.sh; "
        'POSTGRES_URL="$1"; ensure_postgres; '
        'POSTGRES_URL="$2"; if postgres_answers; then echo alive; else echo dead; fi'
    )
    dead = SERVER_URL.replace(f":{urlparse(SERVER_URL).port or 5432}/", ":1/")
    done = subprocess.run(
        ["bash", "-c", script, "setup", SERVER_URL, dead],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [f"postgresql answers at {SERVER_URL}", "dead"]
