"""patients without a Patient ID: one patient per name and birth date (patient.match_key)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 01:10:00

Upgrade adds patient.match_key ("" for a patient with a Patient ID, "<birth date>|<name>" for
one without) and makes (partition_pk, patient_id, issuer, match_key) the patient's unique key
instead of (partition_pk, patient_id, issuer). Until now all objects without a Patient ID of a
partition and issuer shared one patient row, named after the first object seen; upgrade splits
that row: each of its studies moves to the patient of the name and birth date in the stored
header of the study's first instance (a new patient row when there is none yet). A study whose
header cannot be read, or that names a Patient ID, stays where it is. Then the study counts of
the patients without a Patient ID are recomputed and those left without a study are deleted.

Downgrade merges the patients without a Patient ID of each partition and issuer into the oldest
one (which keeps its name) and restores the former key.

On SQLite the patient table is rebuilt (batch mode) while study rows refer to it: its rows are
set aside and put back in the same transaction, with foreign keys checked at commit.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from io import BytesIO
from typing import Any

import sqlalchemy as sa
from alembic import op
from pydicom.dataset import Dataset
from pydicom.filereader import read_dataset
from pydicom.multival import MultiValue
from pydicom.uid import UID

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

OLD_KEY = "uq_patient_partition_pk_patient_id_issuer"
NEW_KEY = "uq_patient_partition_pk_patient_id_issuer_match_key"
# The patient columns of revision 0003, the ones the SQLite rebuild sets aside.
COLUMNS = (
    "pk, partition_pk, patient_id, issuer, patient_name, name_key, birth_date, sex, num_studies"
)

patient = sa.table(
    "patient",
    sa.column("pk", sa.Integer),
    sa.column("partition_pk", sa.Integer),
    sa.column("patient_id", sa.String),
    sa.column("issuer", sa.String),
    sa.column("patient_name", sa.String),
    sa.column("name_key", sa.String),
    sa.column("birth_date", sa.String),
    sa.column("sex", sa.String),
    sa.column("num_studies", sa.Integer),
    sa.column("match_key", sa.String),
)
study = sa.table("study", sa.column("pk", sa.Integer), sa.column("patient_pk", sa.Integer))
series = sa.table("series", sa.column("pk", sa.Integer), sa.column("study_pk", sa.Integer))
instance = sa.table(
    "instance",
    sa.column("pk", sa.Integer),
    sa.column("series_pk", sa.Integer),
    sa.column("header", sa.LargeBinary),
)
file = sa.table(
    "file",
    sa.column("pk", sa.Integer),
    sa.column("instance_pk", sa.Integer),
    sa.column("transfer_syntax", sa.String),
)
NO_ID = patient.c.patient_id == ""


def upgrade() -> None:
    """Apply this revision."""
    with _rows_set_aside(), op.batch_alter_table("patient", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("match_key", sa.String(length=333), nullable=False, server_default="")
        )
        batch_op.drop_constraint(OLD_KEY, type_="unique")
        batch_op.create_unique_constraint(
            NEW_KEY, ["partition_pk", "patient_id", "issuer", "match_key"]
        )
    _split(op.get_bind())


def downgrade() -> None:
    """Revert this revision."""
    _merge(op.get_bind())
    with _rows_set_aside(), op.batch_alter_table("patient", schema=None) as batch_op:
        batch_op.drop_constraint(NEW_KEY, type_="unique")
        batch_op.create_unique_constraint(OLD_KEY, ["partition_pk", "patient_id", "issuer"])
        batch_op.drop_column("match_key")


@contextmanager
def _rows_set_aside() -> Iterator[None]:
    """On SQLite, empty the patient table around its rebuild and put its rows back after.

    SQLite refuses to drop a table that rows refer to; with the checks deferred to the commit,
    rows deleted before and inserted again after the rebuild leave no violation behind."""
    if op.get_bind().dialect.name != "sqlite":
        yield
        return
    op.execute("PRAGMA defer_foreign_keys = ON")
    op.execute(f"CREATE TEMP TABLE _patient_rows AS SELECT {COLUMNS} FROM patient")
    op.execute("DELETE FROM patient")
    yield
    op.execute(f"INSERT INTO patient ({COLUMNS}) SELECT {COLUMNS} FROM _patient_rows")
    op.execute("DROP TABLE _patient_rows")


def _split(conn: sa.Connection) -> None:
    """Give each study of a patient without a Patient ID the patient of its own name and birth
    date."""
    conn.execute(
        sa.update(patient)
        .where(NO_ID)
        .values(match_key=patient.c.birth_date + "|" + patient.c.patient_name)
    )
    rows = conn.execute(
        sa.select(
            series.c.study_pk,
            sa.func.min(instance.c.pk),
            patient.c.partition_pk,
            patient.c.issuer,
            patient.c.match_key,
        )
        .select_from(instance)
        .join(series, series.c.pk == instance.c.series_pk)
        .join(study, study.c.pk == series.c.study_pk)
        .join(patient, patient.c.pk == study.c.patient_pk)
        .where(NO_ID)
        .group_by(series.c.study_pk, patient.c.partition_pk, patient.c.issuer, patient.c.match_key)
        .order_by(series.c.study_pk)
    ).all()
    patients: dict[tuple[int, str, str], int] = {}
    for study_pk, instance_pk, partition_pk, issuer, current in rows:
        seen = _demographics(conn, instance_pk)
        if seen is None:
            continue
        name, birth_date, sex = seen
        key = f"{birth_date}|{name}"
        if key == current:
            continue
        target = (partition_pk, issuer, key)
        if target not in patients:
            patients[target] = _patient_pk(conn, partition_pk, issuer, key, name, birth_date, sex)
        conn.execute(
            sa.update(study).where(study.c.pk == study_pk).values(patient_pk=patients[target])
        )
    _recount(conn)


def _merge(conn: sa.Connection) -> None:
    """Move the studies of the patients without a Patient ID of each partition and issuer to
    the oldest of them, and delete the others."""
    oldest = conn.execute(
        sa.select(patient.c.partition_pk, patient.c.issuer, sa.func.min(patient.c.pk))
        .where(NO_ID)
        .group_by(patient.c.partition_pk, patient.c.issuer)
    ).all()
    for partition_pk, issuer, keep in oldest:
        others = sa.select(patient.c.pk).where(
            NO_ID,
            patient.c.partition_pk == partition_pk,
            patient.c.issuer == issuer,
            patient.c.pk != keep,
        )
        conn.execute(sa.update(study).where(study.c.patient_pk.in_(others)).values(patient_pk=keep))
        conn.execute(sa.delete(patient).where(patient.c.pk.in_(others)))
    _recount(conn)


def _recount(conn: sa.Connection) -> None:
    """Recount the studies of the patients without a Patient ID; delete those with none."""
    counted = (
        sa.select(sa.func.count())
        .select_from(study)
        .where(study.c.patient_pk == patient.c.pk)
        .scalar_subquery()
    )
    conn.execute(sa.update(patient).where(NO_ID).values(num_studies=counted))
    conn.execute(sa.delete(patient).where(NO_ID, patient.c.num_studies == 0))


def _patient_pk(
    conn: sa.Connection, partition_pk: int, issuer: str, key: str, name: str, birth: str, sex: str
) -> int:
    """The patient without a Patient ID under this key, inserted if absent."""
    where = (
        NO_ID,
        patient.c.partition_pk == partition_pk,
        patient.c.issuer == issuer,
        patient.c.match_key == key,
    )
    found = conn.scalar(sa.select(patient.c.pk).where(*where))
    if found is not None:
        return int(found)
    values = {
        "partition_pk": partition_pk,
        "patient_id": "",
        "issuer": issuer,
        "match_key": key,
        "patient_name": name,
        "name_key": name.upper()[:324],
        "birth_date": birth,
        "sex": sex,
        "num_studies": 0,
    }
    return int(conn.execute(sa.insert(patient).values(values).returning(patient.c.pk)).scalar_one())


def _demographics(conn: sa.Connection, instance_pk: int) -> tuple[str, str, str] | None:
    """Patient name, birth date and sex in an instance's stored header, cut to the column
    sizes; None when the header cannot be read or names a Patient ID."""
    row = conn.execute(
        sa.select(instance.c.header, file.c.transfer_syntax)
        .select_from(instance)
        .join(file, file.c.instance_pk == instance.c.pk)
        .where(instance.c.pk == instance_pk)
        .order_by(file.c.pk)
        .limit(1)
    ).first()
    if row is None:
        return None
    try:
        syntax = UID(row[1])
        ds = read_dataset(BytesIO(row[0]), syntax.is_implicit_VR, syntax.is_little_endian)
        if _text(ds, "PatientID"):
            return None
        return (
            _text(ds, "PatientName")[:324],
            _text(ds, "PatientBirthDate")[:8],
            _text(ds, "PatientSex")[:16],
        )
    except Exception:  # any unreadable header leaves its study where it is
        return None


def _text(ds: Dataset, keyword: str) -> str:
    """An attribute as the index stores it (hounsfield.catalog.parse.text at this revision)."""
    value: Any = ds.get(keyword)
    if value is None or value == "":
        return ""
    if isinstance(value, list | tuple | MultiValue):
        return "\\".join(str(v) for v in value)
    return str(value).strip()
