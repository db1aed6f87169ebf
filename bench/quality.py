"""Next-item quality benchmark: baselines vs the two-tier model on a session split.

``python -m bench.quality [--data DIR] [--quick]``. Settings are chosen on a validation
tail of the training sessions; the test cases are scored once, at the end. The last line
is machine-readable (see ``final_line``).
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from pathlib import Path

import numpy as np

from flashrec.loaders.session_split import SessionSplit, load_split
from flashrec.recsys.ann import AnnConfig, AnnIndex
from flashrec.recsys.baselines import VSKNN, Pop, SessionPop
from flashrec.recsys.candidates import SOURCES
from flashrec.recsys.covisit import sequential_rules
from flashrec.recsys.data import Queries, expand_pairs, from_prefixes, split_tail
from flashrec.recsys.evaluate import HEADER, EvalResult, evaluate_sparse_scorer, evaluate_topk
from flashrec.recsys.model import TwoTierConfig, TwoTierModel
from flashrec.settings import Settings

log = logging.getLogger("bench.quality")


def baselines(
    sessions: list[np.ndarray], q: Queries, n_items: int
) -> tuple[list[EvalResult], EvalResult]:
    """POP, S-POP, sequential rules and V-SKNN; returns (all, the strong baseline)."""
    out: list[EvalResult] = []
    pop = Pop().fit(sessions, n_items)
    for name, model in [
        ("POP", Pop()),
        ("S-POP", SessionPop()),
        ("SR (seq. rules)", sequential_rules()),
        ("V-SKNN", VSKNN()),
    ]:
        t0 = time.perf_counter()
        model.fit(sessions, n_items)
        fit_s = time.perf_counter() - t0
        out.append(evaluate_sparse_scorer(name, model.score, q, pop.counts, fit_s=fit_s))
    return out, out[-1]


def ann_report(model: TwoTierModel, q: Queries) -> list[str]:
    vecs = model.generator.embeddings.session_vectors(q)
    lines = []
    for kind in ("flat", "hnsw", "ivfpq"):
        idx = AnnIndex(model.generator.embeddings.vectors, AnnConfig(kind=kind))
        r = idx.report(vecs, k=50)
        lines.append(
            f"  ann {kind:<6} recall@50 vs exact={r['recall_vs_exact']:.3f} "
            f"memory={r['memory_mb']:.1f}MB query={r['query_ms']:.3f}ms"
        )
    return lines


def candidate_lines(stats: dict[str, float]) -> list[str]:
    lines = [
        "  recall@50={:.2f} recall@100={:.2f} recall@200={:.2f} union={:.2f} "
        "(mean {:.0f} candidates)".format(
            stats.get("recall@50", 0),
            stats.get("recall@100", 0),
            stats.get("recall@200", 0),
            stats.get("recall@all", 0),
            stats.get("mean_candidates", 0),
        )
    ]
    for name in SOURCES:
        lines.append(
            f"  source {name:<8} recall={stats.get(name + '.recall', 0):6.2f} "
            f"only-this-source={stats.get(name + '.unique', 0):5.2f}"
        )
    return lines


def run(data: Path, quick: bool) -> str:
    t_start = time.perf_counter()
    split: SessionSplit = load_split(data)
    train, prefixes, targets = split.train_sessions, split.test_prefixes, split.test_targets
    if quick:  # a smoke run: recent sessions and a slice of the test cases
        train = train[-max(len(train) // 5, 50) :]
        prefixes, targets = (
            prefixes[: max(len(prefixes) // 6, 20)],
            targets[: max(len(targets) // 6, 20)],
        )
    n_items = split.n_items
    test_q = from_prefixes(prefixes, targets)
    config = TwoTierConfig()
    if quick:
        config.ranker.num_rounds = 60

    # Validation: the same tail cases the ranker early-stops on; tier 1 fitted on the head.
    head, tail = split_tail(train, config.tail_fraction)
    valid_q = expand_pairs(tail[int(len(tail) * (1.0 - config.valid_fraction)) :])
    log.info("validation baselines on %d tail cases", len(valid_q))
    val_rows, val_base = baselines(head, valid_q, n_items)

    log.info("fitting the two-tier model on %d sessions", len(train))
    t0 = time.perf_counter()
    model = TwoTierModel(config).fit(train, n_items)
    fit_s = time.perf_counter() - t0
    v = model.report.validation
    val_rows.append(EvalResult("two-tier", v["P@20"], v["MRR@20"], int(v["cases"]), fit_s, 0.0))

    log.info("test baselines on %d cases", len(test_q))
    test_rows, test_base = baselines(train, test_q, n_items)
    t0 = time.perf_counter()
    stats: dict[str, float] = {}
    top = model.score_batch(test_q, 20, candidate_stats=stats)
    score_s = time.perf_counter() - t0
    two = evaluate_topk("two-tier", top, test_q, fit_s, score_s)
    test_rows.append(two)

    name = data.name
    print(
        f"\n== {name}: validation (last {config.tail_fraction * config.valid_fraction:.1%} "
        "of train sessions; tier 1 fitted on the head) =="
    )
    print(HEADER)
    for r in val_rows:
        print(r.row())
    print(f"\n== {name}: test (rank all {n_items - 1} items, top 20, x100) ==")
    print(HEADER)
    for r in test_rows:
        print(r.row())
    print("\ncandidates (test):")
    print("\n".join(candidate_lines(stats)))
    print("candidates (validation):")
    print("\n".join(candidate_lines(model.report.candidates)))
    print("\n".join(ann_report(model, test_q.slice(0, min(5000, len(test_q))))))
    print("fit timings: " + " ".join(f"{k}={v:.1f}" for k, v in model.report.timings.items()))
    imp = sorted(model.ranker.importance().items(), key=lambda kv: -kv[1])[:10]
    print("top ranker features (gain): " + ", ".join(k for k, _ in imp))
    cores = os.cpu_count()
    print(f"bench wall time: {time.perf_counter() - t_start:.0f}s on {cores} cores")
    line = (
        f"quality dataset={name} model=two_tier P@20={two.p_at_k:.2f} MRR@20={two.mrr_at_k:.2f} "
        f"baseline_P@20={test_base.p_at_k:.2f} fit_s={fit_s:.1f} cores={cores}"
    )
    print(line)
    return line


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help="benchmark folder")
    parser.add_argument("--quick", action="store_true", help="small smoke run")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    data = args.data or Settings.from_env().shared_data_dir / "diginetica"
    run(data, args.quick)


if __name__ == "__main__":
    main()
