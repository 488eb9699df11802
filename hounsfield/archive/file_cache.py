"""What was read from a file, kept in memory while the file is the same one.

A value is used again only when the file still has the identity it had when the value was
read (device, inode, size and modification time: an atomic replacement or an unlink is seen at
once, by every process) and the caller's tag (e.g. the index version it was built from) is the
same; least recently used values go first when the cache holds more than its budget."""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Generic, TypeVar

T = TypeVar("T")
Identity = tuple[int, int, int, int]


def identity(st: os.stat_result) -> Identity:
    """What tells one file from the one that replaced it."""
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


class FileCache(Generic[T]):
    """Values read from files, by path, within a budget of bytes (each value's size is given)."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self._items: OrderedDict[Path, tuple[Identity, object, T, int]] = OrderedDict()
        self._held = 0
        self._lock = threading.Lock()

    def get(self, path: Path, tag: object) -> T | None:
        """The value read from `path` with `tag`, if the file is still the one it came from."""
        with self._lock:
            item = self._items.get(path)
        if item is None or item[1] != tag:
            return None
        try:
            now = identity(os.stat(path))
        except OSError:
            now = None
        with self._lock:
            if now != item[0]:
                if self._items.get(path) is item:
                    self._drop(path)
                return None
            if path in self._items:
                self._items.move_to_end(path)
        return item[2]

    def put(self, path: Path, ident: Identity, tag: object, value: T, size: int) -> None:
        """Keep `value`, read from `path` when it had identity `ident`, for `tag`."""
        if size > self.budget:
            return
        with self._lock:
            if path in self._items:
                self._drop(path)
            self._items[path] = (ident, tag, value, size)
            self._held += size
            while self._held > self.budget:
                self._drop(next(iter(self._items)))

    def clear(self) -> None:
        """Forget everything."""
        with self._lock:
            self._items.clear()
            self._held = 0

    def _drop(self, path: Path) -> None:
        self._held -= self._items.pop(path)[3]
