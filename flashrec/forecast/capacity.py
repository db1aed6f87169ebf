"""What one pod of each scaled service sustains: the numbers behind the autoscalers.

One table, read by the manifests (HPA targets) and by ``make bench-scaling`` (the capacity
model), so the simulation and the deployment assume the same pods. Figures are per pod of
one worker with a CPU limit of one core, measured on the project's 2-core machines:

- read API: 2,355 answers/s at 16 connections (``make bench-slo``'s quiet phase, one
  worker; wrk and Redis on the same two cores).
- gateway: 330 single-event POSTs/s (wrk, 16 connections, one worker, on a machine at
  load ~8); the same worker took ~6,900 events/s in batches of 20, so storefronts that
  batch need far fewer pods. Single events are assumed: the pessimistic case.
- scorer: 1,000 events/s (``make bench-slo``: sustained at the ramp's top stage of 1,000
  events/s with the whole stack on two cores; a lower bound).

``target_utilization`` is the share of that capacity the autoscaler aims at: the headroom
absorbs the error of the forecast and the noise of one second.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PodCapacity:
    """Sustained throughput of one pod, in units of the rate that drives it."""

    service: str
    driver: str  # "reads" or "events": which forecast series scales it
    per_pod: float  # per second
    target_utilization: float = 0.7

    @property
    def target_per_pod(self) -> float:
        """The per-pod rate the autoscaler aims at (HPA AverageValue)."""
        return self.per_pod * self.target_utilization


CAPACITY: dict[str, PodCapacity] = {
    "read-api": PodCapacity("read-api", "reads", 2355.0),
    "gateway": PodCapacity("gateway", "events", 330.0),
    "scorer": PodCapacity("scorer", "events", 1000.0),
}
