"""The model artifact for the catalog: ``TwoTierModel`` behind string item ids.

WHY a wrapper: the lake and the stream name items by strings, the two-tier model by dense
ints. This module owns the mapping (``Vocabulary``), the item attributes (``Catalog``) and a
versioned folder holding all three, so whoever loads a version gets a consistent set.
Registration in the BentoML model store is done by ``bentos.model_registry`` (flashrec
imports no engine); this module only writes and reads plain folders.

Training refuses a set that is too small (``TrainingSetTooSmall``) instead of fitting a
degenerate model: a champion trained on ten sessions would silently serve noise.

Shopper features: ``training_data`` says, for every session position, whose event it was
and when (``as_of``); the caller fetches the user's feature row as of strictly before
that instant from the feature store's offline side and passes the rows to ``fit``. At
serving time ``recommend_batch`` takes each shopper's current online row.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flashrec.recsys.model import TwoTierConfig, TwoTierModel
from flashrec.recsys.shopper_features import ShopperRow
from flashrec.scoring.catalog import Catalog, catalog_from_interactions
from flashrec.scoring.vocab import Vocabulary

if TYPE_CHECKING:
    from flashrec.recsys.sequence.train import EpochCallback

ARTIFACT_FORMAT = "flashrec.catalog_model"
ARTIFACT_VERSION = 1
MIN_SESSIONS = 50
MIN_ITEMS = 10


#: The columns of the lake's ``gold/interactions`` that ``training_data`` reads.
INTERACTION_COLUMNS = (
    "session_id",
    "user_id",
    "event_time",
    "event_seq",
    "item_id",
    "weight",
    "price",
    "category",
    "brand",
    "device",
    "referrer",
)


class TrainingSetTooSmall(ValueError):
    """Too few usable sessions or items to fit a model worth serving."""


#: (user_id or None, event time): whose feature row a session position needs, and as of when.
AsOf = tuple[str | None, Any]


@dataclass
class TrainingData:
    """Sessions of string item ids (event order), the catalog they come from and, per
    session position, the (user, time) of the event that put the item there."""

    sessions: list[list[str]]
    catalog: Catalog
    as_of: list[list[AsOf]] = field(default_factory=list)

    def as_of_keys(self) -> list[AsOf]:
        """Every position's (user, time), flat and in session order (one offline lookup)."""
        return [key for session in self.as_of for key in session]

    def regroup(self, flat: Sequence[ShopperRow]) -> list[list[ShopperRow]]:
        """Rows answered for ``as_of_keys`` back into one list per session."""
        if len(flat) != sum(len(s) for s in self.as_of):
            raise ValueError(f"{len(flat)} rows for {sum(len(s) for s in self.as_of)} positions")
        out, start = [], 0
        for session in self.as_of:
            out.append(list(flat[start : start + len(session)]))
            start += len(session)
        return out


def training_data(rows: Iterable[Mapping[str, Any]]) -> TrainingData:
    """From ``gold/interactions`` rows: per session_id the items in event order.

    Order is (event_time, event_seq) as the lake sessionized them; consecutive repeats of
    one item (view then click then cart) are collapsed, since they say nothing about what
    comes next. A collapsed position keeps the user and time of its *first* event: as the
    next item of the session, that is the moment to predict, so its features must stop
    strictly before it (the click and cart that follow are later still).
    """
    rows = list(rows)
    per_session: dict[str, list[tuple[Any, int, str, str | None]]] = defaultdict(list)
    for row in rows:
        user = row.get("user_id") or None
        key = (row.get("event_time"), int(row.get("event_seq") or 0), str(row["item_id"]), user)
        per_session[str(row["session_id"])].append(key)
    sessions, as_of = [], []
    for events in per_session.values():
        events.sort(key=lambda e: (str(e[0]), e[1]))
        seq: list[str] = []
        when: list[AsOf] = []
        for time_, _, item, user in events:
            if not seq or seq[-1] != item:
                seq.append(item)
                when.append((user, time_))
        sessions.append(seq)
        as_of.append(when)
    return TrainingData(sessions=sessions, catalog=catalog_from_interactions(rows), as_of=as_of)


def new_version() -> str:
    """Sortable, unique: ``YYYYmmdd-HHMMSS-<6 hex>`` (UTC; BentoML lowercases tags)."""
    return datetime.now(UTC).strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]


@dataclass
class CatalogModel:
    """A fitted two-tier model with its vocabulary, catalog and provenance."""

    model: TwoTierModel
    vocab: Vocabulary
    catalog: Catalog
    model_version: str
    created_at: str
    metrics: dict[str, float] = field(default_factory=dict)

    # -- training ------------------------------------------------------------------------

    @classmethod
    def fit(
        cls,
        sessions: Sequence[Sequence[str]],
        catalog: Catalog,
        *,
        config: TwoTierConfig | None = None,
        model_version: str | None = None,
        min_sessions: int = MIN_SESSIONS,
        min_items: int = MIN_ITEMS,
        shopper_rows: Sequence[Sequence[ShopperRow]] | None = None,
        on_epoch: EpochCallback | None = None,
    ) -> CatalogModel:
        """Fit on sessions of string item ids (oldest item first).

        ``config.mode == "sequence"`` gives the standalone sequence-model variant (a
        challenger for the A/B loop); ``on_epoch`` sees each epoch of its training.

        ``shopper_rows[s][t]``: the user's feature row as of strictly before position t of
        session s (None: anonymous); without it the shopper columns are missing (NaN).
        Raises ``TrainingSetTooSmall`` before any work when fewer than ``min_sessions``
        sessions have 2+ items or fewer than ``min_items`` distinct items appear in them.
        """
        if shopper_rows is not None and len(shopper_rows) != len(sessions):
            raise ValueError(f"{len(shopper_rows)} shopper row lists for {len(sessions)} sessions")
        kept = [i for i, s in enumerate(sessions) if len(s) >= 2]
        usable = [list(sessions[i]) for i in kept]
        distinct = {i for s in usable for i in s}
        if len(usable) < min_sessions or len(distinct) < min_items:
            raise TrainingSetTooSmall(
                f"training set too small: {len(usable)} sessions with 2+ items (need "
                f">= {min_sessions}) over {len(distinct)} distinct items (need >= {min_items})"
            )
        vocab = Vocabulary(sorted(distinct | set(catalog.items)))
        encoded = [vocab.encode(s) for s in usable]
        attrs = {vocab.index[i]: cat for i, cat in catalog.attributes().items() if i in vocab}
        t0 = time.perf_counter()
        rows = None if shopper_rows is None else [list(shopper_rows[i]) for i in kept]
        model = TwoTierModel(config).fit(encoded, len(vocab), attrs, rows, on_epoch=on_epoch)
        metrics = {
            **{k: float(v) for k, v in model.report.validation.items()},
            "n_sessions": float(len(usable)),
            "n_items": float(len(vocab)),
            "fit_s": round(time.perf_counter() - t0, 3),
        }
        return cls(
            model=model,
            vocab=vocab,
            catalog=catalog,
            model_version=model_version or new_version(),
            created_at=datetime.now(UTC).isoformat(),
            metrics=metrics,
        )

    # -- inference -----------------------------------------------------------------------

    def recommend_batch(
        self,
        recents: Sequence[Sequence[str]],
        k: int = 20,
        shopper_rows: Sequence[ShopperRow] | None = None,
    ) -> list[list[tuple[str, float]]]:
        """Top ``k`` (item_id, score) per shopper; ``recents`` lists are most recent first
        (as ``user_recent_items``/``session_recent_items`` store them), ``shopper_rows[i]``
        is shopper i's ``user_activity`` online row (None: anonymous or unknown).

        Scores are rank-derived (1.0 for the first, falling by 1/k): the model's public API
        returns ranked ids, and the cache only needs a monotone score.
        """
        if not recents:
            return []
        k = max(1, min(k, len(self.vocab)))  # the model cannot rank more items than it knows
        sessions = [self.vocab.encode(list(reversed(r))) for r in recents]
        top = self.model.recommend_batch(sessions, k, shopper_rows)
        out = []
        for row in top:
            ids = self.vocab.decode(row)
            out.append([(item, round(1.0 - rank / k, 6)) for rank, item in enumerate(ids)])
        return out

    def use_device(self, device: str) -> None:
        """Score on ``device`` ('cpu' or 'cuda', e.g. Settings.model_device)."""
        self.model.use_device(device)

    @property
    def mode(self) -> str:
        """'two_tier' or 'sequence' (the standalone sequence-model variant)."""
        return self.model.config.mode

    def recommend_for(self, recent_items: Sequence[str], k: int = 20) -> list[tuple[str, float]]:
        """Top ``k`` (item_id, score) for one shopper (``recent_items`` most recent first)."""
        return self.recommend_batch([recent_items], k)[0]

    # -- artifact ------------------------------------------------------------------------

    def save(self, folder: str | Path) -> Path:
        """Write the artifact into ``folder`` atomically (temp folder, then rename): a
        crash mid-save leaves no half artifact under the final name."""
        folder = Path(folder)
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
        try:
            self.model.save(tmp / "two_tier")
            self.vocab.save(tmp / "vocab.json")
            self.catalog.save(tmp / "catalog.json")
            meta = {
                "format": ARTIFACT_FORMAT,
                "version": ARTIFACT_VERSION,
                "model_version": self.model_version,
                "created_at": self.created_at,
                "metrics": self.metrics,
            }
            (tmp / "meta.json").write_text(json.dumps(meta, indent=2))
            if folder.exists():
                shutil.rmtree(folder)
            os.replace(tmp, folder)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return folder

    def save_versioned(self, root: str | Path) -> Path:
        """``root/<model_version>/``: one folder per version, none ever overwritten."""
        return self.save(Path(root) / self.model_version)

    @classmethod
    def load(cls, folder: str | Path) -> CatalogModel:
        folder = Path(folder)
        meta = read_meta(folder)
        return cls(
            model=TwoTierModel.load(folder / "two_tier"),
            vocab=Vocabulary.load(folder / "vocab.json"),
            catalog=Catalog.load(folder / "catalog.json"),
            model_version=meta["model_version"],
            created_at=meta["created_at"],
            metrics=dict(meta.get("metrics", {})),
        )


def read_meta(folder: Path) -> dict[str, Any]:
    """The artifact's meta.json, checked for format and version."""
    path = Path(folder) / "meta.json"
    if not path.exists():
        raise FileNotFoundError(f"{folder}: no meta.json (not a catalog model artifact)")
    meta = json.loads(path.read_text())
    if meta.get("format") != ARTIFACT_FORMAT or meta.get("version") != ARTIFACT_VERSION:
        raise ValueError(f"{folder}: not a {ARTIFACT_FORMAT} v{ARTIFACT_VERSION} artifact")
    return meta
