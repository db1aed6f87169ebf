"""Arrow <-> Spark schema conversion for the column types our tables use.

PySpark's own converters changed signatures between minor versions (and some need a
newer pyarrow than Flink allows), so the handful of types we use are mapped here.
Timestamps are always UTC instants (Spark TimestampType, Arrow timestamp[us, UTC]).
"""

from __future__ import annotations

import pyarrow as pa
from pyspark.sql import types as T

_TO_SPARK: list[tuple[object, T.DataType]] = [
    (pa.types.is_boolean, T.BooleanType()),
    (pa.types.is_int32, T.IntegerType()),
    (pa.types.is_int64, T.LongType()),
    (pa.types.is_float64, T.DoubleType()),
    (pa.types.is_float32, T.FloatType()),
    (lambda t: pa.types.is_string(t) or pa.types.is_large_string(t), T.StringType()),
    (pa.types.is_timestamp, T.TimestampType()),
    (pa.types.is_date32, T.DateType()),
]

_TO_ARROW: dict[type, pa.DataType] = {
    T.BooleanType: pa.bool_(),
    T.IntegerType: pa.int32(),
    T.LongType: pa.int64(),
    T.DoubleType: pa.float64(),
    T.FloatType: pa.float32(),
    T.StringType: pa.string(),
    T.TimestampType: pa.timestamp("us", tz="UTC"),
    T.DateType: pa.date32(),
}


def spark_type(arrow_type: pa.DataType) -> T.DataType:
    for test, spark in _TO_SPARK:
        if test(arrow_type):  # type: ignore[operator]
            return spark
    raise TypeError(f"no Spark type for Arrow type {arrow_type}")


def arrow_type(spark: T.DataType) -> pa.DataType:
    try:
        return _TO_ARROW[type(spark)]
    except KeyError:
        raise TypeError(f"no Arrow type for Spark type {spark}") from None


def to_spark_schema(schema: pa.Schema) -> T.StructType:
    return T.StructType([T.StructField(f.name, spark_type(f.type), f.nullable) for f in schema])


def to_arrow_schema(schema: T.StructType) -> pa.Schema:
    return pa.schema([pa.field(f.name, arrow_type(f.dataType), f.nullable) for f in schema])
