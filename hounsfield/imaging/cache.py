"""A size-bounded on-disk cache of rendered images; least recently used entries go first."""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import uuid
from pathlib import Path

log = logging.getLogger(__name__)


class RenderCache:
    """Rendered images by key under one folder, never more than `max_bytes` in total."""

    def __init__(self, root: Path, max_bytes: int) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._total: int | None = None

    @staticmethod
    def key(*parts: object) -> str:
        """A file-safe key for the given identity parts."""
        return hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / key

    def get(self, key: str) -> bytes | None:
        """The cached bytes, or None; a hit refreshes the entry's age."""
        if self.max_bytes <= 0:
            return None
        path = self._path(key)
        try:
            data = path.read_bytes()
            os.utime(path)
        except OSError:
            return None
        return data

    def put(self, key: str, data: bytes) -> None:
        """Keep `data` under `key`, evicting the oldest entries when over the bound."""
        if self.max_bytes <= 0 or len(data) > self.max_bytes:
            return
        path = self._path(key)
        temp = path.with_name(f".{key}.{uuid.uuid4().hex}")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            temp.write_bytes(data)
            os.replace(temp, path)
        except OSError as exc:
            temp.unlink(missing_ok=True)
            log.warning("rendered image not cached: %s", exc)
            return
        with self._lock:
            if self._total is None:
                self._total = sum(size for _p, size, _t in self._entries())
            else:
                self._total += len(data)
            if self._total > self.max_bytes:
                self._evict()

    def _entries(self) -> list[tuple[Path, int, float]]:
        out: list[tuple[Path, int, float]] = []
        if not self.root.is_dir():
            return out
        for sub in self.root.iterdir():
            if not sub.is_dir():
                continue
            for entry in os.scandir(sub):
                if entry.name.startswith("."):
                    continue
                try:
                    st = entry.stat()
                except OSError:
                    continue
                out.append((Path(entry.path), st.st_size, st.st_mtime))
        return out

    def _evict(self) -> None:
        entries = sorted(self._entries(), key=lambda e: e[2])
        total = sum(size for _p, size, _t in entries)
        target = int(self.max_bytes * 0.9)
        for path, size, _mtime in entries:
            if total <= target:
                break
            path.unlink(missing_ok=True)
            total -= size
        self._total = total
