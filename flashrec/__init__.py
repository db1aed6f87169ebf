"""flashrec: the framework-free core every engine and service shares.

- the contracts: ``events`` (the event model), ``settings`` (every default, once),
  ``features`` (one definition of each feature, run by Spark and by Flink alike),
  ``serving.keys`` / ``serving.cache`` (the Redis key and cached-list contract);
- the logic the services run but do not own: ``scoring`` (the scorer's loop and tiers),
  ``recsys`` (the two-tier model, its AutoML and the sequence model), ``adaptivity``
  (drift, the rollout and its sequential test), ``attribution``, ``live_candidates``, and
  ``supervised_loop`` (the step-and-back-off loop of the scorer and attribution workers);
- the event log clients (``eventlog``: Redis Streams, Kafka) and the load generator
  (``simulator``, ``publish``) used by the demo and the benchmarks.

It imports no engine, service or orchestration code (no Spark, Flink, Dagster, BentoML),
which ``tests/unit/test_layering.py`` checks, so batch and stream run the same code.
"""

__version__ = "0.1.0"
