"""Make DuckDB's `delta` extension available without network access.

Feast's duckdb offline store reads our Delta tables through ibis -> DuckDB's ``delta``
extension. DuckDB downloads extensions on first use, which fails on machines without
internet. The PyPI wheel ``duckdb-ext-delta`` ships the binary for exactly one DuckDB
version (hence the ``duckdb==1.4.4`` pin); installing it once from that file copies it into
DuckDB's extension folder (~/.duckdb/extensions), after which every connection, including
the ones ibis opens, can ``LOAD delta`` offline.
"""

from __future__ import annotations

import platform
import sys
from functools import cache
from pathlib import Path

import duckdb


def _platform() -> str:
    machine = platform.machine().lower()
    arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(
        machine, machine
    )
    system = {"linux": "linux", "darwin": "osx"}.get(sys.platform, sys.platform)
    return f"{system}_{arch}"


def bundled_extension() -> Path:
    """Path of the extension binary shipped by the duckdb-ext-delta wheel."""
    import importlib.util

    spec = importlib.util.find_spec("duckdb_ext")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("duckdb-ext-delta is not installed (pip install duckdb-ext-delta)")
    root = Path(next(iter(spec.submodule_search_locations)))
    path = root / "extensions" / f"v{duckdb.__version__}" / _platform() / "delta.duckdb_extension"
    if not path.exists():
        shipped = sorted(p.name for p in (root / "extensions").iterdir())
        raise RuntimeError(
            f"duckdb-ext-delta ships no extension for duckdb {duckdb.__version__} on "
            f"{_platform()} (it has {shipped}); pin duckdb to the version it was built for"
        )
    return path


@cache
def ensure_delta_extension() -> None:
    """Install the delta extension from the wheel once; a no-op when already installed."""
    with duckdb.connect() as con:
        installed = con.execute(
            "SELECT installed FROM duckdb_extensions() WHERE extension_name = 'delta'"
        ).fetchone()
        if not (installed and installed[0]):
            con.execute(f"INSTALL '{bundled_extension()}'")
        con.execute("LOAD delta")


if __name__ == "__main__":  # `python -m feature_repo.duckdb_delta` from setup scripts
    ensure_delta_extension()
    print(f"duckdb {duckdb.__version__}: delta extension installed and loadable")
