"""After a run: nothing partial on disk and nothing partial in the index of a node."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import create_engine, text

from bench.reliability.audit import differs

PROBE_PREFIX = ".probe-"  # the node's storage probes, written and removed while it runs
_FILES = text(
    "SELECT f.path, f.size, f.checksum, fs.path, i.sop_iuid"
    " FROM file f JOIN filesystem fs ON fs.pk = f.filesystem_pk"
    " JOIN instance i ON i.pk = f.instance_pk"
)
_FILESYSTEMS = text("SELECT path FROM filesystem")
_NO_FILE = text(
    "SELECT i.sop_iuid FROM instance i WHERE NOT EXISTS"
    " (SELECT 1 FROM file f WHERE f.instance_pk = i.pk)"
)
_SERIES_COUNTS = text(
    "SELECT s.series_iuid FROM series s WHERE s.num_instances !="
    " (SELECT count(*) FROM instance i WHERE i.series_pk = s.pk)"
)
_STUDY_COUNTS = text(
    "SELECT st.study_iuid FROM study st WHERE st.num_instances !="
    " (SELECT count(*) FROM instance i JOIN series s ON s.pk = i.series_pk"
    " WHERE s.study_pk = st.pk)"
)
_EMPTY_SERIES = text(
    "SELECT s.series_iuid FROM series s WHERE NOT EXISTS"
    " (SELECT 1 FROM instance i WHERE i.series_pk = s.pk)"
)


@dataclass
class Consistency:
    """What the disk and the index hold, and every disagreement found between them."""

    files_on_disk: int = 0
    file_rows: int = 0
    instances: int = 0
    temp_files: list[str] = field(default_factory=list)
    unindexed_files: list[str] = field(default_factory=list)
    missing_files: list[str] = field(default_factory=list)
    damaged_files: list[str] = field(default_factory=list)  # size, checksum or content differ
    rows_without_file: list[str] = field(default_factory=list)
    wrong_counters: list[str] = field(default_factory=list)

    @property
    def named(self) -> dict[str, list[str]]:
        """Each kind of disagreement and what shows it."""
        return {
            "temporary file left": self.temp_files,
            "file with no index row": self.unindexed_files,
            "index row whose file is missing": self.missing_files,
            "file that differs from its row": self.damaged_files,
            "instance with no file row": self.rows_without_file,
            "wrong instance counter or empty series": self.wrong_counters,
        }

    @property
    def problems(self) -> list[str]:
        """Every disagreement, named."""
        return [f"{what}: {item}" for what, items in self.named.items() for item in items]


def check(database_url: str) -> Consistency:
    """Walk every filesystem the index names and every file row: each file on disk has a
    row, each row's file exists with its size and checksum and parses as its instance, no
    temporary file is left, and the series and study counters match the rows."""
    out = Consistency()
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            roots = [Path(p) for p in conn.execute(_FILESYSTEMS).scalars()]
            rows = conn.execute(_FILES).all()
            out.rows_without_file = list(conn.execute(_NO_FILE).scalars())
            for query in (_SERIES_COUNTS, _STUDY_COUNTS, _EMPTY_SERIES):
                out.wrong_counters += list(conn.execute(query).scalars())
            out.instances = conn.execute(text("SELECT count(*) FROM instance")).scalar_one()
    finally:
        engine.dispose()
    indexed: set[Path] = set()
    out.file_rows = len(rows)
    for rel, size, checksum, root, sop in rows:
        path = Path(root) / rel
        indexed.add(path)
        problem = differs(path, size, checksum, sop)
        if problem == "missing":
            out.missing_files.append(str(path))
        elif problem:
            out.damaged_files.append(f"{path}: {problem}")
    for root in roots:
        for path in root.rglob("*"):
            if not path.is_file() or path.name.startswith(PROBE_PREFIX):
                continue
            out.files_on_disk += 1
            if path.name.endswith(".tmp"):
                out.temp_files.append(str(path))
            elif path not in indexed:
                out.unindexed_files.append(str(path))
    return out
