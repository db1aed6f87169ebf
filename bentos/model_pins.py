"""Which model answers each variant, following the rollout without a restart.

WHY a watcher: the rollout (Dagster) pins versions in Redis (``flashrec:rollout:state``):
a new challenger enters shadow, a canary is promoted. The model service must answer with
exactly those versions within a second, without a restart and without a failed or mixed
request. ``PinnedModels`` re-reads the pins every ``interval_s``; a change loads the new
versions from the model store *beside* the serving set, then replaces the whole set with
one reference assignment. A request reads the reference once, so it is answered by one
consistent set, old or new, never a mixture; models still used by in-flight requests are
freed when those finish.

Without a rollout state in Redis (a store filled by hand or by an older deployment) the
pins are the newest models labelled ``champion`` and ``challenger`` in the store.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("flashrec.model_pins")

#: How often the store's labels are read when Redis holds no rollout state (a store
#: listing is slow; pins in Redis are read every ``interval_s``).
LABEL_REFRESH_S = 30.0


@dataclass(frozen=True)
class ModelSet:
    """Variant -> model, and the pins it was built from (immutable: swapped whole)."""

    models: Mapping[str, Any]
    pins: Mapping[str, str]
    loaded_at: float = field(default_factory=time.time)

    def for_variant(self, variant: str) -> tuple[str, Any]:
        """The variant's model, or the champion's for a variant with no pin."""
        name = variant if variant in self.models else "champion"
        return name, self.models[name]


class PinnedModels:
    """Holds the current ``ModelSet`` and keeps it in step with the pins."""

    def __init__(
        self,
        load: Callable[[str], Any],
        read_pins: Callable[[], dict[str, str] | None],
        read_labels: Callable[[], dict[str, str]],
        *,
        prepare: Callable[[Any], None] = lambda _m: None,
        interval_s: float = 1.0,
    ) -> None:
        self._load = load
        self._read_pins = read_pins
        self._read_labels = read_labels
        self._prepare = prepare
        self.interval_s = interval_s
        self._labels: dict[str, str] = {}
        self._labels_at = -1e9
        self.swaps = 0
        self.last_error = ""
        self.current = self._build(self.pins())
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def pins(self) -> dict[str, str]:
        """Pins from Redis, else the store's stage labels (re-read every 30 s)."""
        try:
            pins = self._read_pins()
        except Exception as exc:  # noqa: BLE001 - Redis away: keep serving what we have
            self.last_error = f"pins: {exc!r}"[:300]
            return dict(getattr(self, "current", ModelSet({}, {})).pins)
        if pins:
            return pins
        if time.monotonic() - self._labels_at > LABEL_REFRESH_S:
            self._labels = self._read_labels()
            self._labels_at = time.monotonic()
        return dict(self._labels)

    def _build(self, pins: dict[str, str]) -> ModelSet:
        if "champion" not in pins:
            raise LookupError("no champion pinned or labelled: register a model first")
        have = {
            m.model_version: m for m in getattr(self, "current", ModelSet({}, {})).models.values()
        }
        models = {}
        for variant, version in pins.items():
            model = have.get(version)
            if model is None:
                model = self._load(version)
                self._prepare(model)
            models[variant] = model
        return ModelSet(models, dict(pins))

    def refresh(self) -> bool:
        """Swap in the pinned set if the pins changed; True when a swap happened.

        A version that cannot be loaded leaves the current set serving (its variant keeps
        its old model, or the champion's) and is retried at the next tick.
        """
        pins = self.pins()
        if not pins or pins == dict(self.current.pins):
            return False
        try:
            new = self._build(pins)
        except Exception as exc:  # noqa: BLE001 - keep serving the current set
            if self.last_error != str(exc)[:300]:
                log.error("cannot load pinned models %s: %r", pins, exc)
            self.last_error = str(exc)[:300]
            return False
        self.current = new  # one reference assignment: requests see old or new, never both
        self.swaps += 1
        self.last_error = ""
        log.info("serving %s", {v: m.model_version for v, m in new.models.items()})
        return True

    def start(self) -> None:
        """Watch the pins in a daemon thread."""
        if self._thread is not None:
            return

        def loop() -> None:
            while not self._stop.wait(self.interval_s):
                self.refresh()

        self._thread = threading.Thread(target=loop, name="model-pins", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
