"""Resources shared by the lake assets: the settings and the Spark session."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
from pyspark.sql import SparkSession

from flashrec.settings import Settings
from spark_jobs.delta_table import DeltaLakeTable
from spark_jobs.session import spark_session
from spark_jobs.tables import lake_table


class LakeResource(dg.ConfigurableResource):
    """Where the lake and landing files live; ``var_dir`` overrides FLASHREC_VAR_DIR."""

    var_dir: str | None = None

    def settings(self) -> Settings:
        if self.var_dir:
            return Settings.from_env(var_dir=Path(self.var_dir))
        return Settings.from_env()

    def table(self, name: str) -> DeltaLakeTable:
        return lake_table(self.settings(), name)


class SparkResource(dg.ConfigurableResource):
    """The process-wide SparkSession (local by default, FLASHREC_SPARK_MASTER otherwise)."""

    def session(self, settings: Settings) -> SparkSession:
        return spark_session(settings)
