"""`python -m orchestration.k8s [--out DIR]`: write the production manifests as YAML."""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from flashrec.settings import Settings
from orchestration.k8s.render import all_objects


def render(settings: Settings, out: Path) -> list[Path]:
    """Write every file of ``all_objects`` into ``out``; returns the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, objects in all_objects(settings).items():
        path = out / name
        path.write_text(yaml.safe_dump_all(objects, sort_keys=False, explicit_start=True))
        written.append(path)
    return written


def main() -> None:
    settings = Settings.from_env()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=settings.var_dir / "k8s")
    out: Path = parser.parse_args().out
    for path in render(settings, out):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
