"""Import Part-10 files from disk through the same ingest path as C-STORE."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from hounsfield.archive.context import Archive
from hounsfield.archive.store import Outcome, store
from hounsfield.catalog.partitions import Partition
from hounsfield.errors import ArchiveError
from hounsfield.storage.filemeta import split_part10


@dataclass(frozen=True)
class Imported:
    """What happened to one file."""

    path: Path
    outcome: str  # an Outcome value, or "rejected"
    reason: str = ""


@dataclass
class Summary:
    """Totals of an import run."""

    stored: int = 0
    duplicate: int = 0
    rejected: list[Imported] = field(default_factory=list)

    def add(self, item: Imported) -> None:
        """Count one file."""
        if item.outcome == "rejected":
            self.rejected.append(item)
        elif item.outcome == Outcome.DUPLICATE.value or item.outcome == Outcome.KEPT.value:
            self.duplicate += 1
        else:
            self.stored += 1


def expand(paths: Iterable[Path]) -> list[Path]:
    """Every file named or found below the named folders, in a stable order."""
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            for root, dirs, files in os.walk(path):
                dirs.sort()
                out.extend(Path(root) / f for f in sorted(files))
        else:
            out.append(path)
    return out


def import_file(
    archive: Archive, path: Path, *, partition: Partition | str | None = None
) -> Imported:
    """Store one file; refusals are reported, never raised."""
    try:
        raw = path.read_bytes()
        meta, data = split_part10(raw)
        result = store(
            archive,
            str(meta.TransferSyntaxUID),
            data,
            calling_ae=str(meta.get("SourceApplicationEntityTitle", "") or ""),
            partition=partition,
        )
    except ArchiveError as exc:
        return Imported(path, "rejected", exc.message)
    except OSError as exc:
        return Imported(path, "rejected", f"cannot read: {exc.strerror or exc}")
    return Imported(path, result.outcome.value)


def import_paths(
    archive: Archive, files: list[Path], *, partition: Partition | str | None = None
) -> Iterator[Imported]:
    """Import each file in turn, yielding its outcome (for progress reporting)."""
    for path in files:
        yield import_file(archive, path, partition=partition)
