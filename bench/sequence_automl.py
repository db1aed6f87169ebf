"""Sequence-model AutoML benchmark: its study on a window of DIGINETICA's training sessions.

``python -m bench.sequence_automl [--data DIR] [--trials N] [--window N] [--quick]``.
Size (dimension, layers, heads, sequence length) and epochs are searched with Hyperband
over epochs; quality is MRR@20 over all items on the validation tail of the window's
TRAINING sessions (never the test pairs); cost is ms per query to read the session state
and search the top-K, timed on a batch of the model service's size. Bounded for a 2-core
machine by the window (the latest ``--window`` sessions). Prints the trials, the
quality/cost front and the choice (the cheapest trial within 1% of the best); the last
line is machine-readable.
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from pathlib import Path

import numpy as np
import optuna

from flashrec.loaders.session_split import load_split
from flashrec.recsys.automl.sequence import SequenceSpace, run_sequence_study
from flashrec.recsys.automl.study import open_storage, storage_path
from flashrec.recsys.sequence.config import SequenceConfig
from flashrec.settings import Settings

log = logging.getLogger("bench.sequence_automl")


def run(data_dir: Path, trials: int, window: int, max_epochs: int, quick: bool) -> str:
    t0 = time.perf_counter()
    settings = Settings.from_env()
    split = load_split(data_dir)
    sessions = [np.asarray(s) for s in split.train_sessions[-window:]]
    base = SequenceConfig(epochs=max_epochs, seed=settings.seed)
    space = SequenceSpace(epochs=(1 if quick else 2, max_epochs))
    name = f"bench-seq-{data_dir.name}-{window}" + ("-quick" if quick else "")
    out = run_sequence_study(
        sessions,
        split.n_items,
        open_storage(storage_path(settings)),
        name,
        trials,
        base,
        space=space,
        fresh=True,
    )
    print(f"\n== sequence study on the latest {len(sessions)} training sessions ==")
    print("\n".join(out.table()))
    print("front (cheapest first): " + ", ".join(f"#{out.trials[i].number}" for i in out.front))
    chosen, best = out.trials[out.chosen], out.trials[out.best]
    cores = os.cpu_count()
    line = (
        f"sequence_automl dataset={data_dir.name} trials={len(out.trials) + out.n_pruned} "
        f"completed={len(out.trials)} pruned={out.n_pruned} best_MRR@20={best.mrr_at_20:.2f} "
        f"chosen=#{chosen.number} chosen_MRR@20={chosen.mrr_at_20:.2f} "
        f"chosen_ms_per_query={chosen.cost_ms_per_query:.3f} "
        f"wall_s={time.perf_counter() - t0:.0f} cores={cores}"
    )
    print(line)
    return line


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help="benchmark folder")
    parser.add_argument("--quick", action="store_true", help="tiny smoke run")
    parser.add_argument("--trials", type=int, default=None, help="study budget (10)")
    parser.add_argument("--window", type=int, default=None, help="latest sessions (40000)")
    parser.add_argument("--max-epochs", type=int, default=None, help="fidelity cap (6)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    data = args.data or Settings.from_env().shared_data_dir / "diginetica"
    run(
        data,
        args.trials or (3 if args.quick else 10),
        args.window or (3000 if args.quick else 40_000),
        args.max_epochs or (2 if args.quick else 6),
        args.quick,
    )


if __name__ == "__main__":
    main()
