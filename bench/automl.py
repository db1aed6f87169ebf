"""AutoML benchmark: a 50-trial ranker study on the Diginetica validation tail.

``python -m bench.automl [--data DIR] [--trials N] [--quick]``. Never touches the test
pairs: quality is MRR@20 on the validation tail of the TRAINING sessions, as in
``TwoTierModel.fit``. Bounded for a 2-core machine by subsampling (documented):

- sessions: the latest ``WINDOW`` training sessions, ending ``SHIFT`` sessions before the
  end of the file (those newest ``SHIFT`` sessions play the data of the retrain);
- rows: a uniform random subset of the tail's (prefix, next item) cases
  (``--train-cases``/``--valid-cases``), the same subset for every trial and dimension;
- rounds: RankerConfig's 400 rounds with early stopping 30, Hyperband over rounds.

Then a retrain "during the event" on the window moved forward by ``SHIFT`` sessions:
a study warm-started from the first (its best trials enqueued first) against a cold one
with the same small budget; the table says after how many trials each is within 1% of
the best value found on the new data. The last line is machine-readable.
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from pathlib import Path

import optuna

from flashrec.loaders.session_split import load_split
from flashrec.recsys.automl.data import RankingDataBuilder
from flashrec.recsys.automl.pareto import Point
from flashrec.recsys.automl.pipeline import AutoMLResult, run_automl
from flashrec.recsys.automl.study import StudyConfig, StudyOutcome, open_storage, run_study
from flashrec.recsys.model import TwoTierConfig
from flashrec.settings import Settings

log = logging.getLogger("bench.automl")

FULL = {
    "window": 40_000,
    "shift": 4_000,
    "train_cases": 3_000,
    "valid_cases": 2_500,
    "dims": (8, 16, 32, 64, 128),
    "retrain_trials": 6,
}
QUICK = {
    "window": 5_000,
    "shift": 1_000,
    "train_cases": 400,
    "valid_cases": 300,
    "dims": (8, 16),
    "retrain_trials": 3,
}


def front_lines(title: str, points: list[Point], front: list[int], unit: str) -> list[str]:
    out = [f"{title} ({len(front)} of {len(points)} points on the front):"]
    for i in front:
        p = points[i]
        out.append(f"  {p.label:<8} MRR@20={p.quality:6.2f}  {unit}={p.cost:.3f}")
    return out


def retrain(
    builder: RankingDataBuilder,
    storage: optuna.storages.BaseStorage,
    previous: str,
    trials: int,
    seed: int,
    threads: int,
) -> tuple[StudyOutcome, StudyOutcome, float]:
    """Warm vs cold study on the new window; returns both and the convergence target."""
    data = builder.data()
    common = {
        "n_trials": trials,
        "fresh": True,
        "seed": seed + 1,
        "n_startup_trials": 10,
        "threads": threads,
    }
    _, warm = run_study(
        data,
        storage,
        StudyConfig(
            study_name=f"{previous}-retrain-warm",
            warm_start_from=previous,
            warm_start_top_k=3,
            **common,
        ),
    )
    _, cold = run_study(data, storage, StudyConfig(study_name=f"{previous}-retrain-cold", **common))
    target = 0.99 * max(warm.best_value, cold.best_value)
    return warm, cold, target


def report(
    res: AutoMLResult, warm: StudyOutcome, cold: StudyOutcome, target: float, wall: float
) -> str:
    s = res.study
    print(
        f"\n== ranker study {s.study_name}: {s.n_run} trials, {s.n_pruned} pruned "
        f"({s.pruned_share:.0%}), {s.wall_s:.0f}s =="
    )
    print("\n".join(res.table()))
    d, b, c = res.default.result, res.best.result, res.chosen.result
    print(
        f"best vs {res.default.name}: MRR@20 {b.mrr_at_20:.2f} vs {d.mrr_at_20:.2f} "
        f"({res.gain:+.2f} points, {res.gain / d.mrr_at_20 * 100:+.1f}%)"
    )
    print(
        f"scoring throughput (1 core): best {b.throughput_per_s / d.throughput_per_s:.2f}x, "
        f"chosen (cheapest within 1%) {c.throughput_per_s / d.throughput_per_s:.2f}x "
        "the default's"
    )
    print(
        "best params: "
        + ", ".join(
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
            for k, v in sorted(res.best.params.items())
        )
    )
    print()
    print(
        "\n".join(
            front_lines("quality/cost Pareto front", res.cost_points, res.cost_front, "ms_per_1k")
        )
    )
    emb = res.embedding
    if emb is not None:
        print(
            "\n".join(
                front_lines(
                    "quality/size Pareto front (embedding dimension)",
                    emb.points,
                    emb.front,
                    "table_MB",
                )
            )
        )
        print("all dims: " + ", ".join(f"{p.label}:{p.quality:.2f}" for p in emb.points))
        print(
            f"embedding: best d={emb.best_dim}, chosen d={emb.chosen_dim} (smallest within "
            f"1%), loss {emb.loss_pct:.2f}%"
        )
    print(
        f"\nwarm-start retrain (target: within 1% of the best on the new data, "
        f"{target:.2f}): warm reached it after {warm.trials_to_reach(target)} trial(s) "
        f"({warm.n_enqueued} enqueued), cold after {cold.trials_to_reach(target)} "
        f"of {cold.n_run} (None = not within the budget); warm best {warm.best_value:.2f}, "
        f"cold best {cold.best_value:.2f}"
    )
    print("plots: " + ", ".join(f"{k}={v}" for k, v in res.plots.items()))
    print(f"study storage: {res.storage} (optuna-dashboard sqlite:///{res.storage})")
    print(f"bench wall time: {wall:.0f}s on {os.cpu_count()} cores")
    line = (
        f"automl trials={s.n_run} pruned={s.n_pruned} best={b.mrr_at_20:.2f} "
        f"default={d.mrr_at_20:.2f} emb_dim={emb.chosen_dim if emb else 0} "
        f"emb_loss_pct={emb.loss_pct if emb else 0.0:.2f} wall_s={s.wall_s:.0f}"
    )
    print(line)
    return line


def run(
    data_dir: Path,
    quick: bool,
    trials: int,
    train_cases: int | None,
    valid_cases: int | None,
    threads: int = 1,
) -> str:
    t0 = time.perf_counter()
    p = QUICK if quick else FULL
    settings = Settings.from_env()
    split = load_split(data_dir)
    sessions = split.train_sessions
    window, shift = int(p["window"]), int(p["shift"])  # type: ignore[call-overload]
    study_sessions = sessions[-(window + shift) : -shift]
    new_sessions = sessions[-window:]
    two_tier = TwoTierConfig()
    tc = train_cases or int(p["train_cases"])  # type: ignore[call-overload]
    vc = valid_cases or int(p["valid_cases"])  # type: ignore[call-overload]
    name = f"bench-{data_dir.name}" + ("-quick" if quick else "")
    # One XGBoost thread: on a shared 2-core machine two OpenMP threads per training ran
    # several times slower (oversubscription). Defaults and trials are trained alike.
    cfg = StudyConfig(
        study_name=name, n_trials=trials, fresh=True, seed=settings.seed, threads=threads
    )
    log.info("study on %d sessions (%d train / %d validation cases)", window, tc, vc)
    res = run_automl(
        study_sessions,
        split.n_items,
        settings,
        cfg,
        two_tier=two_tier,
        max_train_cases=tc,
        max_valid_cases=vc,
        emb_dims=p["dims"],  # type: ignore[arg-type]
    )
    log.info("retrain on the window moved forward by %d sessions", shift)
    builder = RankingDataBuilder(new_sessions, split.n_items, two_tier, tc, vc)
    storage = open_storage(res.storage or settings.artifacts_dir / "optuna" / "studies.db")
    warm, cold, target = retrain(
        builder,
        storage,
        name,
        int(p["retrain_trials"]),  # type: ignore[call-overload]
        settings.seed,
        threads,
    )
    return report(res, warm, cold, target, time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help="benchmark folder")
    parser.add_argument("--quick", action="store_true", help="tiny smoke run")
    parser.add_argument("--trials", type=int, default=None, help="study budget (50)")
    parser.add_argument("--train-cases", type=int, default=None)
    parser.add_argument("--valid-cases", type=int, default=None)
    parser.add_argument("--threads", type=int, default=1, help="XGBoost threads (1)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    data = args.data or Settings.from_env().shared_data_dir / "diginetica"
    trials = args.trials or (8 if args.quick else 50)
    run(data, args.quick, trials, args.train_cases, args.valid_cases, args.threads)


if __name__ == "__main__":
    main()
