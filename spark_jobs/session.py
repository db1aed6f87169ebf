"""The one SparkSession factory: local by default, a cluster by FLASHREC_SPARK_MASTER."""

from __future__ import annotations

import os
import sys
import threading

from pyspark.sql import SparkSession

from flashrec.settings import Settings

_LOCK = threading.Lock()


def spark_session(settings: Settings, app_name: str = "flashrec") -> SparkSession:
    """Return the process-wide session, creating it on first use.

    Timestamps are written as INT64 micros in UTC: INT96 (Spark's default) gives files
    that delta-rs refuses to read, and a local time zone would shift event days.
    """
    with _LOCK:
        active = SparkSession.getActiveSession()
        if active is not None:
            return active
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        os.environ.setdefault("PYARROW_IGNORE_TIMEZONE", "1")
        # Python workers must run this interpreter (the venv), not the first on PATH;
        # PySpark reads it from the environment when the context starts.
        os.environ["PYSPARK_PYTHON"] = sys.executable
        warehouse = settings.var_dir / "spark-warehouse"
        builder = (
            SparkSession.builder.master(settings.spark_master)
            .appName(app_name)
            .config("spark.driver.memory", settings.spark_driver_memory)
            .config("spark.sql.shuffle.partitions", str(settings.spark_shuffle_partitions))
            .config("spark.default.parallelism", str(settings.spark_shuffle_partitions))
            .config("spark.sql.session.timeZone", "UTC")
            .config("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
            .config("spark.sql.execution.arrow.pyspark.enabled", "true")
            .config("spark.sql.sources.partitionColumnTypeInference.enabled", "false")
            .config("spark.ui.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false")
            .config("spark.sql.warehouse.dir", str(warehouse))
            .config("spark.driver.extraJavaOptions", f"-Dderby.system.home={warehouse}")
        )
        if settings.lake_writer == "delta-spark":
            builder = builder.config(
                "spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension"
            ).config(
                "spark.sql.catalog.spark_catalog", "org.apache.spark.sql.delta.catalog.DeltaCatalog"
            )
        session = builder.getOrCreate()
        session.sparkContext.setLogLevel("ERROR")
        return session
