"""Compress the stored objects of a study, replacing each file atomically once verified.

Per object: the compressed file is written under a new name next to the original (or, lossy,
under its new SOP Instance UID), fsynced and verified; one transaction points the index at it;
then the original is unlinked. A crash leaves the original indexed and readable, or the new
file indexed and a stale original that the next run removes. A file on a mirrored filesystem
is compressed once: the same new file is written to the mirror too, and its mirror row follows
in the same transaction."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from pydicom import dcmread
from pydicom.errors import InvalidDicomError
from sqlalchemy import Connection, select, update

from hounsfield.archive.context import Archive
from hounsfield.archive.metadata import invalidate
from hounsfield.catalog.copies import Copy, add_copy, drop_copies
from hounsfield.catalog.parse import normalize_date, parse_header, text
from hounsfield.db import engine as db
from hounsfield.db.tables import file, filesystem, instance, partition, series, study
from hounsfield.errors import NotFound
from hounsfield.imaging.compress import (
    LOSSLESS,
    Unsupported,
    VerificationFailed,
    compress,
    syntax_of,
)
from hounsfield.storage.atomic import remove_quietly, write_atomic
from hounsfield.storage.filemeta import file_meta_bytes, split_part10
from hounsfield.storage.layout import object_path, token_of
from hounsfield.storage.mirrors import Mirror, mirrors
from hounsfield.uids import check_uid

log = logging.getLogger(__name__)
SUFFIX = {
    "jpeg2000-lossless": "j2k",
    "jpeg-ls-lossless": "jls",
    "htj2k-lossless": "htj2k",
    "htj2k-lossless-rpcl": "rpcl",
}


@dataclass
class Report:
    """What compressing a study did."""

    compressed: int = 0
    skipped: int = 0
    bytes_before: int = 0
    bytes_after: int = 0
    reasons: dict[str, int] = field(default_factory=dict)

    def skip(self, reason: str) -> None:
        """Count an object left as it was."""
        self.skipped += 1
        self.reasons[reason] = self.reasons.get(reason, 0) + 1

    def __str__(self) -> str:
        why = "; ".join(f"{n}x {r}" for r, n in sorted(self.reasons.items()))
        return (
            f"compressed {self.compressed} ({self.bytes_before} -> {self.bytes_after} bytes), "
            f"left {self.skipped}{': ' + why if why else ''}"
        )


@dataclass(frozen=True)
class _Stored:
    file_pk: int
    instance_pk: int
    root: Path
    path: str
    size: int
    syntax: str
    mirror: Mirror | None = None  # the mirror of the file's filesystem

    @property
    def roots(self) -> list[Path]:
        """Where the file is: its filesystem, and its mirror."""
        return [self.root] + ([self.mirror.root] if self.mirror else [])


def _files(archive: Archive, study_pk: int) -> tuple[str, list[_Stored]]:
    """The study's partition and its files, except mirror copies (they follow their file)."""
    with db.read(archive.engine) as conn:
        title = conn.scalar(
            select(partition.c.ae_title)
            .join(study, study.c.partition_pk == partition.c.pk)
            .where(study.c.pk == study_pk)
        )
        rows = conn.execute(
            select(
                file.c.pk,
                file.c.instance_pk,
                filesystem.c.path,
                file.c.path,
                file.c.size,
                file.c.transfer_syntax,
                file.c.filesystem_pk,
            )
            .join(filesystem, filesystem.c.pk == file.c.filesystem_pk)
            .join(instance, instance.c.pk == file.c.instance_pk)
            .join(series, series.c.pk == instance.c.series_pk)
            .where(series.c.study_pk == study_pk, filesystem.c.mirror_of_pk.is_(None))
            .order_by(file.c.pk)
        ).all()
        maps = mirrors(conn)
    return title or "", [
        _Stored(r[0], r[1], Path(r[2]), r[3], r[4], r[5], maps.get(r[6])) for r in rows
    ]


def compress_study(
    archive: Archive, study_pk: int, name: str, *, ratio: float | None = None
) -> Report:
    """Compress every object of a study with `name` (idempotent: done objects are skipped)."""
    target = syntax_of(name)
    title, stored = _files(archive, study_pk)
    report = Report()
    for obj in stored:
        current = obj.root / obj.path
        if obj.syntax == target:
            _remove_leftover(obj)
            report.skip("already compressed")
            continue
        try:
            done = _compress_one(archive, obj, title, name, ratio)
        except (Unsupported, VerificationFailed) as exc:
            report.skip(exc.message)
            continue
        if done is None:
            report.skip("changed meanwhile")
            continue
        report.compressed += 1
        report.bytes_before += obj.size
        report.bytes_after += done
        log.debug("compressed %s with %s", current, name)
    if report.compressed:
        invalidate(archive, title, _study_uid(archive, study_pk))
    return report


def compress_study_uid(
    archive: Archive,
    study_uid: str,
    name: str,
    *,
    partition: str | None = None,
    ratio: float | None = None,
) -> Report:
    """Compress a study named by its UID in `partition` (default: the default partition)."""
    syntax_of(name)
    part = archive.resolve(partition)
    check_uid(study_uid, "StudyInstanceUID")
    with db.read(archive.engine) as conn:
        study_pk = conn.scalar(
            select(study.c.pk).where(
                study.c.study_iuid == study_uid, study.c.partition_pk == part.pk
            )
        )
    if study_pk is None:
        raise NotFound(f"no study {study_uid} in partition {part.ae_title}")
    return compress_study(archive, study_pk, name, ratio=ratio)


def _study_uid(archive: Archive, study_pk: int) -> str:
    with db.read(archive.engine) as conn:
        return str(conn.scalar(select(study.c.study_iuid).where(study.c.pk == study_pk)))


def _remove_leftover(obj: _Stored) -> None:
    """After a crash between commit and unlink, the original still sits next to its successor:
    `<SOP UID>_<token>.dcm` (or `.<other codec>.dcm`) beside `<SOP UID>_<token>.<codec>.dcm`,
    or the source image beside a lossy copy of the same token."""
    current = Path(obj.path)
    parts = current.name.split(".")
    if parts[-2] in SUFFIX.values():  # the original may itself have been a lossless copy
        own = ".".join(parts[:-2])
        for name in [f"{own}.dcm", *(f"{own}.{s}.dcm" for s in SUFFIX.values())]:
            _remove_beside(obj, current, current.with_name(name))
        return
    try:
        ds = dcmread(obj.root / current, stop_before_pixels=True)
        source = ds.SourceImageSequence[0].ReferencedSOPInstanceUID
    except (OSError, AttributeError, IndexError, InvalidDicomError):
        return
    token = token_of(current.name)
    original = current.with_name(f"{source}_{token}.dcm" if token else f"{source}.dcm")
    _remove_beside(obj, current, original)


def _remove_beside(obj: _Stored, current: Path, original: Path) -> None:
    for root in obj.roots if original != current else []:
        if (root / original).exists():
            remove_quietly(root / original)


def _compress_one(
    archive: Archive, obj: _Stored, title: str, name: str, ratio: float | None
) -> int | None:
    source = obj.root / obj.path
    ds = dcmread(source)
    result = compress(ds, name, ratio=ratio)
    out = result.dataset
    _meta, data = split_part10(result.part10)
    sop = str(out.SOPInstanceUID)
    meta = file_meta_bytes(
        str(out.SOPClassUID),
        sop,
        str(result.syntax),
        str(ds.file_meta.get("SourceApplicationEntityTitle", "") or ""),
    )
    # Named after the original's write token: a rerun after a crash writes the same file again,
    # and the original can be found from its successor.
    token = token_of(Path(obj.path).name)
    if name in LOSSLESS:
        own = f"{sop}_{token}" if token else sop
        rel = str(Path(obj.path).with_name(f"{own}.{SUFFIX[name]}.dcm"))
    else:
        rel = object_path(
            title,
            normalize_date(text(out, "StudyDate")),
            text(out, "StudyInstanceUID"),
            text(out, "SeriesInstanceUID"),
            sop,
            token,
        )
    written = write_atomic(obj.root / rel, (meta, data), fsync=archive.settings.fsync)
    mirror = obj.mirror if obj.mirror is not None and obj.mirror.active else None
    try:
        if mirror is not None:
            write_atomic(mirror.root / rel, (meta, data), fsync=archive.settings.fsync)
    except BaseException:
        remove_quietly(obj.root / rel)
        raise
    header = parse_header(data, str(result.syntax)).header
    replaced: list[Path] = []
    with db.write(archive.engine) as conn:
        changed = conn.execute(
            update(file)
            .where(
                file.c.pk == obj.file_pk,
                file.c.path == obj.path,
                file.c.transfer_syntax == obj.syntax,
            )
            .values(
                path=rel,
                size=written.size,
                checksum=written.checksum,
                transfer_syntax=str(result.syntax),
            )
        ).rowcount
        if changed:
            _reindex(conn, obj, header, sop, str(ds.SOPInstanceUID), written.size)
            syntax = str(result.syntax)
            new = Copy(0, obj.instance_pk, 0, rel, written.size, syntax, written.checksum)
            replaced = _follow(conn, obj, new, mirror)
    if not changed:  # another run got there first
        for root in [obj.root] + ([mirror.root] if mirror else []):
            remove_quietly(root / rel)
        return None
    remove_quietly(source)
    for old in replaced:
        remove_quietly(old)
    return written.size


def _follow(conn: Connection, obj: _Stored, new: Copy, mirror: Mirror | None) -> list[Path]:
    """Point the file's mirror row at the new file (written to the mirror when it is active;
    an inactive mirror loses its stale copy); the replaced mirror files to unlink."""
    if obj.mirror is None:
        return []
    old = drop_copies(conn, [obj.instance_pk], obj.mirror.pk)
    if mirror is not None:
        add_copy(conn, new, mirror.pk)
    return [obj.mirror.root / o.path for o in old if o.path != new.path]


def _reindex(
    conn: Connection, obj: _Stored, header: bytes, sop: str, old_sop: str, size: int
) -> None:
    values: dict[str, object] = {"header": header}
    if sop != old_sop:
        values["sop_iuid"] = sop
    conn.execute(update(instance).where(instance.c.pk == obj.instance_pk).values(**values))
    study_pk = conn.scalar(
        select(series.c.study_pk)
        .join(instance, instance.c.series_pk == series.c.pk)
        .where(instance.c.pk == obj.instance_pk)
    )
    conn.execute(
        update(study)
        .where(study.c.pk == study_pk)
        .values(size_bytes=study.c.size_bytes + size - obj.size)
    )
