"""Dagster on Kubernetes: the Helm chart's values and the instance storage they produce.

Dagster's run, event-log and schedule storage live in an external PostgreSQL
(``FLASHREC_K8S_DAGSTER_POSTGRES``, user@host:port/db); the chart's bundled PostgreSQL
and its default credentials are off, and the password is read from the Secret named by
``FLASHREC_K8S_SECRET`` (key ``postgresql-password``: ``global.postgresqlSecretName``).
``instance_storage`` is the storage block the chart writes into the instance's
dagster.yaml from these values; the integration tests open a DagsterInstance with it
against a real PostgreSQL server, so the production stores run for real in CI.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from assets.compute import COMPUTE
from flashrec.settings import Settings
from orchestration.k8s.manifests import (
    BENTOML_HOME,
    CONFIG_MAP,
    MODEL_STORE_SUBPATH,
    SCRATCH,
    SHARED_MOUNT,
    image,
)
from orchestration.k8s.workloads import container_security_context, pod_security_context

#: The Secret key the Dagster chart reads the database password from.
PASSWORD_KEY = "postgresql-password"
#: The environment variable the chart's dagster.yaml takes the password from.
PASSWORD_ENV = "DAGSTER_PG_PASSWORD"
#: SQLAlchemy 2.1 maps a bare ``postgresql://`` to psycopg 3 when it is installed (Feast's
#: SQL registry needs it), and dagster-postgres 0.29's ``NOTIFY run_events, %s`` only works
#: with psycopg2's client-side parameters (psycopg 3 fails: syntax error at "$1"). Seen in
#: tests/integration/test_production_stores.py; so the driver is named explicitly.
SCHEME = "postgresql+psycopg2"


@dataclass(frozen=True)
class DagsterPostgres:
    user: str
    host: str
    port: int
    database: str

    @classmethod
    def from_settings(cls, settings: Settings) -> DagsterPostgres:
        raw = settings.k8s_dagster_postgres
        url = urlparse(f"postgresql://{raw}")
        if not (url.username and url.hostname and url.path.strip("/")):
            raise ValueError(
                f"FLASHREC_K8S_DAGSTER_POSTGRES must be user@host:port/database, got {raw!r}"
            )
        if url.password:
            raise ValueError("FLASHREC_K8S_DAGSTER_POSTGRES must not carry a password")
        return cls(url.username, url.hostname, url.port or 5432, url.path.strip("/"))


def instance_storage(pg: DagsterPostgres) -> dict[str, Any]:
    """The ``storage`` block of dagster.yaml that the chart renders for ``pg``."""
    return {
        "postgres": {
            "postgres_db": {
                "username": pg.user,
                "password": {"env": PASSWORD_ENV},
                "hostname": pg.host,
                "db_name": pg.database,
                "port": pg.port,
                "params": {},
                "scheme": SCHEME,
            }
        }
    }


def _volumes(settings: Settings) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Scratch at /tmp, artifacts and the model store on the shared claim (steps train and
    register models that the model service loads)."""
    volumes = [
        {"name": "scratch", "emptyDir": {"sizeLimit": "20Gi"}},
        {"name": "shared", "persistentVolumeClaim": {"claimName": settings.k8s_shared_volume}},
    ]
    mounts = [
        {"name": "scratch", "mountPath": SCRATCH},
        {"name": "shared", "mountPath": SHARED_MOUNT},
        {"name": "shared", "mountPath": f"{BENTOML_HOME}/models", "subPath": MODEL_STORE_SUBPATH},
    ]
    return volumes, mounts


def dagster_helm_values(settings: Settings) -> dict[str, Any]:
    """Values for Dagster's Helm chart: our code location, the K8sRunLauncher (whose pod
    settings the k8s_job_executor's step pods inherit), external PostgreSQL, no telemetry."""
    pg = DagsterPostgres.from_settings(settings)
    env_config_maps = [{"name": CONFIG_MAP}]
    env_secrets = [{"name": settings.k8s_secret}]
    repository, tag = image(settings, "code").rsplit(":", 1)
    volumes, mounts = _volumes(settings)
    return {
        "global": {"postgresqlSecretName": settings.k8s_secret},
        "generatePostgresqlPasswordSecret": False,
        "postgresql": {
            "enabled": False,
            "postgresqlHost": pg.host,
            "postgresqlUsername": pg.user,
            "postgresqlDatabase": pg.database,
            "postgresqlScheme": SCHEME,
            "service": {"port": pg.port},
        },
        "telemetry": {"enabled": False},
        "dagster-user-deployments": {
            "enabled": True,
            "deployments": [
                {
                    "name": "flashrec",
                    "image": {"repository": repository, "tag": tag, "pullPolicy": "IfNotPresent"},
                    "dagsterApiGrpcArgs": ["-m", "orchestration.definitions"],
                    "port": 3030,
                    "envConfigMaps": env_config_maps,
                    "envSecrets": env_secrets,
                    "resources": COMPUTE["light"].resources(),
                    "podSecurityContext": pod_security_context(),
                    "securityContext": container_security_context(read_only_root=False),
                    "volumes": volumes,
                    "volumeMounts": mounts,
                }
            ],
        },
        "runLauncher": {
            "type": "K8sRunLauncher",
            "config": {
                "k8sRunLauncher": {
                    "envConfigMaps": env_config_maps,
                    "envSecrets": env_secrets,
                    "volumes": volumes,
                    "volumeMounts": mounts,
                    "runK8sConfig": {
                        "containerConfig": {
                            "resources": COMPUTE["light"].resources(),
                            # Spark and Ivy write under the home folder, not only /tmp.
                            "securityContext": container_security_context(read_only_root=False),
                        },
                        "podSpecConfig": {"securityContext": pod_security_context()},
                    },
                }
            },
        },
        "dagsterDaemon": {"enabled": True},
    }
