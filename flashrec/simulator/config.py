"""What to simulate: shop size, traffic, the flash-sale window and the fault rates."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime, timedelta
from typing import Any

from flashrec.settings import Settings
from flashrec.simulator.shoppers import Funnel

DAY_MS = 86_400_000
HOUR_MS = 3_600_000


def _as_date(value: date | str) -> date:
    return value if isinstance(value, date) else date.fromisoformat(value)


@dataclass(frozen=True)
class SimulationConfig:
    """Everything the simulator depends on; same config (seed included) => same bytes.

    The flash sale runs on the last day from ``surge_start_hour`` (UTC) for
    ``surge_hours``; during it new sessions arrive ``surge_factor`` times faster than
    the day's mean hourly rate.
    """

    seed: int = 42
    n_users: int = 2000
    n_items: int = 500
    n_categories: int = 12
    n_brands: int = 60
    days: int = 3
    sessions_per_day: int = 1500
    start_date: date = date(2026, 11, 20)
    surge_factor: float = 30.0
    surge_start_hour: float = 19.0
    surge_hours: float = 1.0
    anonymous_share: float = 0.35
    new_item_share: float = 0.08
    zipf_exponent: float = 1.0
    n_sale_items: int = 25
    n_viral_items: int = 3
    sale_discount: tuple[float, float] = (0.2, 0.6)
    sale_share: float = 0.35  # of sale-session views going to (non-viral) sale items
    viral_share: float = 0.4  # of sale-session views going to the viral items
    stock_range: tuple[int, int] = (20, 150)
    restock_delay_minutes: tuple[float, float] = (20.0, 90.0)
    funnel: Funnel = field(default_factory=Funnel)
    bad_event_rate: float = 0.002
    duplicate_rate: float = 0.002
    late_event_rate: float = 0.005
    live_restock_delay_s: tuple[float, float] = (20.0, 60.0)
    live_late_max_s: float = 600.0

    def __post_init__(self) -> None:
        problems = []
        if min(self.n_users, self.n_items, self.n_categories, self.days) < 1:
            problems.append("n_users, n_items, n_categories and days must be >= 1")
        if self.n_brands < self.n_categories:
            problems.append("n_brands must be >= n_categories (each category needs a brand)")
        if self.sessions_per_day < 0 or self.surge_factor < 1:
            problems.append("sessions_per_day must be >= 0 and surge_factor >= 1")
        end_hour = self.surge_start_hour + self.surge_hours
        if not (self.surge_start_hour >= 0 and self.surge_hours > 0 and end_hour <= 24):
            problems.append("the surge window must lie inside the last day")
        if not 0 < self.n_viral_items <= self.n_sale_items <= self.n_items:
            problems.append("need 0 < n_viral_items <= n_sale_items <= n_items")
        if self.sale_share + self.viral_share > 1:
            problems.append("sale_share + viral_share must be <= 1")
        rates = (self.anonymous_share, self.new_item_share, self.bad_event_rate)
        rates += (self.duplicate_rate, self.late_event_rate)
        if any(not 0 <= r <= 1 for r in rates):
            problems.append("shares and fault rates must be within [0, 1]")
        if not 1 <= self.stock_range[0] <= self.stock_range[1]:
            problems.append("stock_range must be (low, high) with 1 <= low <= high")
        if problems:
            raise ValueError("invalid SimulationConfig: " + "; ".join(problems))

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> SimulationConfig:
        """The project-wide knobs (FLASHREC_SEED, FLASHREC_SIM_*), plus explicit overrides."""
        values: dict[str, Any] = {
            "seed": settings.seed,
            "n_users": settings.sim_users,
            "n_items": settings.sim_items,
            "days": settings.sim_days,
            "sessions_per_day": settings.sim_sessions_per_day,
            "start_date": _as_date(settings.sim_start_date),
        }
        known = {f.name for f in fields(cls)}
        unknown = set(overrides) - known
        if unknown:
            raise TypeError(f"unknown SimulationConfig fields: {sorted(unknown)}")
        values.update(overrides)
        return cls(**values)

    @property
    def start(self) -> datetime:
        """Midnight UTC of the first simulated day."""
        return datetime(
            self.start_date.year, self.start_date.month, self.start_date.day, tzinfo=UTC
        )

    @property
    def period_ms(self) -> int:
        return self.days * DAY_MS

    @property
    def surge_window_ms(self) -> tuple[int, int]:
        """Sale start and end, in ms after ``start``."""
        lo = (self.days - 1) * DAY_MS + int(self.surge_start_hour * HOUR_MS)
        return lo, lo + int(self.surge_hours * HOUR_MS)

    def day_dates(self) -> list[date]:
        return [self.start_date + timedelta(days=d) for d in range(self.days)]
