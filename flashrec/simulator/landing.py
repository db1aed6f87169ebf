"""Write the simulated history as landing files, the way a storefront exporter would.

Files are written atomically (readers never see half a file) and only when their bytes
change, so re-running the demo is a no-op and downstream incremental loads stay quiet.
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path
from typing import Any

from flashrec.simulator.config import SimulationConfig
from flashrec.simulator.flash_sale import simulate

log = logging.getLogger("flashrec.simulator")


@dataclass(frozen=True)
class DayFile:
    """One landing file and what is in it (``lines = valid + duplicates + bad``)."""

    day: date
    path: Path
    lines: int
    valid_events: int
    bad_lines: int
    duplicates: int
    late_events: int
    written: bool  # False when an identical file was already there


@dataclass(frozen=True)
class HistoryManifest:
    source: str
    landing_dir: Path
    files: list[DayFile]

    @property
    def totals(self) -> dict[str, int]:
        keys = ("lines", "valid_events", "bad_lines", "duplicates", "late_events")
        return {k: sum(getattr(f, k) for f in self.files) for k in keys}

    def to_dict(self) -> dict[str, Any]:
        files = [asdict(f) | {"day": f.day.isoformat(), "path": str(f.path)} for f in self.files]
        return {"source": self.source, "landing_dir": str(self.landing_dir), "files": files}


def day_file_path(landing_dir: Path, source: str, day: date) -> Path:
    return landing_dir / source / f"dt={day.isoformat()}" / "part-00000.jsonl"


def write_if_changed(path: Path, data: bytes) -> bool:
    """Atomically replace ``path`` with ``data`` unless it already holds exactly that."""
    if path.is_file() and path.stat().st_size == len(data) and path.read_bytes() == data:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return True


def write_history(
    config: SimulationConfig, landing_dir: Path, source: str = "simulator"
) -> HistoryManifest:
    """Simulate and write ``<landing_dir>/<source>/dt=YYYY-MM-DD/part-00000.jsonl`` per day."""
    result = simulate(config)
    files = []
    for day in result.landing:
        path = day_file_path(Path(landing_dir), source, day.day)
        data = "".join(line + "\n" for line in day.lines).encode("utf-8")
        written = write_if_changed(path, data)
        log.info("%s %s: %d lines", "wrote" if written else "unchanged", path, len(day.lines))
        files.append(
            DayFile(
                day=day.day,
                path=path,
                lines=len(day.lines),
                valid_events=day.valid_events,
                bad_lines=day.bad_lines,
                duplicates=day.duplicates,
                late_events=day.late_events,
                written=written,
            )
        )
    return HistoryManifest(source=source, landing_dir=Path(landing_dir), files=files)
