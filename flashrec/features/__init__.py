"""One definition of every feature, run by Spark over history and by Flink on the stream.

A feature view is an incremental aggregator: ``update(state, event)`` folds one event into
a plain-dict state, ``values(state)`` reads the features as of the latest event time the
state has seen. States are order-insensitive within their retention, so folding history in
event-time order (Spark) and the live stream in arrival order (Flink) give the same values.
"""

from flashrec.features.definitions import FEATURE_VIEWS, ITEM, SESSION, USER, view_by_name
from flashrec.features.model import FeatureEvent, FeatureSpec, FeatureView, feature_event

__all__ = [
    "FEATURE_VIEWS",
    "ITEM",
    "SESSION",
    "USER",
    "FeatureEvent",
    "FeatureSpec",
    "FeatureView",
    "feature_event",
    "view_by_name",
]
