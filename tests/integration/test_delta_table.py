"""Delta tables are real: a transaction log, ACID appends, time travel, enforcement."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable
from pyspark.sql import functions as F

from spark_jobs.delta_table import DeltaLakeTable, SchemaMismatchError

pytestmark = pytest.mark.integration


def frame(spark, n: int, day: str = "2026-11-20", offset: int = 0):
    return spark.range(offset, offset + n).select(
        F.col("id"),
        F.concat(F.lit("item-"), F.col("id").cast("string")).alias("item_id"),
        F.lit(day).alias("event_date"),
        F.current_timestamp().alias("ts"),
    )


def test_appends_are_versions_in_a_real_log(spark, tmp_path):
    table = DeltaLakeTable(tmp_path / "silver" / "t", partition_by=("event_date",))
    first = table.write(frame(spark, 5))
    second = table.write(frame(spark, 3, "2026-11-21", offset=5))
    assert (first.version, second.version) == (0, 1)
    assert (tmp_path / "silver" / "t" / "_delta_log" / "00000000000000000001.json").is_file()
    # another reader (delta-rs alone, no Spark) sees the same committed data
    assert DeltaTable(str(table.path)).to_pyarrow_table().num_rows == 8
    assert table.read(spark).count() == 8 and table.count() == 8
    assert table.read(spark, version=0).count() == 5  # time travel
    assert table.read(spark, partitions={"event_date": ["2026-11-21"]}).count() == 3
    ts_type = dict(table.read(spark).dtypes)["ts"]
    assert ts_type == "timestamp"


def test_same_batch_key_is_written_once(spark, tmp_path):
    table = DeltaLakeTable(tmp_path / "bronze" / "t", partition_by=("event_date",))
    assert not table.write(frame(spark, 4), batch_key="day-1").skipped
    again = table.write(frame(spark, 4), batch_key="day-1")
    assert again.skipped and again.rows == 0
    assert table.count() == 4 and table.version() == 0


def test_partition_overwrite_replaces_only_that_partition(spark, tmp_path):
    table = DeltaLakeTable(tmp_path / "silver" / "p", partition_by=("event_date",))
    table.write(frame(spark, 5, "2026-11-20"))
    table.write(frame(spark, 2, "2026-11-21", offset=5))
    table.write(
        frame(spark, 1, "2026-11-20", offset=100),
        mode="overwrite",
        replace_partitions={"event_date": "2026-11-20"},
    )
    counts = {
        r["event_date"]: r["count"]
        for r in table.read(spark).groupBy("event_date").count().collect()
    }
    assert counts == {"2026-11-20": 1, "2026-11-21": 2}
    # an empty overwrite clears the partition and is still a commit
    table.write(
        frame(spark, 0, "2026-11-21"),
        mode="overwrite",
        replace_partitions={"event_date": "2026-11-21"},
    )
    assert table.count() == 1 and table.version() == 3
    assert table.read(spark, version=1).count() == 7


def test_schema_is_enforced(spark, tmp_path):
    table = DeltaLakeTable(tmp_path / "gold" / "s")
    table.write(frame(spark, 2))
    with pytest.raises(SchemaMismatchError, match="unexpected column 'extra'"):
        table.write(frame(spark, 2).withColumn("extra", F.lit(1)))
    with pytest.raises(SchemaMismatchError, match="column 'id'"):
        table.write(frame(spark, 2).withColumn("id", F.col("id").cast("string")))
    assert table.version() == 0 and table.count() == 2
    # the refused files were removed: only committed files are in the folder
    parquet = sorted(p.name for p in table.path.rglob("*.parquet"))
    assert len(parquet) == len(table.files())


def test_readers_ignore_files_that_no_commit_added(spark, tmp_path):
    table = DeltaLakeTable(tmp_path / "gold" / "o")
    table.write(frame(spark, 3))
    stray = next(table.path.glob("*.parquet"))
    (table.path / "crashed-writer.parquet").write_bytes(stray.read_bytes())
    extra = pq.read_metadata(stray).num_rows
    assert table.read(spark).count() == 3
    assert spark.read.parquet(str(table.path)).count() == 3 + extra  # what a folder read says
    removed = table.vacuum_orphans()
    assert any("crashed-writer" in path for path in removed)
    assert table.read(spark).count() == 3


def test_overwrite_of_an_unpartitioned_table(spark, tmp_path):
    table = DeltaLakeTable(tmp_path / "gold" / "u")
    table.write(frame(spark, 10))
    table.write(frame(spark, 2), mode="overwrite")
    assert table.count() == 2 and table.read(spark, version=0).count() == 10


def test_delta_spark_writer_without_jars_says_what_is_missing(spark, tmp_path):
    """The optional delta-spark path is chosen by configuration and fails clearly here."""
    table = DeltaLakeTable(tmp_path / "gold" / "ds", writer="delta-spark")
    with pytest.raises(RuntimeError, match="Delta Spark jars"):
        table.write(frame(spark, 2))
    assert not table.exists()
