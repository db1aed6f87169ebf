"""Metadata that every lake asset shows in the Dagster UI."""

from __future__ import annotations

from typing import Any

import dagster as dg
import pyarrow as pa

from spark_jobs.delta_table import DeltaLakeTable


def _markdown_table(table: pa.Table) -> str:
    if table.num_rows == 0:
        return "_empty_"
    columns = table.column_names
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in table.to_pylist():
        cells = [str(row[c])[:40].replace("|", "\\|") for c in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def table_metadata(table: DeltaLakeTable, preview_rows: int = 5, **extra: Any) -> dict[str, Any]:
    """Row count, Delta version, path, schema and a small preview of one table."""
    if not table.exists():
        return {"path": dg.MetadataValue.path(str(table.path)), "dagster/row_count": 0, **extra}
    delta = table.delta()
    schema = pa.schema(delta.schema().to_arrow())
    preview = delta.to_pyarrow_dataset().head(preview_rows)
    return {
        "dagster/row_count": table.count(),
        "delta_version": delta.version(),
        "path": dg.MetadataValue.path(str(table.path)),
        "dagster/column_schema": dg.TableSchema(
            columns=[dg.TableColumn(f.name, str(f.type)) for f in schema]
        ),
        "preview": dg.MetadataValue.md(_markdown_table(preview)),
        **extra,
    }
