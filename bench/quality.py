"""Next-item quality benchmark: baselines, the sequence model alone, and the two-tier
model without and with the sequence model, side by side on a session split.

``python -m bench.quality [--data DIR] [--quick]``. Settings are chosen on a validation
tail of the training sessions; the test cases are scored once, at the end. Scoring cost
is timed per query on batches of the model service's size, the two models in
alternation (fair under load). The last line is machine-readable.
"""

from __future__ import annotations

import argparse
import json
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
from flashrec.recsys.sequence.config import SequenceConfig
from flashrec.settings import Settings

log = logging.getLogger("bench.quality")

SERVICE_BATCH = 256  # queries per call: the model service's adaptive batch bound


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


def run(data: Path, quick: bool, save: Path | None = None) -> str:
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
    seq_cfg = SequenceConfig()
    if quick:
        config.ranker.num_rounds = 60
        seq_cfg.epochs = 1
    with_seq = TwoTierConfig.from_dict({**config.to_dict(), "sequence": seq_cfg.to_dict()})

    # Validation: the same tail cases the ranker early-stops on; tier 1 fitted on the head.
    head, tail = split_tail(train, config.tail_fraction)
    valid_q = expand_pairs(tail[int(len(tail) * (1.0 - config.valid_fraction)) :])
    log.info("validation baselines on %d tail cases", len(valid_q))
    val_rows, val_base = baselines(head, valid_q, n_items)

    models: dict[str, TwoTierModel] = {}
    fit_s: dict[str, float] = {}
    for name, cfg in (("two-tier without seq", config), ("two-tier with seq", with_seq)):
        log.info("fitting %s on %d sessions", name, len(train))
        t0 = time.perf_counter()
        models[name] = TwoTierModel(cfg).fit(train, n_items)
        fit_s[name] = time.perf_counter() - t0
        v = models[name].report.validation
        val_rows.append(EvalResult(name, v["P@20"], v["MRR@20"], int(v["cases"]), fit_s[name]))
    model = models["two-tier with seq"]
    if save is not None:
        for label, m in models.items():
            m.save(save / label.replace(" ", "_"))
    seq = model.sequence
    assert seq is not None

    log.info("test baselines on %d cases", len(test_q))
    test_rows, test_base = baselines(train, test_q, n_items)
    t0 = time.perf_counter()
    seq_top = seq.recommend(test_q, 20)
    seq_row = evaluate_topk("sequence model", seq_top, test_q, seq.fit_s, time.perf_counter() - t0)
    test_rows.append(seq_row)
    stats: dict[str, dict[str, float]] = {}
    results: dict[str, EvalResult] = {}
    for name, m in models.items():
        stats[name] = {}
        t0 = time.perf_counter()
        top = m.score_batch(test_q, 20, candidate_stats=stats[name])
        results[name] = evaluate_topk(name, top, test_q, fit_s[name], time.perf_counter() - t0)
        test_rows.append(results[name])
    cost = scoring_cost(models, test_q)
    two, wo = results["two-tier with seq"], results["two-tier without seq"]

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
    for label, m in models.items():
        print(f"\ncandidates (test), {label}:")
        print("\n".join(candidate_lines(stats[label])))
        print(f"candidates (validation), {label}:")
        print("\n".join(candidate_lines(m.report.candidates)))
    print("\n".join(ann_report(model, test_q.slice(0, min(5000, len(test_q))))))
    print("\nsequence model: " + json.dumps(seq.config.to_dict()))
    for r in seq.history:
        valid = (
            "" if r.mrr_at_20 is None else f" valid P@20={r.p_at_20:.2f} MRR@20={r.mrr_at_20:.2f}"
        )
        print(f"  epoch {r.epoch}: loss={r.loss:.4f} {r.seconds:.1f}s{valid}")
    for label, m in models.items():
        timings = " ".join(f"{k}={v:.1f}" for k, v in m.report.timings.items())
        print(f"fit timings ({label}): {timings}")
    print(
        f"scoring cost (batches of {SERVICE_BATCH}, best of rounds): "
        + " ".join(f"{k}={v:.3f}ms/query" for k, v in cost.items())
        + f" ratio={cost['two-tier with seq'] / cost['two-tier without seq']:.2f}"
    )
    imp = sorted(model.ranker.importance().items(), key=lambda kv: -kv[1])[:10]
    print("top ranker features (gain), with seq: " + ", ".join(k for k, _ in imp))
    cores = os.cpu_count()
    print(f"bench wall time: {time.perf_counter() - t_start:.0f}s on {cores} cores")
    with_stats, wo_stats = stats["two-tier with seq"], stats["two-tier without seq"]
    line = (
        f"quality dataset={name} model=two_tier P@20={two.p_at_k:.2f} MRR@20={two.mrr_at_k:.2f} "
        f"baseline_P@20={test_base.p_at_k:.2f} "
        f"seq_P@20={seq_row.p_at_k:.2f} seq_MRR@20={seq_row.mrr_at_k:.2f} "
        f"without_seq_P@20={wo.p_at_k:.2f} without_seq_MRR@20={wo.mrr_at_k:.2f} "
        f"recall@100={with_stats.get('recall@100', 0):.2f} "
        f"without_seq_recall@100={wo_stats.get('recall@100', 0):.2f} "
        f"ms_per_query={cost['two-tier with seq']:.3f} "
        f"without_seq_ms_per_query={cost['two-tier without seq']:.3f} "
        f"fit_s={fit_s['two-tier with seq']:.1f} cores={cores}"
    )
    print(line)
    return line


def scoring_cost(models: dict[str, TwoTierModel], q: Queries, rounds: int = 3) -> dict[str, float]:
    """ms per query of ``score_batch`` on service-sized batches: each model scores the
    same batches, in alternation, and keeps its best round (load on a shared machine only
    ever adds time)."""
    batches = [q.slice(s, s + SERVICE_BATCH) for s in range(0, SERVICE_BATCH * 8, SERVICE_BATCH)]
    batches = [b for b in batches if len(b)]
    best = {name: float("inf") for name in models}
    logging.getLogger("flashrec.recsys.model").setLevel(logging.WARNING)
    for m in models.values():  # warm-up: compile the sequence model's batch shape
        m.score_batch(batches[0], 20)
    for _ in range(rounds):
        for name, m in models.items():
            t0 = time.perf_counter()
            for b in batches:
                m.score_batch(b, 20)
            elapsed = time.perf_counter() - t0
            best[name] = min(best[name], elapsed * 1000 / sum(len(b) for b in batches))
    return best


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help="benchmark folder")
    parser.add_argument("--quick", action="store_true", help="small smoke run")
    parser.add_argument("--save", type=Path, default=None, help="keep both models here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    data = args.data or Settings.from_env().shared_data_dir / "diginetica"
    run(data, args.quick, args.save)


if __name__ == "__main__":
    main()
