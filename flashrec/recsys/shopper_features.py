"""Shopper context for the ranker: the user's feature-store row as ranker columns.

WHY here, once: training reads the row Feast's offline store returns as of just before each
target event, serving reads the row Feast's online store holds now; both go through
``shopper_context`` (row -> per-query numbers) and ``shopper_columns`` (per-query numbers ->
per-candidate columns), so a column can never mean one thing in training and another in
serving. The inputs are ``user_activity`` fields of ``flashrec.features`` (names kept as
they are there, so a column traces back to its definition). A query without a user
(anonymous shopper, or a dataset without users such as Diginetica) gets NaN everywhere:
XGBoost learns a default direction for missing values instead of reading a fake zero.

Session features are left out on purpose: the scorer ranks a known user by their user row
and does not know which of their sessions is live, so a session column would be filled in
training and empty in serving.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: ``user_activity`` numbers used as they are (one value per query).
QUERY_FEATURES: tuple[str, ...] = (
    "user_views_1h",
    "user_clicks_1h",
    "user_carts_1h",
    "user_purchases_1h",
    "user_purchases_total",
    "user_sessions_total",
    "user_top_category_share",
)
TOP_CATEGORY = "user_top_category"
#: The ``user_activity`` fields a caller must fetch (offline or online) for the ranker.
SHOPPER_INPUTS: tuple[str, ...] = (*QUERY_FEATURES, TOP_CATEGORY)
#: Ranker columns, in this order, appended after the candidate/session features.
SHOPPER_FEATURE_NAMES: list[str] = [*QUERY_FEATURES, "cand_in_top_category"]
#: Width of a context row: the query features, then the top category's code.
CONTEXT_WIDTH = len(QUERY_FEATURES) + 1

ShopperRow = Mapping[str, Any] | None


@dataclass(frozen=True)
class ItemCategories:
    """Category code of every item (-1: none) and the category names, fixed at fit time.

    WHY codes: comparing the user's top category with a few hundred candidates per query is
    one integer comparison per pair; strings would need a Python loop.
    """

    names: tuple[str, ...] = ()
    of_item: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    _code: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_code", {name: i for i, name in enumerate(self.names)})

    @classmethod
    def from_attributes(cls, attributes: Mapping[int, str] | None, n_items: int) -> ItemCategories:
        """From ``item -> category`` (the model's attributes); sorted names, so the same
        attributes always give the same codes."""
        attributes = attributes or {}
        names = tuple(sorted({c for c in attributes.values() if c}))
        code = {name: i for i, name in enumerate(names)}
        of_item = np.full(n_items, -1, dtype=np.int32)
        for item, category in attributes.items():
            if 0 <= item < n_items and category:
                of_item[item] = code[category]
        return cls(names, of_item)

    def code(self, name: str) -> int:
        """Code of a category name; -1 for one the model has never seen (matches nothing)."""
        return self._code.get(name, -1)

    def items(self, items: np.ndarray) -> np.ndarray:
        """Codes of ``items`` (-1 where unknown or beyond the table)."""
        out = np.full(len(items), -1, dtype=np.int32)
        inside = (items >= 0) & (items < len(self.of_item))
        out[inside] = self.of_item[items[inside]]
        return out


def _number(value: Any) -> float:
    """A feature value as a float; None, text and non-finite values are missing (NaN)."""
    if value is None or isinstance(value, str):
        return math.nan
    try:
        number = float(value)
    except (TypeError, ValueError):
        return math.nan
    return number if math.isfinite(number) else math.nan


def shopper_context(rows: Sequence[ShopperRow], categories: ItemCategories) -> np.ndarray:
    """(n, CONTEXT_WIDTH) float32: one ``user_activity`` row (or None) per query.

    The single definition of what the ranker reads from a user's feature row; missing rows
    and missing fields are NaN, the top category becomes its code (NaN when unknown).
    """
    out = np.full((len(rows), CONTEXT_WIDTH), np.nan, dtype=np.float32)
    for i, row in enumerate(rows):
        if not row:
            continue
        out[i, :-1] = [_number(row.get(name)) for name in QUERY_FEATURES]
        top = row.get(TOP_CATEGORY)
        if isinstance(top, str) and top:
            out[i, -1] = categories.code(top)
    return out


def shopper_columns(
    context: np.ndarray | None,
    rows: np.ndarray,
    items: np.ndarray,
    categories: ItemCategories,
) -> list[np.ndarray]:
    """The SHOPPER_FEATURE_NAMES columns for (query ``rows[i]``, candidate ``items[i]``)."""
    n = len(rows)
    if context is None:
        return [np.full(n, np.nan) for _ in SHOPPER_FEATURE_NAMES]
    ctx = context[rows]
    top = ctx[:, -1].astype(np.float64)
    cand = categories.items(items)
    match = np.where(np.isnan(top), np.nan, ((cand >= 0) & (cand == top)).astype(np.float64))
    return [*(ctx[:, j].astype(np.float64) for j in range(len(QUERY_FEATURES))), match]
