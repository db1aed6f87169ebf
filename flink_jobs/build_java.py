"""Compile the Java Redis Streams source into ``var/flink/flashrec-redis-source.jar``.

The classes are compiled with ``javac --release 17`` against PyFlink's own jars (found next
to the installed ``pyflink`` package) and packaged with ``jar``. Maven Central is not needed.
Idempotent: nothing is done when the jar is newer than every source file.

    python -m flink_jobs.build_java [--force] [--out PATH]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

JAVA_SRC = Path(__file__).resolve().parent / "java" / "src" / "main" / "java"
JAR_NAME = "flashrec-redis-source.jar"


def default_jar_path() -> Path:
    from flashrec.settings import Settings

    return Settings.from_env().var_dir / "flink" / JAR_NAME


def pyflink_lib_dir() -> Path:
    import pyflink

    lib = Path(os.path.dirname(pyflink.__file__)) / "lib"
    if not any(lib.glob("flink-dist-*.jar")):
        raise RuntimeError(f"no flink-dist jar under {lib}: is apache-flink installed?")
    return lib


def _java_tool(name: str) -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / name).exists():
        return str(Path(java_home) / "bin" / name)
    found = shutil.which(name)
    if not found:
        raise RuntimeError(f"`{name}` not found: install a JDK 17 (not just a JRE)")
    return found


def sources() -> list[Path]:
    return sorted(JAVA_SRC.rglob("*.java"))


def is_up_to_date(jar: Path) -> bool:
    if not jar.exists():
        return False
    newest = max(p.stat().st_mtime for p in sources())
    return jar.stat().st_mtime > newest


def build(jar: Path | None = None, *, force: bool = False, log=print) -> Path:
    """Build the jar if missing or stale; return its path."""
    jar = Path(jar) if jar else default_jar_path()
    srcs = sources()
    if not srcs:
        raise RuntimeError(f"no Java sources under {JAVA_SRC}")
    if not force and is_up_to_date(jar):
        log(f"[build_java] {jar} is up to date ({len(srcs)} sources), nothing to do")
        return jar
    classpath = str(pyflink_lib_dir() / "*")
    jar.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="flashrec-javac-") as tmp:
        classes = Path(tmp) / "classes"
        classes.mkdir()
        cmd = [
            _java_tool("javac"),
            "--release",
            "17",
            "-nowarn",
            "-encoding",
            "UTF-8",
            "-cp",
            classpath,
            "-d",
            str(classes),
            *map(str, srcs),
        ]
        log(f"[build_java] javac --release 17 -cp {classpath} ({len(srcs)} sources)")
        subprocess.run(cmd, check=True)
        partial = jar.parent / f".{jar.name}.{os.getpid()}.tmp"
        log(f"[build_java] jar -> {jar}")
        subprocess.run(
            [_java_tool("jar"), "--create", "--file", str(partial), "-C", str(classes), "."],
            check=True,
        )
        partial.replace(jar)  # atomic: concurrent readers never see a half-written jar
    return jar


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="rebuild even if up to date")
    parser.add_argument("--out", type=Path, default=None, help="jar path (default var/flink/)")
    args = parser.parse_args(argv)
    build(args.out, force=args.force)
    return 0


if __name__ == "__main__":
    sys.exit(main())
