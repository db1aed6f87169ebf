"""The Dagster instance configuration (``$DAGSTER_HOME/dagster.yaml``), written once here.

Telemetry off, and the run queue: at most two runs at a time (two cores), one per lane
(``orchestration.automation.LANE``), so a lake refresh never races another one on the
same tables and a retrain never waits behind the lake.

    python -m orchestration.instance <dagster home>   # write it (idempotent)
"""

from __future__ import annotations

import sys
from pathlib import Path

from orchestration.automation import LANE

DAGSTER_YAML = f"""telemetry:
  enabled: false
concurrency:
  runs:
    max_concurrent_runs: 2
    tag_concurrency_limits:
      - key: "{LANE}"
        value:
          applyLimitPerUniqueValue: true
        limit: 1
"""


def write_instance_yaml(home: Path) -> Path:
    """Write ``dagster.yaml`` into ``home`` unless it already says exactly this."""
    home.mkdir(parents=True, exist_ok=True)
    path = home / "dagster.yaml"
    if not path.exists() or path.read_text() != DAGSTER_YAML:
        path.write_text(DAGSTER_YAML)
    return path


if __name__ == "__main__":
    print(write_instance_yaml(Path(sys.argv[1] if len(sys.argv) > 1 else "var/dagster")))
