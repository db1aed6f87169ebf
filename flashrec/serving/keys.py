"""The Redis key contract between the background scorer, the stream job and the read API.

WHY one module: three programs written by different people (the scorer, the Flink stock job,
the storefront read API) meet only in Redis. Every key they share is built here, so a rename
is one edit and a reader can never disagree with a writer about a key's spelling.

All keys start with ``flashrec:``. ``<v>`` is an A/B variant name, ``<kind>`` is ``u`` (a
known shopper, keyed by user_id) or ``s`` (an anonymous shopper, keyed by session_id).

==================================  ======  ==================================================
key                                 type    written by / meaning
==================================  ======  ==================================================
flashrec:rec:<v>:<kind>:<id>        STRING  scorer: the shopper's current list for variant v
                                            (``cache.write_user_list``). Value format below.
                                            Written with a TTL (default 1 day) so abandoned
                                            shoppers do not pile up.
flashrec:lkg:<v>:<kind>:<id>        STRING  scorer (via ``write_user_list``): the previous
                                            good list, kept so that a stale, missing or
                                            unusable current list falls back to it. Longer
                                            TTL (default 7 days).
flashrec:seg:popular                STRING  batch job: global popularity (the last resort; the
                                            read API also keeps an in-process copy of it).
flashrec:seg:trending               STRING  batch/stream job: items rising right now.
flashrec:seg:category:<category>    STRING  popular in a category (storefront category pages).
flashrec:seg:device:<device>        STRING  popular per device (desktop, mobile, ...).
flashrec:seg:referrer:<referrer>    STRING  popular per referrer (direct, search, social...).
flashrec:seg:tod:<bucket>           STRING  popular per UTC time-of-day bucket
                                            (night 0-6h, morning 6-12h, afternoon 12-18h,
                                            evening 18-24h).
flashrec:seg:item:<item_id>         STRING  items related to one item (co-visitation or same
                                            category), used on product pages.
flashrec:soldout                    SET     stream job: item ids sold out right now.
flashrec:catalog:category           HASH    stream job: item_id -> category (from
                                            item_created, so new items have one at once).
flashrec:live:trend:<category>      ZSET    stream job: items trending now in a category.
flashrec:live:covis:<item>          ZSET    stream job: items sessions moved to from <item>
                                            (see ``flashrec.live_candidates``).
flashrec:stock                      HASH    stream job: item_id -> stock level (int).
flashrec:ab:shares                  HASH    operators: variant -> traffic share (float); read
                                            by the API every ~1 s, so a change applies
                                            without a deploy. Shares are normalised.
flashrec:ab:shadow                  SET     operators: shadow variants, scored and logged in
                                            the impression log, never served.
flashrec:impressions                STREAM  read API: one entry per served list (bounded,
                                            ``MAXLEN ~``); fields in ``cache.Impression``.
flashrec:ab:stats:<v>               HASH    attribution aggregator: impressions, clicks, carts,
                                            purchases, revenue for variant v.
flashrec:ab:shoppers:<v>            HLL     aggregator: distinct shoppers shown variant v.
flashrec:ab:converters:<v>          HLL     aggregator: distinct shoppers who bought after an
                                            impression of variant v.
flashrec:rollout:state              STRING  rollout (Dagster): JSON of ``RolloutState``: the
                                            champion's and challenger's pinned versions, the
                                            stage, the test id, the canary share. The model
                                            service, scorer and attribution follow it.
flashrec:ab:test:{<t>}:<arm>        HASH    exact counters of one test stage ``<t>`` =
                                            ``<test_id>:<stage>``, per arm (champion,
                                            challenger): scorer (lists, errors, scores, overlap)
                                            and attribution (impressions, clicks, carts,
                                            purchases, revenue, sessions, conversions).
flashrec:ab:test:{<t>}:<arm>:shoppers SET   attribution: distinct shoppers shown the arm.
flashrec:ab:test:{<t>}:<arm>:converters SET attribution: distinct shoppers who bought an
                                            item the arm showed them.
flashrec:attr:imp:<shopper>         LIST    attribution: the shopper's recent served
                                            impressions (bounded, expires with the window).
flashrec:attr:seen:<bucket>         SET     attribution: event ids already counted (per
                                            10-minute bucket, expiring): exactly-once counts.
==================================  ======  ==================================================

List values (every ``rec``, ``lkg`` and ``seg`` key) have one format, defined in
``flashrec.serving.cache`` for Python and for the Lua scripts alike: build and parse them
only there.

Who writes what: the scorer calls ``cache.write_user_list`` (current + last-known-good,
atomically); batch jobs call ``cache.write_segment_list``; operators call
``cache.set_ab_shares``; the stream job writes ``flashrec:soldout``/``flashrec:stock``
itself (``cache.mark_sold_out``/``cache.set_stock`` do the same for tests and tools).
"""

from __future__ import annotations

from typing import Literal

PREFIX = "flashrec:"
SOLDOUT = PREFIX + "soldout"
STOCK = PREFIX + "stock"
AB_SHARES = PREFIX + "ab:shares"
AB_SHADOW = PREFIX + "ab:shadow"
IMPRESSIONS = PREFIX + "impressions"
ROLLOUT_STATE = PREFIX + "rollout:state"
CATALOG_CATEGORY = PREFIX + "catalog:category"
POPULAR = PREFIX + "seg:popular"
TRENDING = PREFIX + "seg:trending"

ShopperKind = Literal["u", "s"]
SEGMENT_KINDS = ("category", "device", "referrer", "tod", "item")
TOD_BUCKETS = ("night", "morning", "afternoon", "evening")


def shopper_ref(kind: ShopperKind, shopper_id: str) -> str:
    """``u:<user_id>`` or ``s:<session_id>``: one string names a shopper in keys and logs."""
    return f"{kind}:{shopper_id}"


def rec_list(variant: str, shopper: str) -> str:
    """The current list of ``shopper`` (a ``shopper_ref``) for ``variant``."""
    return f"{PREFIX}rec:{variant}:{shopper}"


def last_known_good(variant: str, shopper: str) -> str:
    """The previous good list of ``shopper`` for ``variant`` (fallback of ``rec_list``)."""
    return f"{PREFIX}lkg:{variant}:{shopper}"


def segment(kind: str, value: str) -> str:
    """A segment list, e.g. ``segment("device", "mobile")``."""
    if kind not in SEGMENT_KINDS:
        raise ValueError(f"unknown segment kind {kind!r}; expected one of {SEGMENT_KINDS}")
    return f"{PREFIX}seg:{kind}:{value}"


def tod_bucket(hour_utc: int) -> str:
    """Time-of-day bucket of a UTC hour (0-23): four 6-hour buckets."""
    return TOD_BUCKETS[(hour_utc % 24) // 6]


def ab_stats(variant: str) -> str:
    return f"{PREFIX}ab:stats:{variant}"


def ab_test(counters_key: str, arm: str) -> str:
    """Exact counters of one arm of one test stage (hash-tagged: one Redis Cluster slot)."""
    return f"{PREFIX}ab:test:{{{counters_key}}}:{arm}"


def ab_test_shoppers(counters_key: str, arm: str) -> str:
    return f"{ab_test(counters_key, arm)}:shoppers"


def ab_test_converters(counters_key: str, arm: str) -> str:
    return f"{ab_test(counters_key, arm)}:converters"


def attribution_impressions(shopper: str) -> str:
    """Recent served impressions of one shopper (``shopper_ref`` form)."""
    return f"{PREFIX}attr:imp:{shopper}"


def attribution_seen(bucket: int) -> str:
    """Event ids counted in one 10-minute bucket of arrival time."""
    return f"{PREFIX}attr:seen:{bucket}"
