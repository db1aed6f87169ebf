"""Landing files: where storefront exports (here, the flash-sale simulator) arrive."""

import dagster as dg

from assets import groups
from assets.compute import k8s_op_tags
from assets.resources import LakeResource
from flashrec.lake_layout import SIMULATOR_SOURCE
from flashrec.simulator import SimulationConfig, write_history

SOURCE = SIMULATOR_SOURCE


@dg.asset(group_name=groups.LANDING, kinds={"python", "json"}, op_tags=k8s_op_tags("light"))
def simulated_landing_files(context: dg.AssetExecutionContext, lake: LakeResource):
    """Deterministic flash-sale history written as daily JSON-lines files."""
    settings = lake.settings()
    config = SimulationConfig.from_settings(settings)
    manifest = write_history(config, settings.landing_dir, source=SOURCE)
    totals = manifest.totals
    context.log.info("landing files: %s", totals)
    return dg.MaterializeResult(
        metadata={
            "days": [f.day.isoformat() for f in manifest.files],
            "path": dg.MetadataValue.path(str(settings.landing_dir / SOURCE)),
            "seed": config.seed,
            **{k: int(v) for k, v in totals.items()},
        }
    )
