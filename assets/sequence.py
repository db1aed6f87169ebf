"""The sequence model in the model chain: its study, its standalone challenger, and the
configuration the two-tier model trains it with.

``model_training_set`` -> ``sequence_model`` -> ``ranker_study`` -> ``two_tier_model``.
The asset runs the sequence study (size and epochs, pruned by epochs) on the training
sessions, trains the chosen configuration as the standalone variant (a ``CatalogModel``
in ``mode="sequence"`` that the A/B loop can register as a challenger) with one log line
per epoch, and hands the chosen configuration on: the ranker study tunes the ranker with
the sequence model's candidates and features, and the two-tier model trains it inside
its own artifact. Thin: the study is flashrec.recsys.automl.sequence, training is
flashrec.scoring.catalog_model.
"""

import dataclasses
import json

import dagster as dg
import numpy as np

from assets.compute import k8s_op_tags
from assets.resources import LakeResource
from flashrec.recsys.automl.study import open_storage, storage_path
from flashrec.recsys.model import TwoTierConfig
from flashrec.recsys.sequence.config import SequenceConfig
from flashrec.scoring.catalog_model import CatalogModel
from flashrec.scoring.vocab import Vocabulary
from flashrec.settings import Settings

MODELS_GROUP = "models"


def base_config(settings: Settings) -> SequenceConfig:
    """The defaults on this host's device, seed and epoch budget."""
    return SequenceConfig(
        epochs=settings.sequence_epochs, device=settings.model_device, seed=settings.seed
    )


def _epoch_logger(context: dg.AssetExecutionContext, what: str):  # noqa: ANN202
    def log(r) -> None:  # noqa: ANN001 (an EpochReport; its module imports JAX)
        valid = (
            "" if r.mrr_at_20 is None else f" valid P@20={r.p_at_20:.2f} MRR@20={r.mrr_at_20:.2f}"
        )
        context.log.info(f"{what} epoch {r.epoch}: loss={r.loss:.4f} {r.seconds:.1f}s{valid}")

    return log


@dg.asset(group_name=MODELS_GROUP, kinds={"jax", "optuna"}, op_tags=k8s_op_tags("training"))
def sequence_model(
    context: dg.AssetExecutionContext, lake: LakeResource, model_training_set: dict
) -> dict:
    """Self-attentive model of the session's order: study (size, epochs; pruned by
    epochs), then the chosen configuration trained as the standalone challenger variant.
    Returns {"config": the chosen SequenceConfig (None when FLASHREC_SEQUENCE_MODEL=off),
    "artifact": the standalone variant's folder}."""
    from flashrec.recsys.automl.sequence import run_sequence_study  # JAX: only when it runs

    settings = lake.settings()
    if settings.sequence_model != "on":
        context.log.info(f"FLASHREC_SEQUENCE_MODEL={settings.sequence_model}: no sequence model")
        return {"config": None, "artifact": None}
    train = model_training_set["train"]
    vocab = Vocabulary(sorted({i for s in train for i in s}))
    sessions = [np.asarray(vocab.encode(s), dtype=np.int64) for s in train if len(s) >= 2]
    base = base_config(settings)
    study = run_sequence_study(
        sessions,
        len(vocab),
        open_storage(storage_path(settings)),
        f"sequence-lake-{len(sessions)}-{len(vocab)}",
        settings.sequence_trials,
        base,
        on_epoch=_epoch_logger(context, "study"),
    )
    chosen = dataclasses.replace(study.config, device=settings.model_device, seed=settings.seed)
    context.log.info(f"chosen sequence configuration: {chosen.to_dict()}")
    variant = CatalogModel.fit(
        train,
        model_training_set["catalog"],
        config=TwoTierConfig(sequence=chosen, mode="sequence", seed=settings.seed),
        on_epoch=_epoch_logger(context, "standalone"),
    )
    folder = variant.save_versioned(settings.artifacts_dir / "sequence_models")
    history = variant.model.sequence.history if variant.model.sequence else []
    context.add_output_metadata(
        {
            "model_version": variant.model_version,
            "artifact": dg.MetadataValue.path(str(folder)),
            "validation_P@20": round(variant.metrics.get("P@20", 0.0), 3),
            "validation_MRR@20": round(variant.metrics.get("MRR@20", 0.0), 3),
            "fit_s": variant.metrics.get("fit_s", 0.0),
            "epochs": len(history),
            "device": str(variant.model.sequence.device) if variant.model.sequence else "none",
            "config": json.dumps(chosen.to_dict()),
            "study": study.study_name,
            "trials_completed": len(study.trials),
            "trials_pruned": study.n_pruned,
            "front": dg.MetadataValue.md("```\n" + "\n".join(study.table()) + "\n```"),
        }
    )
    return {"config": chosen.to_dict(), "artifact": str(folder)}


def sequence_config(sequence_model: dict) -> SequenceConfig | None:
    """What ``sequence_model`` hands on, as a configuration (None: no sequence model)."""
    return SequenceConfig.from_dict(sequence_model.get("config"))


SEQUENCE_ASSETS = [sequence_model]
