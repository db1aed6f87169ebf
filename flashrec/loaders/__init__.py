"""Loaders that turn external exports into events of ``flashrec.events``."""

from flashrec.loaders.csv_export import (
    DIGINETICA_PLACEHOLDER_PRICE,
    DIGINETICA_PURCHASES,
    DIGINETICA_VIEWS,
    CsvLoadResult,
    CsvMapping,
    diginetica_raw_events,
    iter_csv,
    load_csv,
    load_item_categories,
)

__all__ = [
    "DIGINETICA_PLACEHOLDER_PRICE",
    "DIGINETICA_PURCHASES",
    "DIGINETICA_VIEWS",
    "CsvLoadResult",
    "CsvMapping",
    "diginetica_raw_events",
    "iter_csv",
    "load_csv",
    "load_item_categories",
]
