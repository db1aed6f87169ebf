"""The landing layout the lake ingests from, shared by its writers and bronze.

``<landing_dir>/<source>/dt=YYYY-MM-DD/*.jsonl``: one JSON payload per line. Sources:
``simulator`` (history written by the flash-sale simulator, one file set per day) and
``live`` (the storefront's accepted events, written by the stream job's FileSink as they
arrive). A writer may keep unfinished files in the same folder as long as their names
start with a dot (FileSink's in-progress files do): readers never see them.
"""

from __future__ import annotations

from pathlib import Path

LIVE_SOURCE = "live"
SIMULATOR_SOURCE = "simulator"
SOURCES = (SIMULATOR_SOURCE, LIVE_SOURCE)
PART_PREFIX = "part"
PART_SUFFIX = ".jsonl"


def day_folder(landing_dir: Path, source: str, day: str) -> Path:
    return Path(landing_dir) / source / f"dt={day}"


def finished_files(landing_dir: Path, source: str, day: str) -> list[Path]:
    """Complete files of one source and day, by name (hidden = still being written)."""
    folder = day_folder(landing_dir, source, day)
    if not folder.is_dir():
        return []
    return sorted(
        p for p in folder.iterdir() if p.name.endswith(PART_SUFFIX) and not p.name.startswith(".")
    )


def days_with_files(landing_dir: Path, source: str) -> list[str]:
    """Days that hold at least one finished file, oldest first."""
    root = Path(landing_dir) / source
    if not root.is_dir():
        return []
    days = (p.name.removeprefix("dt=") for p in root.glob("dt=*") if p.is_dir())
    return sorted(d for d in days if finished_files(landing_dir, source, d))
