"""Genuine Delta Lake tables written by Spark, committed by delta-rs.

The Delta Spark jars cannot be downloaded on our machines, so Spark stays the compute
engine and writes plain Parquet, and the ``deltalake`` (delta-rs) package commits those
files as a Delta version: a real transaction log with ACID appends, partition
overwrites, time travel and schema enforcement. Readers always go through the log's
file list (never ``spark.read.parquet(folder)``, which would see uncommitted and removed
files).

Layout (the same that Delta Spark writes, so either writer can own a table):
``<table>/_delta_log/``, ``<table>/<part>=<value>/<batch>-part-*.parquet``.

Why one module of ~400 lines: the one place that writes Delta commits (schema, stats,
idempotent batches), shared by every lake job.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute  # noqa: F401  (pa.compute)
import pyarrow.parquet as pq
from deltalake import DeltaTable
from deltalake.transaction import (
    AddAction,
    CommitProperties,
    Transaction,
    create_table_with_add_actions,
)
from pyspark.sql import DataFrame, SparkSession

from spark_jobs.schema import to_arrow_schema, to_spark_schema

log = logging.getLogger("flashrec.lake")

STAGING_DIR = "_staging"


class SchemaMismatchError(ValueError):
    """New data does not match the table's schema (Delta's schema enforcement)."""


@dataclass(frozen=True)
class CommitResult:
    """What one write did: the version it made, or that it was skipped as already done."""

    table: str
    version: int | None
    rows: int
    files: int
    skipped: bool


def _stats_json(meta: pq.FileMetaData, arrow_schema: pa.Schema) -> str:
    """Per-file statistics from the Parquet footer (lets readers skip files)."""
    num_records = meta.num_rows
    null_count: dict[str, int] = {}
    min_values: dict[str, Any] = {}
    max_values: dict[str, Any] = {}
    for col_index in range(meta.num_columns):
        column = meta.schema.column(col_index)
        name = column.path
        if "." in name:
            continue  # nested columns: leave their stats out
        arrow_type = arrow_schema.field(name).type
        nulls, lo, hi, known = 0, None, None, True
        for rg in range(meta.num_row_groups):
            stats = meta.row_group(rg).column(col_index).statistics
            if stats is None or not stats.has_null_count:
                known = False
                break
            nulls += stats.null_count
            if stats.has_min_max:
                lo = stats.min if lo is None else min(lo, stats.min)
                hi = stats.max if hi is None else max(hi, stats.max)
        if not known:
            continue
        null_count[name] = nulls
        if lo is None or not (
            pa.types.is_integer(arrow_type)
            or pa.types.is_floating(arrow_type)
            or pa.types.is_string(arrow_type)
            or pa.types.is_timestamp(arrow_type)
        ):
            continue
        if pa.types.is_timestamp(arrow_type):
            lo, hi = (v.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z" for v in (lo, hi))
        elif pa.types.is_string(arrow_type) and (len(lo) > 32 or len(hi) > 32):
            continue  # long strings: truncated bounds would be wrong, so give none
        min_values[name], max_values[name] = lo, hi
    return json.dumps(
        {
            "numRecords": num_records,
            "minValues": min_values,
            "maxValues": max_values,
            "nullCount": null_count,
        },
        default=str,
    )


def _same_schema(expected: pa.Schema, actual: pa.Schema) -> list[str]:
    """Differences by name and type; nullability is not enforced here."""
    problems: list[str] = []
    exp = {f.name: f.type for f in expected}
    act = {f.name: f.type for f in actual}
    for name in exp.keys() - act.keys():
        problems.append(f"missing column {name!r}")
    for name in act.keys() - exp.keys():
        problems.append(f"unexpected column {name!r}")
    for name in exp.keys() & act.keys():
        a, e = act[name], exp[name]
        if a != e and _loose(a) != _loose(e):
            problems.append(f"column {name!r} is {a}, table has {e}")
    return sorted(problems)


def _loose(t: pa.DataType) -> str:
    """Types that delta-rs and Spark spell differently but mean the same."""
    if pa.types.is_large_string(t) or pa.types.is_string(t) or pa.types.is_string_view(t):
        return "string"
    if pa.types.is_timestamp(t):
        return "timestamp"
    return str(t)


class DeltaLakeTable:
    """One Delta table folder: read snapshots into Spark, commit Spark output."""

    def __init__(
        self, path: Path | str, partition_by: tuple[str, ...] = (), writer: str = "delta-rs"
    ) -> None:
        if writer not in {"delta-rs", "delta-spark"}:
            raise ValueError(f"writer must be 'delta-rs' or 'delta-spark', got {writer!r}")
        self.path = Path(path)
        self.partition_by = tuple(partition_by)
        self.writer = writer
        self.name = "/".join(self.path.parts[-2:])

    # ---- reading -------------------------------------------------------------------
    def exists(self) -> bool:
        return DeltaTable.is_deltatable(str(self.path))

    def delta(self, version: int | None = None) -> DeltaTable:
        return DeltaTable(str(self.path), version=version)

    def version(self) -> int | None:
        return self.delta().version() if self.exists() else None

    def files(
        self, version: int | None = None, partitions: dict[str, list[str]] | None = None
    ) -> list[str]:
        """Absolute file paths of a snapshot, optionally only some partition values."""
        if not self.exists():
            return []
        table = self.delta(version)
        if not partitions:
            uris = table.file_uris()
        else:
            uris = []
            for column, values in partitions.items():
                if values:
                    uris.extend(table.file_uris([(column, "in", list(values))]))
        return sorted({u.removeprefix("file://") for u in uris})

    def arrow_schema(self, version: int | None = None) -> pa.Schema:
        return pa.schema(self.delta(version).schema().to_arrow())

    def read(
        self,
        spark: SparkSession,
        version: int | None = None,
        partitions: dict[str, list[str]] | None = None,
    ) -> DataFrame:
        """A Spark DataFrame over exactly the files of one snapshot (time travel by version)."""
        if not self.exists():
            raise FileNotFoundError(f"Delta table {self.path} does not exist yet")
        paths = self.files(version, partitions)
        if not paths:
            empty = self.arrow_schema(version).empty_table()
            return spark.createDataFrame(empty.to_pandas(), schema=_spark_schema(spark, empty))
        reader = spark.read
        if self.partition_by:
            reader = reader.option("basePath", str(self.path))
        return reader.parquet(*paths)

    def to_arrow(self, version: int | None = None) -> pa.Table:
        return self.delta(version).to_pyarrow_table()

    def count(self, version: int | None = None) -> int:
        """Row count from the log's per-file statistics (no data is read)."""
        if not self.exists():
            return 0
        actions = pa.table(self.delta(version).get_add_actions(flatten=True))
        if actions.num_rows == 0:
            return 0
        return int(pa.compute.sum(actions.column("num_records")).as_py() or 0)

    def has_batch(self, batch_key: str) -> bool:
        """True when a commit already recorded this application transaction."""
        return self.exists() and self.delta().transaction_version(batch_key) is not None

    # ---- writing -------------------------------------------------------------------
    def write(
        self,
        df: DataFrame,
        *,
        mode: str = "append",
        replace_partitions: dict[str, str] | None = None,
        batch_key: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> CommitResult:
        """Write a DataFrame as one Delta commit.

        ``mode='append'`` adds files; ``mode='overwrite'`` replaces the whole table or,
        with ``replace_partitions={'event_date': '2026-11-20'}``, only that partition.
        ``batch_key`` makes the write idempotent: it is stored in the commit as an
        application transaction, and a later write with the same key is skipped.
        """
        if mode not in {"append", "overwrite"}:
            raise ValueError(f"mode must be 'append' or 'overwrite', got {mode!r}")
        if batch_key and self.has_batch(batch_key):
            log.info("%s: batch %s already committed, skipping", self.name, batch_key)
            return CommitResult(self.name, self.version(), 0, 0, skipped=True)
        if self.writer == "delta-spark":
            return self._write_with_delta_spark(df, mode, replace_partitions, batch_key)
        batch_id = f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}"
        staging = self.path / STAGING_DIR / batch_id
        writer = df.write.mode("overwrite")
        if self.partition_by:
            writer = writer.partitionBy(*self.partition_by)
        writer.parquet(str(staging))
        try:
            return self._commit_staged(
                staging, batch_id, mode, replace_partitions, batch_key, metadata, df
            )
        finally:
            shutil.rmtree(staging, ignore_errors=True)
            parent = self.path / STAGING_DIR
            if parent.exists() and not any(parent.iterdir()):
                parent.rmdir()

    def _write_with_delta_spark(
        self,
        df: DataFrame,
        mode: str,
        replace_partitions: dict[str, str] | None,
        batch_key: str | None,
    ) -> CommitResult:
        """Clusters with the Delta Spark jars: same layout, same batch keys (txnAppId)."""
        writer = df.write.format("delta").mode(mode)
        if self.partition_by:
            writer = writer.partitionBy(*self.partition_by)
        if replace_partitions:
            where = " AND ".join(f"{k} = '{v}'" for k, v in replace_partitions.items())
            writer = writer.option("replaceWhere", where)
        if batch_key:
            writer = writer.option("txnAppId", batch_key).option("txnVersion", 1)
        try:
            writer.save(str(self.path))
        except Exception as exc:
            if "DATA_SOURCE_NOT_FOUND" in str(exc) or "delta" in str(exc).lower():
                raise RuntimeError(
                    "FLASHREC_LAKE_WRITER=delta-spark needs the Delta Spark jars "
                    "(io.delta:delta-spark) on Spark's classpath; use the default "
                    "'delta-rs' writer where they cannot be installed"
                ) from exc
            raise
        return CommitResult(self.name, self.version(), self.count(), 0, skipped=False)

    def _commit_staged(
        self,
        staging: Path,
        batch_id: str,
        mode: str,
        replace_partitions: dict[str, str] | None,
        batch_key: str | None,
        metadata: dict[str, Any] | None,
        df: DataFrame,
    ) -> CommitResult:
        staged = sorted(staging.rglob("*.parquet"))
        # An empty DataFrame writes no files: the commit still happens (it clears an
        # overwritten partition and records the batch), with the schema from Spark.
        data_schema = _data_schema(staged) if staged else _arrow_from_spark(df, self.partition_by)
        adds: list[AddAction] = []
        moved: list[Path] = []
        rows = 0
        for src in staged:
            rel_dir = src.parent.relative_to(staging)
            values = dict(part.split("=", 1) for part in rel_dir.parts)
            for key in values:
                if values[key] == "__HIVE_DEFAULT_PARTITION__":
                    values[key] = None  # type: ignore[assignment]
            dest = self.path / rel_dir / f"{batch_id}-{src.name}"
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(src, dest)
            moved.append(dest)
            meta = pq.read_metadata(dest)
            rows += meta.num_rows
            adds.append(
                AddAction(
                    path=str(dest.relative_to(self.path)),
                    size=dest.stat().st_size,
                    partition_values=values,
                    modification_time=int(dest.stat().st_mtime * 1000),
                    data_change=True,
                    stats=_stats_json(meta, pq.read_schema(dest)),
                )
            )
        full_schema = self._full_schema(data_schema)
        if self.exists():
            problems = _same_schema(self.arrow_schema(), full_schema)
            if problems:
                for path in moved:
                    path.unlink(missing_ok=True)
                raise SchemaMismatchError(
                    f"{self.name}: refusing to commit, schema differs: {'; '.join(problems)}"
                )
        props = CommitProperties(
            custom_metadata={k: str(v) for k, v in (metadata or {}).items()},
            app_transactions=[Transaction(app_id=batch_key, version=1)] if batch_key else None,
        )
        if not self.exists():
            self.path.mkdir(parents=True, exist_ok=True)
            create_table_with_add_actions(
                str(self.path),
                _delta_schema(full_schema),
                adds,
                mode="append",
                partition_by=list(self.partition_by) or None,
                commit_properties=props,
            )
        else:
            filters = (
                [(col, "=", val) for col, val in replace_partitions.items()]
                if replace_partitions
                else None
            )
            self.delta().create_write_transaction(
                adds,
                mode=mode,
                schema=_delta_schema(full_schema),
                partition_by=list(self.partition_by) or None,
                partition_filters=filters,
                commit_properties=props,
            )
        version = self.version()
        log.info(
            "%s: committed version %s (%d rows, %d files, %s)",
            self.name,
            version,
            rows,
            len(adds),
            mode,
        )
        return CommitResult(self.name, version, rows, len(adds), skipped=False)

    def _full_schema(self, data_schema: pa.Schema) -> pa.Schema:
        fields = list(data_schema)
        for col in self.partition_by:
            if col not in data_schema.names:
                fields.append(pa.field(col, pa.string()))
        return pa.schema(fields)

    def history(self) -> list[dict[str, Any]]:
        return self.delta().history() if self.exists() else []

    def vacuum_orphans(self) -> list[str]:
        """Remove files no commit refers to (left by a crash between write and commit)."""
        if not self.exists():
            return []
        return self.delta().vacuum(
            retention_hours=0, enforce_retention_duration=False, dry_run=False, full=True
        )


def _data_schema(files: list[Path]) -> pa.Schema:
    return pq.read_schema(files[0]).remove_metadata()


def _arrow_from_spark(df: DataFrame, partition_by: tuple[str, ...]) -> pa.Schema:
    schema = to_arrow_schema(df.schema)
    return pa.schema([f for f in schema if f.name not in partition_by])


def _delta_schema(schema: pa.Schema) -> Any:
    from deltalake import Schema

    return Schema.from_arrow(schema)


def _spark_schema(spark: SparkSession, empty: pa.Table) -> Any:
    return to_spark_schema(empty.schema)
