"""The champion model of the SLO benchmark: reuse one, or fit a small one in seconds.

    python -m bench.slo_model --work var/bench/slo/work [--model FOLDER]

Runs as its own process (``bench.slo`` starts it) so that the benchmark's driver never
imports the training stack. Order of preference, each candidate loaded once to prove it
still fits this code (a model saved before a feature change cannot be served):

1. ``--model FOLDER``: a catalog model artifact folder;
2. the newest artifact of the demo's model chain (``$FLASHREC_ARTIFACTS_DIR/models/``),
   trained on the simulator's history, the same catalog the live stream uses;
3. the benchmark's own earlier fit (``<work>/artifacts/models/``);
4. a fresh fit: one simulated day (no Spark, no lake, no Feast offline store, so the
   ranker's shopper-feature columns are left empty), a small two-tier configuration
   (~10 s on two cores), saved under ``<work>/artifacts/models/`` for the next run.

The chosen model is registered as champion in the BentoML home ``$BENTOML_HOME`` (the
benchmark's own, emptied first, so the champion is exactly this model). Prints one JSON
line: ``{"model_version", "artifact", "origin"}``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from flashrec.settings import PROJECT_ROOT, Settings

log = logging.getLogger("bench.slo_model")


def simulated_interactions(settings: Settings, days: int = 1) -> list[dict[str, Any]]:
    """``gold/interactions``-shaped rows from the simulator's history, without Spark (the
    live stream's catalog: same seed and sizes, FLASHREC_SEED / FLASHREC_SIM_*)."""
    from flashrec.events import StorefrontEvent
    from flashrec.simulator import SimulationConfig, simulate
    from spark_jobs.gold import EVENT_WEIGHTS

    result = simulate(SimulationConfig.from_settings(settings, days=days))
    catalog = result.catalog
    index = {item: n for n, item in enumerate(catalog.item_ids)}
    seq: dict[str, int] = {}
    rows = []
    for event in result.events:
        if not isinstance(event, StorefrontEvent):
            continue
        n = seq.get(event.session_id, 0)
        seq[event.session_id] = n + 1
        i = index[event.item_id]
        rows.append(
            {
                "session_id": event.session_id,
                "event_time": event.event_time,
                "event_seq": n,
                "item_id": event.item_id,
                "weight": EVENT_WEIGHTS[event.event_type],
                "price": event.price,
                "category": catalog.category_of(i),
                "brand": catalog.brand_of(i),
                "device": event.device,
                "referrer": event.referrer,
            }
        )
    return rows


def fit_small(folder_root: Path, settings: Settings) -> Path:
    from flashrec.recsys.candidates import CandidateConfig
    from flashrec.recsys.model import TwoTierConfig
    from flashrec.recsys.ranker import RankerConfig
    from flashrec.scoring.catalog_model import CatalogModel, training_data

    seed = settings.seed
    data = training_data(simulated_interactions(settings))
    config = TwoTierConfig(
        candidates=CandidateConfig(emb_dim=16),
        ranker=RankerConfig(num_rounds=60, early_stopping=10, seed=seed),
        seed=seed,
    )
    model = CatalogModel.fit(data.sessions, data.catalog, config=config)
    model.model_version = f"slo-{model.model_version}"
    return model.save_versioned(folder_root)


def _newest(root: Path) -> Iterator[Path]:
    folders = [p.parent for p in root.glob("*/meta.json")] if root.is_dir() else []
    yield from sorted(folders, key=lambda p: p.stat().st_mtime, reverse=True)


def loads(folder: Path) -> bool:
    from flashrec.scoring.catalog_model import CatalogModel

    try:
        CatalogModel.load(folder)
    except Exception as exc:  # noqa: BLE001 - any reason makes it unusable here
        log.warning("model %s cannot be loaded by this code (%s): skipped", folder, exc)
        return False
    return True


def choose(work: Path, explicit: Path | None, settings: Settings) -> tuple[Path, str]:
    """(artifact folder, origin) following the order in the module docstring."""
    own = work / "artifacts" / "models"
    candidates: list[tuple[Path, str]] = []
    if explicit is not None:
        candidates.append((explicit, "given"))
    demo_root = settings.artifacts_dir / "models"
    candidates += [(p, "demo") for p in list(_newest(demo_root))[:1]]
    candidates += [(p, "cached") for p in list(_newest(own))[:1]]
    for folder, origin in candidates:
        if loads(folder):
            return folder, origin
    if explicit is not None:
        raise SystemExit(f"--model {explicit}: not a loadable catalog model artifact")
    log.info("no usable model found: fitting a small one on one simulated day")
    folder = fit_small(own, settings)
    for stale in _newest(own):
        if stale != folder:
            shutil.rmtree(stale, ignore_errors=True)
    return folder, "fitted"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="the benchmark's work folder")
    parser.add_argument("--model", type=Path, default=None, help="catalog model artifact folder")
    parser.add_argument(
        "--project-var",
        type=Path,
        default=PROJECT_ROOT / "var",
        help="where the demo's artifacts are looked for (default: the project's var/)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    settings = Settings.from_env(var_dir=args.project_var.resolve())
    folder, origin = choose(args.work.resolve(), args.model, settings)
    home = Path(os.environ["BENTOML_HOME"])
    if home.resolve() == (PROJECT_ROOT / "var" / "bentoml").resolve():
        raise SystemExit("refusing to register into the project's own BentoML home")
    shutil.rmtree(home / "models", ignore_errors=True)
    from bentos.model_registry import register
    from flashrec.scoring.catalog_model import CatalogModel

    model = CatalogModel.load(folder)
    tag = register(model, "champion")
    log.info("registered %s (%s) as champion in %s", tag, origin, home)
    doc = {"model_version": model.model_version, "artifact": str(folder), "origin": origin}
    print(json.dumps(doc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
