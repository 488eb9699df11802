"""The mirror side of one store: a sync copy written before indexing, or an async one queued."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from contextlib import suppress
from pathlib import Path

from sqlalchemy import Connection

from hounsfield.alerts import raise_alert
from hounsfield.archive.context import Archive
from hounsfield.catalog.index import StoredFile
from hounsfield.errors import MirrorUnavailable
from hounsfield.storage.atomic import remove_quietly, write_atomic
from hounsfield.workqueue.items import study_key
from hounsfield.workqueue.kinds import MIRROR_STUDY
from hounsfield.workqueue.queue import enqueue

log = logging.getLogger(__name__)
ALERT_EVERY = 60.0  # seconds between alerts about one failing mirror, per process
_alerted: dict[str, float] = {}  # mirror path -> when this process last alerted
_alerted_lock = threading.Lock()


class MirrorWrite:
    """What one stored object owes the mirror of the filesystem it went to, if it has one."""

    def __init__(
        self, archive: Archive, stored: StoredFile, partition_pk: int, study_uid: str
    ) -> None:
        self.archive = archive
        self.stored = stored
        self.mirror = archive.filesystems.mirror_for(stored.filesystem_pk)
        self.key = study_key(partition_pk, study_uid)
        self.written: Path | None = None

    @property
    def sync(self) -> bool:
        """True when the copy must be on the mirror before the store is acknowledged."""
        return self.mirror is not None and self.mirror.mirror_mode != "async"

    def write(self, chunks: Sequence[bytes]) -> None:
        """A synchronous mirror: write and fsync the copy now, or raise MirrorUnavailable (the
        caller removes its primary file; nothing is indexed)."""
        if self.mirror is None or not self.sync:
            return
        target = self.mirror.path / self.stored.path
        try:
            write_atomic(target, chunks, fsync=self.archive.settings.fsync)
        except OSError as exc:
            with suppress(OSError):  # renamed before the folder's fsync failed
                remove_quietly(target)
            _alert(self.archive, str(self.mirror.path), exc)
            raise MirrorUnavailable(f"mirror {self.mirror.path} cannot take a copy: {exc}") from exc
        self.written = target

    @property
    def copies(self) -> tuple[StoredFile, ...]:
        """The file rows to index with the object: the synchronous mirror's copy."""
        if self.mirror is None or self.written is None:
            return ()
        s = self.stored
        return (StoredFile(self.mirror.pk, s.path, s.transfer_syntax, s.size, s.checksum),)

    def enqueue(self, conn: Connection, study_pk: int) -> None:
        """An asynchronous mirror: queue the study's mirroring in the indexing transaction."""
        if self.mirror is None or self.sync:
            return
        enqueue(
            conn,
            MIRROR_STUDY.name,
            {"study_pk": study_pk},
            study_key=self.key,
            coalesce_key=f"{MIRROR_STUDY.name}:{study_pk}",
        )

    def committed(self) -> None:
        """The object is indexed: count the copy's bytes on the mirror."""
        if self.mirror is not None and self.written is not None:
            self.archive.filesystems.account(self.mirror.pk, self.stored.size)

    def discard(self) -> None:
        """The object was not indexed (refused, or another writer won): remove the copy."""
        if self.written is not None:
            with suppress(OSError):
                remove_quietly(self.written)
            self.written = None


def _alert(archive: Archive, path: str, exc: OSError) -> None:
    """Raise an alert about a failing synchronous mirror, at most once a minute per mirror."""
    with _alerted_lock:
        due = time.monotonic() - _alerted.get(path, -1e9) > ALERT_EVERY
        if due:
            _alerted[path] = time.monotonic()
    if due:
        raise_alert(
            archive.engine, "error", "storage", path, f"synchronous mirror write failed: {exc}"
        )
    else:
        log.error("synchronous mirror write to %s failed: %s", path, exc)
