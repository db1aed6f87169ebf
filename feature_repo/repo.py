"""Module-level Feast objects, only for the `feast` CLI (which scans modules for them).

Code applies the same objects with ``feature_repo.store.apply_definitions``; this module
builds them from ``Settings.from_env()`` so the CLI sees the lake the environment names.
"""

from __future__ import annotations

from feature_repo.definitions import build_definitions
from flashrec.settings import Settings

for _obj in build_definitions(Settings.from_env().lake_dir):
    globals()[f"{type(_obj).__name__.lower()}_{_obj.name}"] = _obj
