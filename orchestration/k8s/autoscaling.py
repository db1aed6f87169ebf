"""Predictive autoscaling: HPAs that scale on the forecast rates, CPU as the backstop.

The forecast exporter (``flashrec.forecast``) publishes the event and read rates expected
one horizon ahead (``FLASHREC_FORECAST_HORIZON_S``: pod start-up + scrape + sync). The
Prometheus adapter serves them to Kubernetes as External metrics, and each HPA asks for
``forecast / target_per_pod`` pods (``AverageValue``), next to CPU at 70%: the HPA takes
the larger of the two, so a wrong forecast can delay a scale-down but never starve a pod.
``make bench-scaling`` simulates this policy against CPU alone.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

from flashrec.settings import Settings
from orchestration.k8s.manifests import metadata

CPU_TARGET_UTILIZATION = 70
#: Kubernetes' default scale-down stabilization: one surge, one scale-down, five minutes on.
SCALE_DOWN_STABILIZATION_S = 300


def forecast_metric(driver: str) -> str:
    """The exporter's metric for a driver ("events" or "reads")."""
    return f"flashrec_forecast_{driver}_per_second"


def _quantity(value: float) -> str:
    """A Kubernetes quantity in milli-units (``1413000m``): exact for fractional targets."""
    return f"{round(value * 1000)}m"


def autoscaler(settings: Settings, process: Any, tier: str) -> dict[str, Any]:
    """The HorizontalPodAutoscaler of one process (``orchestration.k8s.workloads.Process``)."""
    metrics: list[dict[str, Any]] = []
    if process.capacity is not None:
        metrics.append(
            {
                "type": "External",
                "external": {
                    "metric": {"name": forecast_metric(process.capacity.driver)},
                    "target": {
                        "type": "AverageValue",
                        "averageValue": _quantity(process.capacity.target_per_pod),
                    },
                },
            }
        )
    metrics.append(
        {
            "type": "Resource",
            "resource": {
                "name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": CPU_TARGET_UTILIZATION},
            },
        }
    )
    kind = "StatefulSet" if process.stateful else "Deployment"
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": metadata(settings, process.name, tier),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": kind, "name": process.name},
            "minReplicas": process.replicas,
            "maxReplicas": process.max_replicas,
            "metrics": metrics,
            "behavior": {
                "scaleUp": {
                    "stabilizationWindowSeconds": 0,
                    "selectPolicy": "Max",
                    "policies": [
                        {"type": "Percent", "value": 100, "periodSeconds": 15},
                        {"type": "Pods", "value": 4, "periodSeconds": 15},
                    ],
                },
                "scaleDown": {
                    "stabilizationWindowSeconds": SCALE_DOWN_STABILIZATION_S,
                    "policies": [{"type": "Percent", "value": 20, "periodSeconds": 60}],
                },
            },
        },
    }


def prometheus_adapter_values(settings: Settings) -> dict[str, Any]:
    """Values for the prometheus-adapter Helm chart: the forecasts as External metrics."""
    url = urlparse(settings.k8s_prometheus_url)
    port = url.port or (443 if url.scheme == "https" else 80)
    base = f"{url.scheme}://{url.hostname}{url.path.rstrip('/')}"
    return {
        "prometheus": {"url": base, "port": port},
        "rules": {
            "default": False,
            "external": [
                {
                    "seriesQuery": '{__name__=~"flashrec_forecast_.*_per_second"}',
                    "resources": {"overrides": {"namespace": {"resource": "namespace"}}},
                    "name": {"matches": "^(.*)$", "as": "${1}"},
                    # One exporter: max() keeps the metric defined through a rollout.
                    "metricsQuery": "max(<<.Series>>{<<.LabelMatchers>>})",
                }
            ],
        },
    }
