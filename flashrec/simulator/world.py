"""The simulated shop's world: its catalog, its shoppers and its flash sale.

One function draws it, so the batch history (``flash_sale.simulate``) and a live stream
that must look like that history (``reactive``: the same items, the same shoppers and
tastes, so a model trained on the history fits the live traffic until it shifts) share it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from flashrec.simulator.catalog import Catalog, build_catalog
from flashrec.simulator.config import SimulationConfig
from flashrec.simulator.shoppers import SaleMix, Shopper, build_shoppers


@dataclass(frozen=True)
class World:
    catalog: Catalog
    shoppers: list[Shopper]
    sale: SaleMix


def pick_sale(rng: np.random.Generator, config: SimulationConfig, catalog: Catalog) -> SaleMix:
    """Discount popular-ish items that exist at the sale start; a few of them go viral."""
    sale_lo, _ = config.surge_window_ms
    weights = catalog.popularity * catalog.available(sale_lo)
    k = min(config.n_sale_items, int(np.count_nonzero(weights)))
    sale_items = np.sort(rng.choice(catalog.size, size=k, replace=False, p=weights / weights.sum()))
    viral = np.sort(rng.choice(sale_items, size=min(config.n_viral_items, k), replace=False))
    return SaleMix(sale_items, viral, config.sale_share, config.viral_share)


def build_world(config: SimulationConfig) -> tuple[World, np.random.Generator]:
    """The world of ``config`` and the generator, positioned right after drawing it (the
    history goes on drawing from it, so its bytes do not depend on this split)."""
    rng = np.random.Generator(np.random.PCG64(config.seed))
    sale_lo, _ = config.surge_window_ms
    catalog = build_catalog(
        rng,
        n_items=config.n_items,
        n_categories=config.n_categories,
        n_brands=config.n_brands,
        zipf_exponent=config.zipf_exponent,
        new_item_share=config.new_item_share,
        new_items_window_ms=(sale_lo // 4, max(sale_lo // 4 + 1, sale_lo * 9 // 10)),
        stock_range=config.stock_range,
    )
    shoppers = build_shoppers(rng, catalog, config.n_users)
    sale = pick_sale(rng, config, catalog)
    return World(catalog, shoppers, sale), rng
