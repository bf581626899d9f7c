"""``LRU``: the one bounded cache of qmio_lab (templates, calibrations, results kept at hand)."""
from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from contextlib import nullcontext
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class LRU(Generic[K, V]):
    """At most ``size`` entries; a new one beyond that forgets the least recently used.

    ``put`` and a hit of ``get`` count as use; ``key in cache`` does not. With ``lock=True``
    each call holds a lock of its own (for a cache shared between threads).
    """

    def __init__(self, size: int, *, lock: bool = False) -> None:
        if size < 1:
            raise ValueError(f"an LRU cache holds at least 1 entry, not {size}")
        self.size = size
        self._data: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock() if lock else nullcontext()

    def get(self, key: K, default: V | None = None) -> V | None:
        with self._lock:
            try:
                self._data.move_to_end(key)
            except KeyError:
                return default
            return self._data[key]

    def put(self, key: K, value: V = None) -> None:  # type: ignore[assignment]  # None: a set of keys
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            if len(self._data) > self.size:
                self._data.popitem(last=False)

    __setitem__ = put

    def get_or_make(self, key: K, make: Callable[[], V]) -> V:
        """The entry for ``key``, made by ``make()`` and kept if there is none (``make`` runs
        outside the lock: two threads may both make it, and either result is kept)."""
        value = self.get(key)
        if value is None:
            value = make()
            self.put(key, value)
        return value

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __len__(self) -> int:
        return len(self._data)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()

    def __repr__(self) -> str:
        return f"<LRU {len(self._data)}/{self.size}>"
