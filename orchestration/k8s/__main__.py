"""`python -m orchestration.k8s [--out DIR]`: write the production manifests as YAML."""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from flashrec.settings import Settings
from orchestration.k8s.manifests import all_objects


def main() -> None:
    settings = Settings.from_env()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=settings.var_dir / "k8s")
    out: Path = parser.parse_args().out
    out.mkdir(parents=True, exist_ok=True)
    for name, objects in all_objects(settings).items():
        (out / name).write_text(yaml.safe_dump_all(objects, sort_keys=False))
        print(f"wrote {out / name} ({len(objects)} objects)")


if __name__ == "__main__":
    main()
