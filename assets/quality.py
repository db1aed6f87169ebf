"""Data-quality rules on lake tables, as plain functions (testable without Dagster).

They read only the columns they need through the Delta log (delta-rs + Arrow), so a
check never sees uncommitted or removed files and costs no Spark job.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from spark_jobs.delta_table import DeltaLakeTable


@dataclass(frozen=True)
class Verdict:
    passed: bool
    metadata: dict[str, Any] = field(default_factory=dict)


def _columns(table: DeltaLakeTable, columns: list[str], day: tuple[str, str] | None) -> pa.Table:
    dataset = table.delta().to_pyarrow_dataset()
    expr = pc.field(day[0]) == day[1] if day else None
    return dataset.to_table(columns=columns, filter=expr)


def not_empty(table: DeltaLakeTable) -> Verdict:
    rows = table.count() if table.exists() else 0
    return Verdict(rows > 0, {"rows": rows})


def no_null_keys(
    table: DeltaLakeTable, keys: list[str], day: tuple[str, str] | None = None
) -> Verdict:
    if not table.exists():
        return Verdict(False, {"error": "table does not exist"})
    data = _columns(table, keys, day)
    nulls = {k: int(data.column(k).null_count) for k in keys}
    return Verdict(
        not any(nulls.values()),
        {"rows": data.num_rows, **{f"nulls_{k}": v for k, v in nulls.items()}},
    )


def unique_key(table: DeltaLakeTable, key: str) -> Verdict:
    if not table.exists():
        return Verdict(False, {"error": "table does not exist"})
    column = _columns(table, [key], None).column(key)
    distinct = len(pc.unique(column))
    duplicates = len(column) - distinct
    return Verdict(duplicates == 0, {"rows": len(column), "duplicate_keys": duplicates})


def non_negative(table: DeltaLakeTable, column: str) -> Verdict:
    if not table.exists():
        return Verdict(False, {"error": "table does not exist"})
    values = _columns(table, [column], None).column(column)
    negatives = int(pc.sum(pc.less(values, 0)).as_py() or 0)
    return Verdict(negatives == 0, {"rows": len(values), f"negative_{column}": negatives})


def counts_add_up(bronze: DeltaLakeTable, outcomes: list[DeltaLakeTable]) -> Verdict:
    """Every bronze row has exactly one outcome: in = accepted + rejected."""
    rows_in = bronze.count()
    by_table = {t.name: t.count() for t in outcomes}
    out = sum(by_table.values())
    return Verdict(rows_in == out, {"bronze_rows": rows_in, "outcome_rows": out, **by_table})
