"""The layout's rules, checked on the source: no import cycles (imports inside functions
included, which hide them from Python), the engines never import each other, and the
framework-free core imports no engine, service or orchestration code."""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

from flashrec.settings import PROJECT_ROOT

PACKAGES = (
    "flashrec",
    "spark_jobs",
    "flink_jobs",
    "feature_repo",
    "assets",
    "orchestration",
    "bentos",
    "bench",
)


def _modules() -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        for path in (PROJECT_ROOT / package).rglob("*.py"):
            name = ".".join(path.relative_to(PROJECT_ROOT).with_suffix("").parts)
            out[name.removesuffix(".__init__")] = path
    return out


def _imported(path: Path) -> set[str]:
    """Every absolute module name ``path`` imports, at any depth of its code."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names |= {f"{node.module}.{a.name}" for a in node.names} | {node.module}
    return names


def _graph() -> dict[str, set[str]]:
    """Project module -> project modules it imports (a name resolves to its module)."""
    modules = _modules()

    def resolve(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = {resolve(n) for n in _imported(path)} - {None, name}
        # importing a.b.c also runs a and a.b: those parent edges are not design choices
        graph[name] = {t for t in targets if not name.startswith(f"{t}.")}
    return graph


def test_no_import_cycles():
    try:
        graphlib.TopologicalSorter(_graph()).prepare()
    except graphlib.CycleError as exc:
        raise AssertionError(f"import cycle: {' -> '.join(exc.args[1])}") from None


def _imports_of(package: str) -> set[str]:
    modules = _modules()
    return {
        name
        for module, path in modules.items()
        if module == package or module.startswith(f"{package}.")
        for name in _imported(path)
    }


def _touches(names: set[str], forbidden: tuple[str, ...]) -> set[str]:
    return {n for n in names if n.split(".")[0] in forbidden}


def test_the_engines_never_import_each_other():
    assert not _touches(_imports_of("flink_jobs"), ("spark_jobs", "pyspark", "delta"))
    assert not _touches(_imports_of("spark_jobs"), ("flink_jobs", "pyflink"))


def test_the_core_imports_no_engine_service_or_orchestration():
    forbidden = (
        "spark_jobs",
        "flink_jobs",
        "assets",
        "orchestration",
        "bentos",
        "bench",
        "pyspark",
        "pyflink",
        "dagster",
        "bentoml",
    )
    assert not _touches(_imports_of("flashrec"), forbidden)
