"""Who shops and how: tastes, session context and the view -> purchase funnel.

Tastes are strong on purpose: a recommender trained on this data must be able to beat
global popularity, otherwise the personalization pipeline cannot be evaluated at all.
The same session planner feeds both the batch history and the live stream.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from flashrec.simulator.catalog import Catalog

DEVICES = ("desktop", "mobile", "tablet", "app")
DEVICE_WEIGHTS = (0.35, 0.4, 0.08, 0.17)
REFERRERS = ("direct", "search", "social", "email", "ads")
REFERRER_WEIGHTS = (0.35, 0.28, 0.14, 0.1, 0.13)
#: Flash sales are announced by newsletters and social posts, so referrers shift there.
SALE_REFERRER_WEIGHTS = (0.12, 0.13, 0.38, 0.22, 0.15)


@dataclass(frozen=True)
class Shopper:
    """A returning shopper's hidden tastes (ground truth for evaluating personalization)."""

    user_id: str
    categories: tuple[int, ...]
    brands: tuple[int, ...]
    price_band: int
    device: str
    activity: float  # relative chance of starting a session


@dataclass(frozen=True)
class Funnel:
    """Step probabilities of a session; each step is conditional on the previous one."""

    click: float = 0.35
    cart: float = 0.3
    purchase: float = 0.55
    remove: float = 0.1
    mean_views: float = 5.0
    max_views: int = 40
    sale_lift: float = 1.5  # discounts convert better: multiplies cart and purchase


@dataclass(frozen=True)
class Action:
    """One planned storefront step, ``offset_ms`` after the session starts."""

    offset_ms: int
    event_type: str
    item: int
    quantity: int = 1


@dataclass(frozen=True)
class SaleMix:
    """How flash-sale traffic is split: viral items, other sale items, usual browsing."""

    sale_items: np.ndarray
    viral_items: np.ndarray
    sale_share: float
    viral_share: float


def build_shoppers(rng: np.random.Generator, catalog: Catalog, n_users: int) -> list[Shopper]:
    """Give each returning shopper 1-3 liked categories, 1-3 liked brands and a price band."""
    n_cat = len(catalog.category_names)
    cat_weight = np.bincount(catalog.categories, weights=catalog.popularity, minlength=n_cat)
    # Flattened: niche categories have fans too, or tastes would just echo popularity.
    cat_weight = np.sqrt(cat_weight + 1e-3)
    cat_weight /= cat_weight.sum()
    shoppers = []
    for u in range(n_users):
        k = min(int(rng.choice(3, p=(0.45, 0.4, 0.15))) + 1, n_cat)
        cats = np.sort(rng.choice(n_cat, size=k, replace=False, p=cat_weight))
        own_brands = np.unique(catalog.brands[np.isin(catalog.categories, cats)])
        n_brands = min(int(rng.integers(1, 4)), len(own_brands))
        brands = np.sort(rng.choice(own_brands, size=n_brands, replace=False))
        shoppers.append(
            Shopper(
                user_id=f"u-{u:05d}",
                categories=tuple(int(c) for c in cats),
                brands=tuple(int(b) for b in brands),
                price_band=int(rng.integers(0, 3)),
                device=_pick(rng, DEVICES, DEVICE_WEIGHTS),
                activity=float(rng.lognormal(0.0, 1.0)),
            )
        )
    return shoppers


@dataclass
class TasteModel:
    """Turns a shopper (or an anonymous session's focus) into item probabilities."""

    catalog: Catalog
    category_boost: float = 25.0
    brand_boost: float = 3.0
    off_band: float = 0.35
    anonymous_focus_boost: float = 12.0
    _cache: dict[object, np.ndarray] = field(default_factory=dict)

    def shopper_weights(self, shopper: Shopper) -> np.ndarray:
        if shopper.user_id not in self._cache:
            c = self.catalog
            liked = np.isin(c.categories, shopper.categories)
            w = c.popularity * np.where(liked, self.category_boost, 1.0)
            w = w * np.where(np.isin(c.brands, shopper.brands), self.brand_boost, 1.0)
            w = w * np.where(c.price_bands == shopper.price_band, 1.0, self.off_band)
            self._cache[shopper.user_id] = w
        return self._cache[shopper.user_id]

    def anonymous_weights(self, focus_category: int) -> np.ndarray:
        """Anonymous sessions still have an intent (one category), just no history."""
        key = ("anon", focus_category)
        if key not in self._cache:
            c = self.catalog
            boost = np.where(c.categories == focus_category, self.anonymous_focus_boost, 1.0)
            self._cache[key] = c.popularity * boost
        return self._cache[key]

    def session_probs(
        self, weights: np.ndarray, available: np.ndarray, sale: SaleMix | None
    ) -> np.ndarray:
        """Normalise over items that exist now; during the sale, mix in sale/viral items."""
        probs = _normalise(weights * available)
        if sale is None:
            return probs
        on_sale = np.zeros_like(weights)
        on_sale[sale.sale_items] = 1.0
        viral = np.zeros_like(weights)
        viral[sale.viral_items] = 1.0
        sale_probs = _normalise(weights * on_sale * available, fallback=on_sale * available)
        viral_probs = _normalise(viral * available)
        rest = 1.0 - sale.sale_share - sale.viral_share
        return _normalise(
            rest * probs + sale.sale_share * sale_probs + sale.viral_share * viral_probs
        )


def _normalise(w: np.ndarray, fallback: np.ndarray | None = None) -> np.ndarray:
    total = w.sum()
    if total <= 0:
        return np.zeros_like(w) if fallback is None else _normalise(fallback)
    return w / total


def _gap_ms(rng: np.random.Generator) -> int:
    """Think time between clicks: seconds usually, minutes sometimes (log-normal)."""
    return int(min(max(rng.lognormal(np.log(20_000.0), 0.9), 2_000.0), 600_000.0))


def _quantity(rng: np.random.Generator) -> int:
    return int(rng.choice(3, p=(0.85, 0.12, 0.03))) + 1


def plan_session(
    rng: np.random.Generator, probs: np.ndarray, funnel: Funnel, *, in_sale: bool
) -> list[Action]:
    """Plan one session: views with clicks and carts, a few removals, then maybe checkout.

    Purchases come last (checkout) and only for items still in the cart, so every
    purchase follows an add_to_cart of the same item in the same session.
    """
    lift = funnel.sale_lift if in_sale else 1.0
    n_views = min(int(rng.geometric(1.0 / funnel.mean_views)), funnel.max_views)
    actions: list[Action] = []
    cart: list[tuple[int, int]] = []
    t = 0
    for item in rng.choice(len(probs), size=n_views, p=probs).tolist():
        actions.append(Action(t, "view", item))
        if rng.random() < funnel.click:
            t += _gap_ms(rng)
            actions.append(Action(t, "click", item))
            if rng.random() < min(funnel.cart * lift, 0.95):
                t += _gap_ms(rng)
                quantity = _quantity(rng)
                cart.append((item, quantity))
                actions.append(Action(t, "add_to_cart", item, quantity))
        t += _gap_ms(rng)
    kept = []
    for item, quantity in cart:
        if rng.random() < funnel.remove:
            actions.append(Action(t, "remove_from_cart", item, quantity))
            t += _gap_ms(rng)
        else:
            kept.append((item, quantity))
    if kept and rng.random() < min(funnel.purchase * lift, 0.95):
        for item, quantity in kept:
            t += int(rng.integers(2_000, 15_000))
            actions.append(Action(t, "purchase", item, quantity))
    return actions


def session_context(
    rng: np.random.Generator, shopper: Shopper | None, *, in_sale: bool
) -> tuple[str, str]:
    """Device (returning shoppers mostly keep theirs) and referrer for one session."""
    if shopper is not None and rng.random() < 0.75:
        device = shopper.device
    else:
        device = _pick(rng, DEVICES, DEVICE_WEIGHTS)
    return device, _pick(rng, REFERRERS, SALE_REFERRER_WEIGHTS if in_sale else REFERRER_WEIGHTS)


def _pick(rng: np.random.Generator, options: tuple[str, ...], weights: tuple[float, ...]) -> str:
    """A weighted pick without ``rng.choice``'s per-call setup (it runs once per session)."""
    cdf = np.cumsum(weights)
    return options[
        min(int(np.searchsorted(cdf, rng.random() * cdf[-1], side="right")), len(options) - 1)
    ]
