"""What a node left after crashes: index rows against the files in its storage, file by file,
and each kind of file without a row that reinventory deals with."""

from __future__ import annotations

import hashlib
import os
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from pydicom import dcmread
from sqlalchemy import create_engine, text

from hounsfield.settings import Settings

_FILES = text(
    "SELECT i.sop_iuid, i.pk, f.path, f.size, f.checksum, fs.path"
    " FROM instance i LEFT JOIN file f ON f.instance_pk = i.pk"
    " LEFT JOIN filesystem fs ON fs.pk = f.filesystem_pk"
)
_ROOTS = text("SELECT path FROM filesystem")
_WRONG_COUNTERS = text(
    "SELECT s.series_iuid FROM series s WHERE s.num_instances !="
    " (SELECT count(*) FROM instance i WHERE i.series_pk = s.pk)"
    " UNION ALL SELECT s.series_iuid FROM series s WHERE NOT EXISTS"
    " (SELECT 1 FROM instance i WHERE i.series_pk = s.pk)"
    " UNION ALL SELECT st.study_iuid FROM study st WHERE NOT EXISTS"
    " (SELECT 1 FROM series s WHERE s.study_pk = st.pk)"
)
HOUR = 3600.0


@dataclass
class Audit:
    """Index and storage of one node, compared."""

    instances: int = 0
    duplicated: list[str] = field(default_factory=list)  # SOP UIDs indexed more than once
    without_file: list[str] = field(default_factory=list)  # instance rows with no file row
    missing: list[str] = field(default_factory=list)  # file rows whose file is gone
    damaged: list[str] = field(default_factory=list)  # size, checksum or parse differ
    wrong_counters: list[str] = field(default_factory=list)  # or empty series / studies
    files: int = 0
    temporary: list[Path] = field(default_factory=list)  # interrupted writes (.*.tmp)
    unindexed_new: list[Path] = field(default_factory=list)  # SOP not indexed at all
    unindexed_stale: list[Path] = field(default_factory=list)  # SOP indexed in another file
    indexed: set[str] = field(default_factory=set)

    @property
    def row_problems(self) -> list[str]:
        """Every index row that does not match a complete file, named."""
        named = {
            "indexed more than once": self.duplicated,
            "instance without file row": self.without_file,
            "file row whose file is missing": self.missing,
            "file differs from its row": self.damaged,
            "wrong counter or empty series/study": self.wrong_counters,
        }
        return [f"{what}: {item}" for what, items in named.items() for item in items]

    @property
    def rowless(self) -> list[Path]:
        """Every file in storage without an index row."""
        return [*self.temporary, *self.unindexed_new, *self.unindexed_stale]


def sqlalchemy_url(database_url: str | None, data_dir: Path) -> str:
    """The SQLAlchemy URL the node itself uses for `database_url`."""
    return Settings(database_url=database_url, data_dir=data_dir).sqlalchemy_url


def audit(url: str) -> Audit:
    """Compare the index at `url` with the files of every filesystem it names."""
    out = Audit()
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(_FILES).all()
            roots = [Path(p) for p in conn.execute(_ROOTS).scalars()]
            out.wrong_counters = [str(u) for u in conn.execute(_WRONG_COUNTERS).scalars()]
    finally:
        engine.dispose()
    pks: dict[str, set[int]] = defaultdict(set)
    known: set[Path] = set()
    for sop, pk, rel, size, checksum, root in rows:
        pks[sop].add(pk)
        if rel is None:
            out.without_file.append(sop)
            continue
        path = Path(root) / rel
        known.add(path)
        problem = differs(path, size, checksum, sop)
        if problem == "missing":
            out.missing.append(str(path))
        elif problem:
            out.damaged.append(f"{path}: {problem}")
    out.instances = len(pks)
    out.indexed = set(pks)
    out.duplicated = sorted(sop for sop, found in pks.items() if len(found) > 1)
    for root in roots:
        for folder, _dirs, names in os.walk(root):
            for name in names:
                path = Path(folder) / name
                if name.startswith(".probe-") or path in known:
                    continue
                out.files += 1
                if name.startswith(".") and name.endswith(".tmp"):
                    out.temporary.append(path)
                elif _sop_of(name) in out.indexed:
                    out.unindexed_stale.append(path)
                elif name.endswith(".dcm"):
                    out.unindexed_new.append(path)
    out.files += len(known)
    return out


def _sop_of(name: str) -> str:
    """The SOP Instance UID a stored file is named after (`<SOP>_<token>.dcm`)."""
    return name.lstrip(".").split("_", 1)[0].removesuffix(".dcm")


def differs(path: Path, size: int, checksum: str, sop: str) -> str:
    """'' when the file is as its row says; otherwise what differs."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return "missing"
    if len(raw) != size:
        return f"{len(raw)} bytes, row says {size}"
    if hashlib.sha256(raw).hexdigest() != checksum:
        return "checksum differs"
    try:
        found = str(dcmread(path, stop_before_pixels=True).SOPInstanceUID)
    except Exception as exc:
        return f"does not parse: {type(exc).__name__}"
    return "" if found == sop else f"holds SOP Instance {found}, row says {sop}"


def age(paths: list[Path], seconds: float = 2 * HOUR) -> None:
    """Set the modification time of `paths` `seconds` back: reinventory leaves a leftover
    alone until it is an hour old (a write still running may own it)."""
    then = time.time() - seconds
    for path in paths:
        if path.exists():
            os.utime(path, (then, then))
