"""The project's container images: what each one holds and which processes run on it.

Each runtime image holds what its processes import and nothing else (the read API needs
no Spark): the Python packages come from ``requirements/<image>.txt`` pinned by
constraints.txt, and a test imports every process's entry modules and checks that each
distribution they load is installed by that image's requirements, and that none of an
image's ``excluded`` packages is.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from flashrec.settings import PROJECT_ROOT

K8S_DIR = PROJECT_ROOT / "orchestration" / "k8s"


@dataclass(frozen=True)
class Image:
    name: str
    #: Modules each process of the image imports at start (its entry points).
    entry_modules: tuple[str, ...]
    #: Distributions the image must never carry.
    excluded: tuple[str, ...]
    #: None: the whole project (pyproject.toml), like the code image.
    requirements: str | None

    @property
    def dockerfile(self) -> Path:
        return K8S_DIR / f"Dockerfile.{self.name}"

    def requirements_path(self) -> Path | None:
        return K8S_DIR / "requirements" / self.requirements if self.requirements else None


#: Loaded here only because they are installed; their importers guard the import
#: (try/except ImportError) and work without them: jwt (cryptography, cffi), urllib3
#: (zstandard), uvicorn (a2wsgi), starlette (python_multipart); setuptools' .pth hook.
OPTIONAL_IMPORTS = frozenset(
    {"cryptography", "_cffi_backend", "zstandard", "a2wsgi", "python_multipart", "_distutils_hack"}
)

HEAVY = ("pyspark", "apache-flink", "dagster", "xgboost", "faiss-cpu", "optuna", "feast")

IMAGES: dict[str, Image] = {
    "serving": Image(
        "serving",
        (
            "bentos.gateway",
            "bentos.read_api",
            "flashrec.eventlog.kafka",
            "flashrec.forecast.__main__",
            "flashrec.attribution.__main__",
        ),
        HEAVY,
        "serving.txt",
    ),
    "model": Image(
        "model",
        ("bentos.model_service", "bentos.scorer_process", "bentos.scorer_features"),
        ("pyspark", "apache-flink", "dagster", "optuna"),
        "model.txt",
    ),
    "flink": Image(
        "flink",
        ("flink_jobs.features_job", "pyflink.datastream", "feature_repo.store"),
        ("pyspark", "dagster", "xgboost", "faiss-cpu", "optuna", "bentoml"),
        "flink.txt",
    ),
    "code": Image("code", ("orchestration.definitions",), (), None),
}


def _normalize(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def requirement_lines(path: Path) -> list[str]:
    """Requirement strings of a requirements file, following ``-r`` includes."""
    lines = []
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line.startswith("-r "):
            lines += requirement_lines(path.parent / line[3:].strip())
        elif line:
            lines.append(line)
    return lines


def installed_closure(requirements: list[str]) -> set[str]:
    """Distributions that installing ``requirements`` brings, read from the installed
    packages' metadata (extras and environment markers honoured)."""
    from importlib import metadata

    from packaging.requirements import Requirement

    seen: set[str] = set()
    todo = [Requirement(r) for r in requirements]
    done: set[tuple[str, frozenset[str]]] = set()
    while todo:
        req = todo.pop()
        key = (_normalize(req.name), frozenset(req.extras))
        if key in done:
            continue
        done.add(key)
        seen.add(key[0])
        try:
            dist = metadata.distribution(req.name)
        except metadata.PackageNotFoundError:
            continue  # not for this platform (marker) or not installed: nothing to walk
        for spec in dist.requires or []:
            child = Requirement(spec)
            environments = [{"extra": e} for e in req.extras] or [{"extra": ""}]
            if child.marker is None or any(child.marker.evaluate(env) for env in environments):
                todo.append(child)
    return seen


#: Prints, for each top-level module loaded after importing argv's modules, the
#: distributions that provide it (several for namespace packages such as ``google``).
_IMPORTED = """
import importlib, json, sys
from importlib import metadata
for name in sys.argv[1:]:
    importlib.import_module(name)
owners = metadata.packages_distributions()
tops = {m.partition(".")[0] for m in list(sys.modules)}
print(json.dumps({t: owners[t] for t in sorted(tops) if t in owners}))
"""


def imported_modules(modules: tuple[str, ...]) -> dict[str, set[str]]:
    """Top-level modules (with their providing distributions) that a fresh interpreter
    loads to import ``modules``: what the process needs at start."""
    import json
    import os
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "BENTOML_DO_NOT_TRACK": "true"}
    done = subprocess.run(
        [sys.executable, "-c", _IMPORTED, *modules],
        capture_output=True, text=True, cwd=PROJECT_ROOT, env=env, check=True,
    )  # fmt: skip
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    return {top: {_normalize(d) for d in dists} for top, dists in loaded.items()}


def uncovered_modules(image: Image) -> dict[str, set[str]]:
    """Modules the image's processes load that its requirements do not install."""
    path = image.requirements_path()
    assert path is not None, f"{image.name} installs the whole project"
    closure = installed_closure(requirement_lines(path))
    return {
        top: dists
        for top, dists in imported_modules(image.entry_modules).items()
        if top not in OPTIONAL_IMPORTS and not dists & (closure | {"flashrec"})
    }
