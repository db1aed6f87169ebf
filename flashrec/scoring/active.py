"""Who browsed which category lately: the shoppers a category's trend signal reaches.

WHY: when an item jumps to the top of a category's live trending list (the stream job's
``flashrec.live_candidates.TrendWatch``), the shoppers browsing that category should see
it before their own next click. The scorer remembers, per category, the shoppers whose
newest items were in it, most recent last, bounded per category, by age and in the number
of categories.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Iterable

from cachetools import LRUCache


class ActiveShoppers:
    def __init__(
        self, per_category: int = 100, max_age_s: float = 120.0, max_categories: int = 10_000
    ) -> None:
        self.per_category = per_category
        self.max_age_s = max_age_s
        self.max_categories = max_categories
        #: category -> (shopper -> when seen, oldest first); least recently seen categories go
        self._by_category: LRUCache[str, OrderedDict[str, float]] = LRUCache(max_categories)

    def saw(self, shopper: str, categories: Iterable[str], now_s: float | None = None) -> None:
        now = time.monotonic() if now_s is None else now_s
        for category in set(categories):
            recent = self._by_category.get(category)
            if recent is None:
                recent = self._by_category[category] = OrderedDict()
            recent.pop(shopper, None)
            recent[shopper] = now
            while len(recent) > self.per_category:
                recent.popitem(last=False)

    def in_category(self, category: str, now_s: float | None = None) -> list[str]:
        """Shoppers of ``category`` active within ``max_age_s``, newest first."""
        now = time.monotonic() if now_s is None else now_s
        recent = self._by_category.get(category)
        if not recent:
            return []
        return [s for s, at in reversed(recent.items()) if now - at <= self.max_age_s]
