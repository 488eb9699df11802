"""Remembers the patient, study and series rows recent objects went to, so ingest skips lookups."""

from __future__ import annotations

import threading
from collections import OrderedDict

Key = tuple[int, str, str]  # partition pk, study UID, series UID


class ParentCache:
    """A small thread-safe LRU of (patient pk, study pk, series pk) by study and series UID.

    The patient is the study's, whatever the next object of the study says about its patient
    (see catalog.index), so the study and series UIDs are key enough.

    An entry can outlive its rows (another node may delete the study): the insert that
    uses it then fails on its foreign key, and the caller forgets the entry and retries."""

    def __init__(self, size: int = 2048) -> None:
        self._size = size
        self._entries: OrderedDict[Key, tuple[int, int, int]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Key) -> tuple[int, int, int] | None:
        """The cached pks, or None."""
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
            return found

    def put(self, key: Key, pks: tuple[int, int, int]) -> None:
        """Remember the pks of a study and series."""
        with self._lock:
            self._entries[key] = pks
            self._entries.move_to_end(key)
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)

    def forget(self, key: Key | None = None) -> None:
        """Drop one entry, or all of them."""
        with self._lock:
            if key is None:
                self._entries.clear()
            else:
                self._entries.pop(key, None)
