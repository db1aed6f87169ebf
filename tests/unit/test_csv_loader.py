"""CSV exports into events: every row accepted or rejected with a reason, never dropped."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path

import pytest

from flashrec.events import Rejection, StorefrontEvent
from flashrec.loaders import (
    DIGINETICA_PLACEHOLDER_PRICE,
    DIGINETICA_VIEWS,
    CsvMapping,
    diginetica_raw_events,
    iter_csv,
    load_csv,
    load_item_categories,
)
from flashrec.settings import Settings

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
DIGINETICA_RAW = Settings.from_env().shared_data_dir / "diginetica_raw"

EXPORT = CsvMapping(
    event_time="ts",
    item_id="product",
    session_id="session",
    event_id="event_id",
    user_id="visitor",
    event_type="action",
    event_type_map={
        "pageview": "view",
        "addtocart": "add_to_cart",
        "transaction": "purchase",
        "removefromcart": "remove_from_cart",
    },
    price="amount",
    quantity="qty",
    device="platform",
    referrer="source",
)


def _by_id(events: list[StorefrontEvent]) -> dict[str, StorefrontEvent]:
    return {e.event_id: e for e in events}


def test_generic_export_maps_fields() -> None:
    result = load_csv(FIXTURES / "interactions_export.csv", EXPORT)
    events = _by_id(result.events)
    assert sorted(events) == ["e1", "e2", "e3", "e4"]
    e1, e2, e3, e4 = (events[k] for k in ("e1", "e2", "e3", "e4"))
    assert (e1.event_type, e1.user_id, e1.price, e1.device.value, e1.referrer) == (
        "view", "u1", 19.99, "mobile", "search",
    )  # fmt: skip
    assert e2.event_type == "add_to_cart" and e2.quantity == 2
    assert e2.event_time == datetime(2026, 11, 20, 10, 0, 5, tzinfo=UTC)  # +01:00 -> UTC
    assert e3.event_type == "purchase" and e3.is_anonymous and e3.price == 5.0
    assert e3.device.value == "other" and e3.referrer == "direct"  # smartTV, empty source
    assert (e4.event_type, e4.price, e4.session_id, e4.item_id) == ("click", None, "s6", "p5")


def test_bad_rows_become_rejections_naming_the_field() -> None:
    result = load_csv(FIXTURES / "interactions_export.csv", EXPORT)
    assert result.rows == 14 == result.accepted + result.rejected
    by_row = {r.raw.split(",")[0]: r for r in result.rejections}
    expected = {
        "e5": "item_id",  # missing item
        "e6": "event_time",  # unparseable time
        "e7": "event_type",  # unknown event type
        "e8": "event_time",  # naive time
        "e9": "price",  # purchase without price
        "e10": "price",  # not a number
        "e11": "price",  # negative
        "e12": "row",  # too few fields
        "e13": "user_id",  # not an identifier
        "e14": "quantity",  # not an integer
    }
    assert {k: r.field for k, r in by_row.items()} == expected
    for key, rejection in by_row.items():
        assert rejection.reason.startswith(f"{expected[key]}:"), rejection.reason
        assert rejection.raw.startswith(f"{key},2026") or key == "e6"
    assert "wishlist" in by_row["e7"].reason
    assert "timezone" in by_row["e8"].reason
    assert result.rejected_by_field()["price"] == 3


def test_gzip_and_plain_give_the_same_outcomes(tmp_path: Path) -> None:
    plain = FIXTURES / "interactions_export.csv"
    packed = tmp_path / "export.csv.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    assert list(iter_csv(packed, EXPORT)) == list(iter_csv(plain, EXPORT))


def test_epoch_ms_constant_type_and_derived_ids() -> None:
    mapping = CsvMapping(
        delimiter=";", event_time="time_ms", time_format="epoch_ms", item_id="item",
        session_id="session", user_id="user", constant_event_type="view", id_prefix="shop",
    )  # fmt: skip
    result = load_csv(FIXTURES / "views_epoch_ms.csv", mapping)
    assert (result.rows, result.accepted, result.rejected) == (4, 3, 1)
    first, anonymous, repeat = result.events
    assert first.event_time == datetime(2025, 11, 20, 10, 0, tzinfo=UTC)
    assert anonymous.user_id is None and anonymous.event_time.microsecond == 500_000
    assert first.event_id == repeat.event_id  # an exact re-sent row keeps its id
    assert first.event_id != anonymous.event_id and first.event_id.startswith("shop-")
    again = load_csv(FIXTURES / "views_epoch_ms.csv", mapping)
    assert [e.event_id for e in again.events] == [e.event_id for e in result.events]
    assert result.rejections[0].field == "event_time" and "soon" in result.rejections[0].reason


def test_epoch_seconds_and_assume_utc(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("t,i,s\n1763632800.25,p1,s1\n2026-11-20 10:00:00,p1,s1\n")
    epoch = CsvMapping(event_time="t", item_id="i", session_id="s", time_format="epoch_s",
                       constant_event_type="click")  # fmt: skip
    ok, bad = list(iter_csv(path, epoch))
    assert ok.event_time == datetime(2025, 11, 20, 10, 0, 0, 250_000, tzinfo=UTC)
    assert isinstance(bad, Rejection) and bad.field == "event_time"
    iso = CsvMapping(event_time="t", item_id="i", session_id="s", assume_utc=True,
                     constant_event_type="click")  # fmt: skip
    _, naive_as_utc = list(iter_csv(path, iso))
    assert naive_as_utc.event_time == datetime(2026, 11, 20, 10, tzinfo=UTC)


def test_mapping_mistakes_fail_loudly(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="exactly one"):
        CsvMapping(event_time="t", item_id="i", session_id="s")
    with pytest.raises(ValueError, match="offset_ms"):
        CsvMapping(event_time="t", item_id="i", session_id="s", constant_event_type="view",
                   time_format="date_offset_ms")  # fmt: skip
    with pytest.raises(ValueError, match="not in header"):
        list(iter_csv(FIXTURES / "views_epoch_ms.csv", DIGINETICA_VIEWS))


def test_diginetica_preset_on_fixture() -> None:
    outcomes = list(diginetica_raw_events(FIXTURES / "diginetica_raw"))
    events = [o for o in outcomes if isinstance(o, StorefrontEvent)]
    rejections = [o for o in outcomes if isinstance(o, Rejection)]
    assert (len(outcomes), len(events), len(rejections)) == (12, 7, 5)
    views = [e for e in events if e.event_type == "view"]
    purchases = [e for e in events if e.event_type == "purchase"]
    assert len(views) == 4 and len(purchases) == 3
    assert views[0].user_id is None and views[2].user_id == "77"
    assert views[3].event_time == datetime(2016, 5, 10, 0, 1, 30, 61_000, tzinfo=UTC)
    assert all(p.price == DIGINETICA_PLACEHOLDER_PRICE for p in purchases)
    assert purchases[1].event_id == purchases[2].event_id  # the duplicated export row
    assert [r.field for r in rejections] == ["item_id"] + ["event_time"] * 4
    assert "'later'" in rejections[1].reason and "negative" in rejections[3].reason
    assert rejections[0].raw == "3;NA;;1200;2016-05-11"
    categories = load_item_categories(FIXTURES / "diginetica_raw")
    assert categories == {"1001": "10", "1002": "10", "1003": "20", "1007": "30"}


def test_diginetica_real_export() -> None:
    """A prefix of each real file (all of it takes seconds): no rejections, sane values.

    The shared data sits beside the project on every developer machine and in CI.
    """
    assert DIGINETICA_RAW.is_dir(), f"shared DIGINETICA data missing at {DIGINETICA_RAW}"
    views_file = DIGINETICA_RAW / "sample_train-item-views.csv"
    head = list(islice(iter_csv(views_file, DIGINETICA_VIEWS), 3000))
    assert all(isinstance(e, StorefrontEvent) and e.event_type == "view" for e in head)
    days = {e.event_time.date().isoformat() for e in head}
    assert min(days) >= "2016-01-03" and max(days) <= "2016-06-02"
    assert 0.4 < sum(e.is_anonymous for e in head) / len(head) < 0.8
    n_views = len(views_file.read_text().splitlines()) - 1
    assert n_views == 12_391
    tail = list(islice(diginetica_raw_events(DIGINETICA_RAW), n_views, n_views + 1000))
    assert all(isinstance(e, StorefrontEvent) and e.event_type == "purchase" for e in tail)
    assert all(e.price == DIGINETICA_PLACEHOLDER_PRICE for e in tail)
    categories = load_item_categories(DIGINETICA_RAW)
    assert len(categories) == 184_047 and len(set(categories.values())) == 1_217
    seen = {e.item_id for e in head}
    assert sum(i in categories for i in seen) / len(seen) > 0.95
