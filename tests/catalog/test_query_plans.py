"""Every statement the archive sends to PostgreSQL while it stores, queries, retrieves and
works its queue is served by an index on the tables that grow: run once on a small archive,
then EXPLAINed with the index grown to 50,000 patients and 150,000 instances and analysed,
no plan reads one of those tables whole (a Seq Scan, or an index walked by the partition
alone)."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian
from pynetdicom import AE, build_role, evt
from pynetdicom.sop_class import (
    CTImageStorage,
    PatientRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
)
from sqlalchemy import Engine, event

from hounsfield.archive.context import Archive
from hounsfield.audit import trail
from hounsfield.audit.records import AuditFilter, list_records
from hounsfield.dimse.server import DimseServer
from hounsfield.sites.reconcile_local import LocalSide
from hounsfield.web.app import create_app
from hounsfield.workers.runner import Worker
from tests.conftest import make_archive, make_settings
from tests.live_http import live
from tests.synth import instance

# Tables that grow with the images, the work and the traffic; the rest hold configuration.
GROWING = {
    "patient",
    "study",
    "series",
    "instance",
    "file",
    "work_item",
    "study_outcome",
    "forward",
    "forward_instance",
    "reconcile_report",
    "reconcile_difference",
    "web_session",
    "audit_event",
}
WRITES = ("SELECT", "UPDATE", "DELETE", "WITH")


class Statements:
    """The distinct statements an engine executes, with the parameters of their first run."""

    def __init__(self, engine: Engine) -> None:
        self.seen: dict[str, Any] = {}
        self._lock = threading.Lock()
        self.engine = engine
        event.listen(engine, "before_cursor_execute", self._record)

    def _record(self, _conn: Any, _cursor: Any, sql: str, params: Any, *_rest: Any) -> None:
        if not sql.lstrip().upper().startswith(WRITES) or "pg_" in sql:
            return
        with self._lock:
            self.seen.setdefault(sql, params[0] if isinstance(params, list) else params)

    def stop(self) -> None:
        event.remove(self.engine, "before_cursor_execute", self._record)


def _narrows(condition: str | None) -> bool:
    """Whether an index condition picks rows by more than the partition (which may hold
    every row of the table)."""
    if not condition:
        return False
    rest = re.sub(r"\(?\w*\.?partition_pk = [^()]*?\)?( AND )?", "", condition)
    return bool(re.search(r"[a-z_)]+ (=|<|>|<=|>=|~~|~>=~|~<~|~<=~|~>~|= ANY)", rest))


def _index_scans(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The bitmap index scans under a bitmap heap scan."""
    for child in plan.get("Plans", []):
        if child["Node Type"] == "Bitmap Index Scan":
            yield child
        yield from _index_scans(child)


def _full_reads(plan: dict[str, Any], partial: set[str], limited: bool = False) -> Iterator[str]:
    """The tables a plan reads whole: by a Seq Scan, or along an index with no condition
    (unless the index is partial, or under a LIMIT, where the walk in index order stops at
    the first rows found)."""
    kind, table = plan["Node Type"], plan.get("Relation Name", "")
    limited = limited or kind == "Limit"

    def bounded(scan: dict[str, Any]) -> bool:
        return scan.get("Index Name") in partial or _narrows(scan.get("Index Cond"))

    if kind == "Bitmap Heap Scan":
        whole = not all(bounded(scan) for scan in _index_scans(plan))
    else:
        whole = kind == "Seq Scan" or (
            kind.startswith("Index") and not limited and not bounded(plan)
        )
    if whole:
        yield table
    for child in plan.get("Plans", []):
        yield from _full_reads(child, partial, limited)


PARTIAL_INDEXES = (
    "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
    " WHERE i.indpred IS NOT NULL"
)


def _unindexed(engine: Engine, statements: dict[str, Any]) -> list[str]:
    """Each statement whose plan still reads a growing table from end to end."""
    out = []
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute(PARTIAL_INDEXES)
        partial = {name for (name,) in cursor.fetchall()}
        for sql, params in statements.items():
            cursor.execute("EXPLAIN (FORMAT JSON) " + sql, params or None)
            [answer] = cursor.fetchone()
            [plan] = json.loads(answer) if isinstance(answer, str) else answer
            whole = set(_full_reads(plan["Plan"], partial)) & GROWING
            if whole:
                cursor.execute("EXPLAIN " + sql, params or None)
                shape = "\n    ".join(r[0] for r in cursor.fetchall())
                out.append(f"{', '.join(sorted(whole))}: {' '.join(sql.split())}\n    {shape}")
        raw.rollback()
    finally:
        raw.close()
    return out


GROW = [
    """INSERT INTO patient (partition_pk, patient_id, issuer, patient_name, name_key,
        birth_date, sex, num_studies, match_key)
    SELECT %(part)s, 'SYN' || g, '', 'NAME' || (g %% 997) || '^P' || g,
        'NAME' || (g %% 997) || '^P' || g, to_char(date '1930-01-01' + g %% 30000, 'YYYYMMDD'),
        'F', 1, '' FROM generate_series(1, 50000) g""",
    """INSERT INTO study (partition_pk, patient_pk, study_iuid, study_date, study_time,
        accession_number, study_id, description, referring_physician, referring_key,
        modalities, num_series, num_instances, size_bytes, created_at, updated_at)
    SELECT %(part)s, p.pk, '2.25.9' || p.pk, to_char(date '2016-01-01' + (p.pk %% 3650)::int,
        'YYYYMMDD'), '120000', 'SYN' || p.pk, '1', 'SYN', '', '', 'CT\\SR', 2, 3, 1500000,
        now(), now()
    FROM patient p WHERE p.patient_id LIKE 'SYN%%'""",
    """INSERT INTO series (study_pk, series_iuid, modality, series_number, description,
        body_part, series_date, series_time, num_instances)
    SELECT s.pk, s.study_iuid || '.' || k, CASE WHEN k = 1 THEN 'CT' ELSE 'SR' END, k::text,
        '', '', s.study_date, '', 3 - k
    FROM study s CROSS JOIN generate_series(1, 2) k WHERE s.study_id = '1'""",
    """INSERT INTO instance (series_pk, sop_iuid, sop_cuid, instance_number, received_at,
        calling_ae, header)
    SELECT se.pk, se.series_iuid || '.' || k, '1.2.840.10008.5.1.4.1.1.2', k::text, now(),
        'SYN', '\\x00'::bytea
    FROM series se JOIN generate_series(1, 2) k ON k <= se.num_instances
    WHERE se.series_iuid LIKE '2.25.9%%'""",
    """INSERT INTO file (instance_pk, filesystem_pk, path, size, transfer_syntax, checksum,
        created_at)
    SELECT i.pk, (SELECT min(pk) FROM filesystem), 'SYN/' || i.sop_iuid, 500000,
        '1.2.840.10008.1.2.1', '', now() FROM instance i WHERE i.calling_ae = 'SYN'""",
    """INSERT INTO study_outcome (study_pk, action, eligible_at, rule_name, params)
    SELECT s.pk, 'delete', now() + interval '1 day' * (s.pk %% 3650), 'SYN', '{}'
    FROM study s WHERE s.study_id = '1'""",
    """INSERT INTO work_item (kind, priority, status, scheduled_at, failure_count,
        max_retries, study_key, payload, result, error, created_at, updated_at, completed_at)
    SELECT 'process-study', 2, 'done', now() - interval '1 minute' * g, 0, 3,
        '1/2.25.9' || g, '{}', '', '', now(), now(), now() FROM generate_series(1, 50000) g""",
    """INSERT INTO audit_event (created_at, event, outcome, user_name, ae_title, remote_host,
        called, protocol, partition, patient_id, patient_name, study_iuid, count, detail, node)
    SELECT now() - interval '1 second' * g, 'query', 0, '', 'SYN', '127.0.0.1', 'HOUNSFIELD',
        'DICOM', 'HOUNSFIELD', 'SYN' || g %% 50000, '', '', 1, '', 'syn'
    FROM generate_series(1, 50000) g""",
]


def _grow(engine: Engine, partition_pk: int) -> None:
    """Synthetic patients, studies, series, instances and files, then fresh statistics."""
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        # Without the file table's usage trigger: 120,000 updates of one counter row in one
        # transaction take minutes (each walks the row's versions so far).
        cursor.execute("SET session_replication_role = replica")
        for statement in GROW:
            cursor.execute(statement, {"part": partition_pk})
        cursor.execute("ANALYZE")
        raw.commit()
    finally:
        raw.close()


@pytest.fixture
def archive(tmp_path: Path, postgresql_url: str) -> Iterator[Archive]:
    arch = make_archive(make_settings(tmp_path, postgresql_url, study_settle_seconds=0))
    yield arch
    arch.close()


def _query(ae: AE, port: int, model: Any, level: str, **keys: str) -> int:
    ds = Dataset()
    ds.QueryRetrieveLevel = level
    for keyword in ("PatientID", "PatientName", "StudyInstanceUID", "StudyDate"):
        setattr(ds, keyword, "")
    for keyword, value in keys.items():
        setattr(ds, keyword, value)
    assoc = ae.associate("127.0.0.1", port, ae_title="HOUNSFIELD")
    assert assoc.is_established
    answers = [s for s, _ in assoc.send_c_find(ds, model) if s and s.Status in (0xFF00, 0xFF01)]
    assoc.release()
    return len(answers)


def _dimse_day(port: int, studies: list[Dataset]) -> None:
    """C-STORE the instances, query at every level and C-GET one study."""
    ae = AE("PLANS")
    ae.add_requested_context(CTImageStorage)
    assoc = ae.associate("127.0.0.1", port, ae_title="HOUNSFIELD")
    assert assoc.is_established
    for ds in studies:
        assert assoc.send_c_store(ds).Status == 0
    assoc.release()

    finder = AE("PLANS")
    finder.add_requested_context(PatientRootQueryRetrieveInformationModelFind)
    finder.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
    first = studies[0]
    study_root = StudyRootQueryRetrieveInformationModelFind
    assert _query(
        finder, port, PatientRootQueryRetrieveInformationModelFind, "PATIENT", PatientID="P0"
    )
    assert _query(finder, port, study_root, "STUDY", PatientID="P1")
    assert _query(finder, port, study_root, "STUDY", PatientName="DOE*")
    assert _query(finder, port, study_root, "STUDY", StudyDate="20240101-20240131")
    assert _query(finder, port, study_root, "STUDY", AccessionNumber="A3")
    assert _query(finder, port, study_root, "STUDY", ModalitiesInStudy="MR")
    assert _query(finder, port, study_root, "SERIES", StudyInstanceUID=first.StudyInstanceUID)
    assert _query(
        finder,
        port,
        study_root,
        "IMAGE",
        StudyInstanceUID=first.StudyInstanceUID,
        SeriesInstanceUID=first.SeriesInstanceUID,
    )
    assert _query(finder, port, study_root, "IMAGE", StudyDate="20240115")

    getter = AE("PLANS")
    getter.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
    getter.add_requested_context(CTImageStorage)
    assoc = getter.associate(
        "127.0.0.1",
        port,
        ae_title="HOUNSFIELD",
        ext_neg=[build_role(CTImageStorage, scp_role=True)],
        evt_handlers=[(evt.EVT_C_STORE, lambda _e: 0x0000)],
    )
    assert assoc.is_established
    ds = Dataset()
    ds.QueryRetrieveLevel = "STUDY"
    ds.StudyInstanceUID = first.StudyInstanceUID
    statuses = [
        s.Status for s, _ in assoc.send_c_get(ds, StudyRootQueryRetrieveInformationModelGet)
    ]
    assoc.release()
    assert statuses[-1] == 0


def _web_day(base: str, first: Dataset) -> None:
    """QIDO-RS searches, study metadata, a frame and a rendered image."""
    study, series, sop = first.StudyInstanceUID, first.SeriesInstanceUID, first.SOPInstanceUID
    with httpx.Client(base_url=f"{base}/dicomweb", timeout=30) as http:
        for path in (
            "/studies?PatientID=P1",
            "/studies?PatientName=DOE*&includefield=all",
            "/studies?StudyDate=20240101-20240131&limit=5&offset=1",
            "/studies?ModalitiesInStudy=MR",
            f"/studies/{study}/series",
            f"/studies/{study}/series/{series}/instances",
            "/instances?Modality=MR",
            f"/studies/{study}/metadata",
            f"/studies/{study}/series/{series}/instances/{sop}/frames/1",
            f"/studies/{study}/series/{series}/instances/{sop}/rendered",
        ):
            answer = http.get(path, headers={"Accept": "*/*"})
            assert answer.status_code == 200, (path, answer.status_code, answer.text[:200])


def test_the_daily_statements_use_an_index(archive: Archive) -> None:
    studies = [
        instance(
            PatientID=f"P{n % 4}",
            PatientName=f"DOE^PATIENT{n % 4}",
            AccessionNumber=f"A{n}",
            Modality="MR" if n % 3 == 0 else "CT",
            SOPClassUID=CTImageStorage,
            StudyInstanceUID=f"1.2.826.0.1.3680043.10.1.{n}",
            SeriesInstanceUID=f"1.2.826.0.1.3680043.10.1.{n}.1",
            SOPInstanceUID=f"1.2.826.0.1.3680043.10.1.{n}.1.{k}",
            InstanceNumber=k,
        )
        for n in range(6)
        for k in range(1, 4)
    ]
    for ds in studies:
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    statements = Statements(archive.engine)
    server = DimseServer(archive)
    server.start()
    try:
        _dimse_day(server.port, studies)
        with live(create_app(archive)) as base:
            _web_day(base, studies[0])
        Worker(archive, threads=1, processes=0).run_until_idle()
        part = archive.resolve(None)
        side = LocalSide(archive, part)
        assert side.studies(date(2024, 1, 1), date(2024, 1, 31))
        assert side.study(studies[0].StudyInstanceUID) is not None
        trail.flush(archive.engine)
        assert list_records(archive.engine, AuditFilter(patient_id="P1", limit=10))
    finally:
        server.stop()
        statements.stop()
    assert len(statements.seen) > 30, sorted(statements.seen)
    _grow(archive.engine, part.pk)
    unindexed = _unindexed(archive.engine, statements.seen)
    assert unindexed == [], "\n".join(unindexed)
