"""Bronze -> silver -> gold on hand-made landing files with every kind of bad input.

The jobs on the built lake run twice: on a local Spark and on a Spark standalone cluster
(master and worker processes, ``spark://`` URL), with the same assertions.
"""

from __future__ import annotations

import json

import pytest

from flashrec.settings import Settings
from spark_jobs.bronze import ingest_landing_day, landing_days
from spark_jobs.gold import build_gold
from spark_jobs.silver import build_silver_day
from spark_jobs.tables import lake_table
from tests.conftest import SPARK_TARGETS

pytestmark = pytest.mark.integration

DAY1, DAY2 = "2026-11-20", "2026-11-21"


def shopper(i: int, at: str, kind: str = "view", **kw) -> str:
    event = {
        "event_id": f"e{i}",
        "event_time": at,
        "event_type": kind,
        "item_id": kw.pop("item", "i1"),
        "session_id": kw.pop("session", "s1"),
        "user_id": kw.pop("user", "u1"),
    }
    event.update(kw)
    return json.dumps(event)


def catalog(i: int, at: str, kind: str, **kw) -> str:
    return json.dumps(
        {
            "event_id": f"c{i}",
            "event_time": at,
            "event_type": kind,
            "item_id": kw.pop("item", "i1"),
            **kw,
        }
    )


def write_landing(settings) -> None:
    day1 = [
        catalog(
            1,
            f"{DAY1}T00:00:00Z",
            "item_created",
            category="shoes",
            brand="acme",
            price=10,
            stock_level=3,
        ),
        shopper(1, f"{DAY1}T10:00:00Z"),
        shopper(2, f"{DAY1}T10:01:00Z", "add_to_cart", price=10),
        shopper(2, f"{DAY1}T10:01:00Z", "add_to_cart", price=10),  # re-sent: duplicate
        shopper(3, f"{DAY1}T11:30:00Z", "purchase", price=10),  # 89 min gap: new visit
        catalog(2, f"{DAY1}T11:30:00Z", "stock_change", stock_level=2),
        "not json",
        shopper(4, "2026-11-25T10:00:00Z"),  # future-dated relative to its landing day
        shopper(8, f"{DAY1}T12:00:00Z", price=-5),  # invalid field
    ]
    day2 = [
        shopper(5, f"{DAY1}T23:59:00Z", session="s2", user=None),  # late by a day: accepted
        shopper(2, f"{DAY1}T10:01:00Z", "add_to_cart", price=10),  # duplicate, arriving late
        shopper(6, f"{DAY2}T09:00:00Z", session="s3", item="i2"),
        shopper(7, "2026-11-18T09:00:00Z", session="s3", item="i2"),  # 3 days late: rejected
        catalog(3, f"{DAY2}T09:00:00Z", "stock_change", stock_level=0),
    ]
    for day, lines in ((DAY1, day1), (DAY2, day2)):
        folder = settings.landing_dir / "simulator" / f"dt={day}"
        folder.mkdir(parents=True)
        (folder / "part-00000.jsonl").write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def built_lake(spark, tmp_path_factory):
    lake_settings = Settings.from_env(var_dir=tmp_path_factory.mktemp("lake-jobs"))
    write_landing(lake_settings)
    days = landing_days(lake_settings, "simulator")
    bronze = [ingest_landing_day(spark, lake_settings, d) for d in days]
    silver = [build_silver_day(spark, lake_settings, d) for d in days]
    gold = build_gold(spark, lake_settings)
    return lake_settings, bronze, silver, gold


def rows(spark, settings, name):
    return [r.asDict() for r in lake_table(settings, name).read(spark).collect()]


@SPARK_TARGETS
def test_every_bronze_row_has_exactly_one_outcome(spark, built_lake):
    settings, bronze, silver, _ = built_lake
    assert [b.rows for b in bronze] == [9, 5]
    assert sum(s.rows_in for s in silver) == 14
    for s in silver:
        assert s.rows_in == s.accepted + s.catalog + s.rejected
    events = rows(spark, settings, "silver/events")
    catalog_rows = rows(spark, settings, "silver/catalog_events")
    rejected = rows(spark, settings, "silver/rejected_events")
    assert len(events) + len(catalog_rows) + len(rejected) == 14
    assert sorted(e["event_id"] for e in events) == ["e1", "e2", "e3", "e5", "e6"]
    reasons = {(r["event_id"], r["reject_field"]) for r in rejected}
    assert reasons == {
        ("e2", "event_id"),  # the two re-sends
        (None, "payload"),  # not json
        (None, "event_time"),  # future-dated
        (None, "price"),  # negative price
        ("e7", "event_time"),  # later than allowed
    }
    assert sum(1 for r in rejected if r["event_id"] == "e2") == 2
    assert all(r["reason"] and r["raw"] for r in rejected)


@SPARK_TARGETS
def test_late_events_land_in_their_event_day_and_sessions_split_on_gaps(spark, built_lake):
    settings, *_ = built_lake
    events = {e["event_id"]: e for e in rows(spark, settings, "silver/events")}
    assert events["e5"]["event_date"] == DAY1 and events["e5"]["is_late"]
    assert events["e5"]["user_id"] is None
    assert [events[e]["event_seq"] for e in ("e1", "e2", "e3")] == [1, 2, 3]
    assert events["e2"]["visit_id"] == events["e1"]["visit_id"] == "s1#1"
    assert events["e3"]["visit_id"] == "s1#2"


@SPARK_TARGETS
def test_gold_tables(spark, built_lake):
    settings, *_ = built_lake
    (item,) = rows(spark, settings, "gold/catalog")
    assert (item["item_id"], item["category"], item["price"], item["stock_level"]) == (
        "i1",
        "shoes",
        10.0,
        0,
    )
    assert item["is_sold_out"]
    stats = {r["item_id"]: r for r in rows(spark, settings, "gold/item_stats")}
    assert (stats["i1"]["views"], stats["i1"]["carts"], stats["i1"]["purchases"]) == (2, 1, 1)
    assert stats["i1"]["revenue"] == 10.0
    (user,) = rows(spark, settings, "gold/user_stats")
    assert user["user_id"] == "u1" and user["sessions"] == 2
    assert user["favourite_category"] == "shoes"
    interactions = rows(spark, settings, "gold/interactions")
    assert len(interactions) == 5
    assert {r["weight"] for r in interactions if r["event_type"] == "purchase"} == {8.0}


@SPARK_TARGETS
def test_rerunning_the_jobs_adds_nothing(spark, built_lake):
    settings, *_ = built_lake
    before = {
        n: lake_table(settings, n).version()
        for n in ("bronze/events", "silver/events", "gold/catalog")
    }
    for day in (DAY1, DAY2):
        assert ingest_landing_day(spark, settings, day).skipped
        assert build_silver_day(spark, settings, day).skipped
    assert build_gold(spark, settings).skipped
    after = {n: lake_table(settings, n).version() for n in before}
    assert after == before
    assert lake_table(settings, "silver/events").count() == 5


def test_live_files_land_once_each_and_duplicates_die_in_silver(spark, lake_settings):
    """The stream job's landing files: each finished file is appended once however often
    bronze runs, unfinished (hidden) files wait, and a re-delivered event is one silver row."""
    from spark_jobs.bronze import ingest_live_day

    day = "2026-12-07"
    folder = lake_settings.landing_dir / "live" / f"dt={day}"
    folder.mkdir(parents=True)
    at = f"{day}T10:00:0{{}}Z"
    (folder / "part-x-0.jsonl").write_text(
        "\n".join(shopper(i, at.format(i), session="live-s") for i in range(3)) + "\n"
    )
    (folder / ".part-x-1.jsonl.inprogress.y").write_text(shopper(9, at.format(9)) + "\n")
    first = ingest_live_day(spark, lake_settings, day)
    assert first is not None and first.rows == 3
    assert ingest_live_day(spark, lake_settings, day) is None  # nothing new: no-op
    # the in-progress file is finished (renamed); it re-delivers e2 (a replay)
    (folder / ".part-x-1.jsonl.inprogress.y").rename(folder / "part-x-1.jsonl")
    (folder / "part-x-1.jsonl").write_text(shopper(2, at.format(2), session="live-s") + "\n")
    second = ingest_landing_day(spark, lake_settings, day, source="live")
    assert second is not None and second.rows == 1
    bronze = lake_table(lake_settings, "bronze/events").read(spark).where("source = 'live'")
    assert bronze.count() == 4
    result = build_silver_day(spark, lake_settings, day)
    assert result.rows_in == 4 and result.accepted == 3 and result.duplicates == 1
