"""PNG charts a person looks at after a study (the Dagster asset attaches the paths).

WHY these four: the optimisation history shows whether the budget was enough (a curve
still climbing at the end was not); parameter importances say which knobs matter for the
next study's space; the two Pareto fronts are the trade-offs the automatic choice was
made on (quality vs scoring cost = surge capacity, quality vs embedding size = memory).
Agg backend: no display on servers.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import optuna  # noqa: E402

from flashrec.recsys.automl.pareto import Point, pareto_front  # noqa: E402

log = logging.getLogger(__name__)


def _save(fig: plt.Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_history(
    study: optuna.Study, path: Path, reference: float | None = None, ref_label: str = "default"
) -> Path:
    """Each completed trial's value and the running best; ``reference`` (the default's
    value) as a dashed line, so "did it beat the default, and when" is visible at once."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots experimental
        ax = optuna.visualization.matplotlib.plot_optimization_history(study)
    if reference is not None:
        ax.axhline(reference, ls="--", c="k", lw=1, label=ref_label)
        ax.legend(fontsize=8, loc="lower right")
    ax.set_ylabel("validation MRR@20 (x100)")
    ax.set_title("", loc="left")
    ax.set_title(f"{study.study_name}: history (pruned trials not shown)", fontsize=10)
    ax.figure.set_size_inches(8, 4.5)
    return _save(ax.figure, path)


def plot_importances(study: optuna.Study, path: Path) -> Path | None:
    """fANOVA importances; None when there are too few completed trials to fit them."""
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if len(done) < 2:
        log.info("parameter importances skipped: %d completed trials", len(done))
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ax = optuna.visualization.matplotlib.plot_param_importances(study)
        except (RuntimeError, ValueError) as exc:  # e.g. every trial identical
            log.info("parameter importances skipped: %s", exc)
            return None
    ax.set_title("", loc="left")
    ax.set_title(f"{study.study_name}: parameter importances (fANOVA)", fontsize=10)
    fig = ax.figure
    fig.set_size_inches(8, 5)
    return _save(fig, path)


def plot_pareto(
    points: Sequence[Point],
    path: Path,
    *,
    xlabel: str,
    title: str,
    chosen: int | None = None,
    reference: Point | None = None,
    logx: bool = False,
) -> Path:
    """All points, the front as a step line, the chosen point and a reference (default)."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.scatter([p.cost for p in points], [p.quality for p in points], s=18, c="0.6", label="trials")
    front = pareto_front(points)
    if front:
        xs = [points[i].cost for i in front]
        ys = [points[i].quality for i in front]
        ax.step(xs, ys, where="post", c="tab:blue", lw=1.5)
        ax.scatter(xs, ys, s=30, c="tab:blue", label="Pareto front")
        for i in front:
            if points[i].label:
                ax.annotate(
                    points[i].label,
                    (points[i].cost, points[i].quality),
                    fontsize=7,
                    xytext=(3, 3),
                    textcoords="offset points",
                )
    if chosen is not None:
        p = points[chosen]
        ax.scatter(
            [p.cost],
            [p.quality],
            s=120,
            facecolors="none",
            edgecolors="tab:red",
            lw=2,
            label=f"chosen ({p.label})" if p.label else "chosen",
        )
    if reference is not None:
        ax.scatter(
            [reference.cost],
            [reference.quality],
            marker="x",
            s=80,
            c="k",
            label=reference.label or "reference",
        )
    if logx:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("validation MRR@20 (x100)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return _save(fig, path)
