"""Short-horizon forecasts of the event and read rates, for predictive autoscaling.

``holt`` is the pure forecaster, ``counters`` turns the streams' monotonic counters into
rates, ``exporter`` serves both as Prometheus metrics (``python -m flashrec.forecast run``)
and ``capacity`` holds the per-pod throughputs that turn a rate into a replica count.
"""
