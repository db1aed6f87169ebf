"""The scorer's window on Feast: ``read_online`` with the store bound.

WHY here and not in flashrec: flashrec imports no engine; the scorer takes a plain
``(view_name, keys) -> rows`` callable and this module builds it from Feast. The CLI loads
it by name (``--features bentos.scorer_features:feast_reader``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

from feature_repo.store import feature_store, read_online
from flashrec.settings import Settings


def feast_reader(settings: Settings) -> Any:
    """A FeatureReader on the project's feature store (warmed: the first call is slow)."""
    store = feature_store(settings)

    def read(view_name: str, keys: Sequence[str]) -> list[dict[str, Any]]:
        return read_online(store, view_name, keys)

    # the first call is slow (registry load); an unapplied registry fails on real use
    with contextlib.suppress(Exception):
        read("user_activity", ["__warmup__"])
    return read
