"""String item ids <-> the dense integer ids the two-tier model works on.

WHY: the lake and the stream name items by strings, ``TwoTierModel`` indexes arrays by int.
The mapping is part of the artifact (saved next to the model), so the serving side decodes
exactly what the training side encoded.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path


class Vocabulary:
    """An ordered set of item ids; the position of an id is its integer id."""

    def __init__(self, item_ids: Iterable[str] = ()) -> None:
        self.ids: list[str] = []
        self.index: dict[str, int] = {}
        for item in item_ids:
            self.add(item)

    def add(self, item_id: str) -> int:
        """The integer of ``item_id``, assigned on first sight (stable order)."""
        pos = self.index.get(item_id)
        if pos is None:
            pos = len(self.ids)
            self.ids.append(item_id)
            self.index[item_id] = pos
        return pos

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self.index

    def encode(self, items: Sequence[str]) -> list[int]:
        """Integer ids of the known items, order kept; unknown items are dropped (a brand new
        item cannot be scored by a model trained before it existed)."""
        return [self.index[i] for i in items if i in self.index]

    def decode(self, ints: Iterable[int]) -> list[str]:
        return [self.ids[int(i)] for i in ints]

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.ids))

    @classmethod
    def load(cls, path: Path) -> Vocabulary:
        return cls(json.loads(path.read_text()))
