"""flashrec: the domain core shared by every engine.

It holds the event model, settings, simulator, loaders and feature definitions, and
imports no engine or framework (no Spark, Flink, Dagster, BentoML or Feast), so that
batch and stream run exactly the same code.
"""

__version__ = "0.1.0"
