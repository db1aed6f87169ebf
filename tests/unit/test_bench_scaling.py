"""The scaling simulation's mechanics on a synthetic ramp (the figures come from
`make bench-scaling`; this only checks the model behaves as described)."""

from __future__ import annotations

import numpy as np

from bench.scaling import main, simulate_service
from flashrec.forecast.capacity import PodCapacity

CAP = PodCapacity("svc", "events", 100.0)


class Args:
    startup_s = 45
    scrape_lag_s = 15
    horizon_s = 60.0
    alpha, beta, phi = 0.3, 0.05, 0.97


def test_a_ramp_overloads_reactive_scaling_more_than_predictive():
    load = np.concatenate([np.full(600, 100.0), np.linspace(100, 3000, 300), np.full(900, 3000.0)])
    reactive = simulate_service(load, CAP, 2, 100, False, Args)
    predictive = simulate_service(load, CAP, 2, 100, True, Args)
    assert predictive.over < reactive.over
    assert predictive.percentile(0.99) <= reactive.percentile(0.99)
    assert reactive.arrived == predictive.arrived == load.sum()


def test_a_flat_load_needs_no_more_pods_when_predictive():
    load = np.full(1800, 700.0)
    reactive = simulate_service(load, CAP, 2, 100, False, Args)
    predictive = simulate_service(load, CAP, 2, 100, True, Args)
    assert reactive.over == predictive.over == 0
    assert predictive.pod_seconds <= 1.05 * reactive.pod_seconds


def test_the_report_ends_with_the_scaling_line(capsys):
    assert main(["--sessions", "400", "--before-s", "600", "--after-s", "600"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("scaling reactive_over_capacity_pct=")
    assert "predictive_pod_min=" in last
