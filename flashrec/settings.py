"""One place where configuration enters the project.

Every knob is an environment variable with a default that runs on one machine
(local Redis, local Spark, Flink mini-cluster, files under var/). Nothing else in the
project reads the environment; pass a ``Settings`` around instead. Each variable is
documented in README.md ("Configuration").
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _env(name: str, default: str) -> str:
    return os.environ.get(name, default)


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ValueError(f"environment variable {name} must be an integer, got {raw!r}") from exc


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ValueError(f"environment variable {name} must be a number, got {raw!r}") from exc


def _env_path(name: str, default: Path) -> Path:
    raw = os.environ.get(name)
    return Path(raw).expanduser().resolve() if raw else default


def _var_dir() -> Path:
    return _env_path("FLASHREC_VAR_DIR", PROJECT_ROOT / "var")


@dataclass(frozen=True)
class Settings:
    """Resolved configuration; build with ``Settings.from_env()``."""

    var_dir: Path = field(default_factory=_var_dir)
    lake_dir: Path = field(
        default_factory=lambda: _env_path("FLASHREC_LAKE_DIR", _var_dir() / "lake")
    )
    landing_dir: Path = field(
        default_factory=lambda: _env_path("FLASHREC_LANDING_DIR", _var_dir() / "landing")
    )
    artifacts_dir: Path = field(
        default_factory=lambda: _env_path("FLASHREC_ARTIFACTS_DIR", _var_dir() / "artifacts")
    )
    shared_data_dir: Path = field(
        default_factory=lambda: _env_path(
            "FLASHREC_SHARED_DATA_DIR", PROJECT_ROOT.parent / "shared" / "data"
        )
    )
    redis_url: str = field(default_factory=lambda: _env("REDIS_URL", "redis://127.0.0.1:6379/0"))
    events_stream: str = field(
        default_factory=lambda: _env("FLASHREC_EVENTS_STREAM", "flashrec:events")
    )
    deadletter_stream: str = field(
        default_factory=lambda: _env("FLASHREC_DEADLETTER_STREAM", "flashrec:deadletter")
    )
    rescore_stream: str = field(
        default_factory=lambda: _env("FLASHREC_RESCORE_STREAM", "flashrec:rescore")
    )
    seed: int = field(default_factory=lambda: _env_int("FLASHREC_SEED", 42))
    spark_master: str = field(default_factory=lambda: _env("FLASHREC_SPARK_MASTER", "local[2]"))
    spark_driver_memory: str = field(
        default_factory=lambda: _env("FLASHREC_SPARK_DRIVER_MEMORY", "2g")
    )
    spark_shuffle_partitions: int = field(
        default_factory=lambda: _env_int("FLASHREC_SPARK_SHUFFLE_PARTITIONS", 4)
    )
    lake_writer: str = field(default_factory=lambda: _env("FLASHREC_LAKE_WRITER", "delta-rs"))
    allowed_lateness_days: int = field(
        default_factory=lambda: _env_int("FLASHREC_ALLOWED_LATENESS_DAYS", 1)
    )
    max_future_skew_s: float = field(
        default_factory=lambda: _env_float("FLASHREC_MAX_FUTURE_SKEW_S", 300.0)
    )
    max_event_bytes: int = field(default_factory=lambda: _env_int("FLASHREC_MAX_EVENT_BYTES", 8192))
    session_gap_minutes: int = field(
        default_factory=lambda: _env_int("FLASHREC_SESSION_GAP_MINUTES", 30)
    )
    sim_users: int = field(default_factory=lambda: _env_int("FLASHREC_SIM_USERS", 2000))
    sim_items: int = field(default_factory=lambda: _env_int("FLASHREC_SIM_ITEMS", 500))
    sim_days: int = field(default_factory=lambda: _env_int("FLASHREC_SIM_DAYS", 3))
    sim_sessions_per_day: int = field(
        default_factory=lambda: _env_int("FLASHREC_SIM_SESSIONS_PER_DAY", 1500)
    )
    sim_start_date: str = field(
        default_factory=lambda: _env("FLASHREC_SIM_START_DATE", "2026-11-20")
    )

    def __post_init__(self) -> None:
        if self.lake_writer not in {"delta-rs", "delta-spark"}:
            raise ValueError(
                f"FLASHREC_LAKE_WRITER must be 'delta-rs' or 'delta-spark', got {self.lake_writer!r}"
            )

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        """Read the environment now (not at import), then apply explicit overrides."""
        base = cls()
        if not overrides:
            return base
        known = {f.name for f in fields(cls)}
        unknown = set(overrides) - known
        if unknown:
            raise TypeError(f"unknown settings: {sorted(unknown)}")
        values = {f.name: getattr(base, f.name) for f in fields(cls)}
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]

    def table_path(self, name: str) -> Path:
        """Folder of one lake table (``<lake>/<layer>/<table>``, e.g. ``silver/events``)."""
        return self.lake_dir / name

    @property
    def dagster_home(self) -> Path:
        return self.var_dir / "dagster"
