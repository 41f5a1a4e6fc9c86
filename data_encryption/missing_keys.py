"""The key ids values named that the key table did not hold: remembered for a while, so a
corrupt column or a stream of made-up ids does not reload the key ring once per value."""

from __future__ import annotations

import threading
from collections import OrderedDict
from time import monotonic


class MissingKeyIds:
    """Key ids values named that the key table did not hold at the last look, each remembered
    for ``KEY_CACHE_SECONDS``, at most ``capacity`` of them (least recently seen go first).

    Kept across ring reloads, so ids that alternate, or many distinct ones, cost one reload per
    id per cache period instead of one per value: corrupt columns cannot make a reload storm.
    """

    def __init__(self, capacity: int = 4096) -> None:
        self.capacity = capacity
        self._until: OrderedDict[int, float] = OrderedDict()
        self._lock = threading.Lock()

    def __contains__(self, key_id: int) -> bool:
        with self._lock:
            until = self._until.get(key_id)
            if until is None:
                return False
            if monotonic() >= until:
                del self._until[key_id]
                return False
            self._until.move_to_end(key_id)
            return True

    def add(self, key_id: int, lifetime: float) -> None:
        with self._lock:
            self._until[key_id] = monotonic() + lifetime
            self._until.move_to_end(key_id)
            while len(self._until) > self.capacity:
                self._until.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._until.clear()

    def __len__(self) -> int:
        return len(self._until)
