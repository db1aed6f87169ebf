"""Scoring on CPU against GPU: the sequence model and XGBoost's ranking on one host.

``python -m bench.sequence_device --model DIR [--data DIR] [--devices cpu,cuda]``.
``DIR`` is a two-tier model folder with a sequence model (``python -m bench.quality
--save DIR`` writes ``DIR/two-tier_with_seq``). For each device it moves the model there
(``TwoTierModel.use_device``: the sequence model's JAX arrays and the booster) and times,
on batches of the model service's size taken from the test cases: the sequence model
(session states + top-K), XGBoost's prediction over those batches' candidate features,
and the whole ``score_batch``; throughput (queries/s) and p50/p99 of one batch. A device
this host lacks (no CUDA plugin) is reported as missing, never silently as the CPU. The
last line per device is machine-readable and names the card.
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from flashrec.loaders.session_split import load_split
from flashrec.recsys.data import Queries, from_prefixes
from flashrec.recsys.model import TwoTierModel
from flashrec.settings import Settings

log = logging.getLogger("bench.sequence_device")


def card_name(device: str) -> str | None:
    """The accelerator's name for ``device`` (None when this host has no such device)."""
    import jax

    if device == "cpu":
        try:
            for line in Path("/proc/cpuinfo").read_text().splitlines():
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
        except OSError:
            pass
        return "cpu"
    try:
        return str(jax.devices("gpu")[0].device_kind)
    except RuntimeError:
        return None


def timed(fn: Callable[[], object], rounds: int) -> np.ndarray:
    fn()  # compile / warm up
    out = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return np.array(out)


def line(device: str, card: str, what: str, batch: int, seconds: np.ndarray) -> str:
    qps = batch / float(np.median(seconds))
    p50, p99 = (float(np.percentile(seconds, p) * 1000) for p in (50, 99))
    return (
        f"device_bench card={card.replace(' ', '_')} device={device} part={what} batch={batch} "
        f"qps={qps:.0f} p50_ms={p50:.2f} p99_ms={p99:.2f} cores={os.cpu_count()}"
    )


def run(model_dir: Path, data: Path, devices: list[str], batch: int, rounds: int) -> list[str]:
    split = load_split(data)
    q: Queries = from_prefixes(split.test_prefixes[:batch], split.test_targets[:batch])
    model = TwoTierModel.load(model_dir)
    if model.sequence is None:
        raise SystemExit(f"{model_dir}: no sequence model in this artifact")
    seq = model.sequence
    _, _, x, _ = model._pairs(q)  # noqa: SLF001 (the ranker's exact serving input)
    lines = []
    for device in devices:
        card = card_name(device)
        if card is None:
            lines.append(f"device_bench device={device} missing (no JAX {device} device here)")
            print(lines[-1])
            continue
        model.use_device(device)
        for what, fn in (
            ("sequence", lambda: seq.search(seq.states(q), seq.config.candidates)),
            ("xgboost", lambda: model.ranker.predict(x)),
            ("score_batch", lambda: model.score_batch(q, 20)),
        ):
            lines.append(line(device, card, what, len(q), timed(fn, rounds)))
            print(lines[-1])
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="two-tier model folder")
    parser.add_argument("--data", type=Path, default=None, help="benchmark folder")
    parser.add_argument("--devices", default="cpu,cuda")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=50)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    data = args.data or Settings.from_env().shared_data_dir / "diginetica"
    run(args.model, data, args.devices.split(","), args.batch, args.rounds)


if __name__ == "__main__":
    main()
