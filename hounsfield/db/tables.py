"""The whole database schema in one place (SQLAlchemy Core, SQLite and PostgreSQL)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# SQLite only gives AUTOINCREMENT-like rowids to INTEGER PRIMARY KEY columns.
PK = BigInteger().with_variant(Integer(), "sqlite")

partition = Table(
    "partition",
    metadata,
    Column("pk", PK, primary_key=True),
    Column("ae_title", String(16), nullable=False, unique=True),
    Column("description", Text, nullable=False, default=""),
)

filesystem = Table(
    "filesystem",
    metadata,
    Column("pk", PK, primary_key=True),
    Column("path", Text, nullable=False, unique=True),
    Column("tier", Integer, nullable=False, default=1),
    Column("enabled", Boolean, nullable=False, default=True),
    Column("read_only", Boolean, nullable=False, default=False),
    Column("write_only", Boolean, nullable=False, default=False),
    Column("capacity_bytes", BigInteger, nullable=True),
    Column("low_watermark", Integer, nullable=False, default=80),
    Column("high_watermark", Integer, nullable=False, default=90),
)

device = Table(
    "device",
    metadata,
    Column("pk", PK, primary_key=True),
    Column("ae_title", String(16), nullable=False, unique=True),
    Column("host", String(255), nullable=False),
    Column("port", Integer, nullable=False),
    Column("description", Text, nullable=False, default=""),
)

patient = Table(
    "patient",
    metadata,
    Column("pk", PK, primary_key=True),
    Column("partition_pk", ForeignKey("partition.pk"), nullable=False),
    Column("patient_id", String(64), nullable=False, default=""),
    Column("issuer", String(64), nullable=False, default=""),
    Column("patient_name", String(324), nullable=False, default=""),
    Column("birth_date", String(8), nullable=False, default=""),
    Column("sex", String(16), nullable=False, default=""),
    Column("num_studies", Integer, nullable=False, default=0),
    UniqueConstraint("partition_pk", "patient_id", "issuer"),
    Index(None, "patient_name"),
)

study = Table(
    "study",
    metadata,
    Column("pk", PK, primary_key=True),
    Column("partition_pk", ForeignKey("partition.pk"), nullable=False),
    Column("patient_pk", ForeignKey("patient.pk"), nullable=False, index=True),
    Column("study_iuid", String(64), nullable=False),
    Column("study_date", String(8), nullable=False, default=""),
    Column("study_time", String(16), nullable=False, default=""),
    Column("accession_number", String(16), nullable=False, default=""),
    Column("study_id", String(16), nullable=False, default=""),
    Column("description", String(64), nullable=False, default=""),
    Column("referring_physician", String(324), nullable=False, default=""),
    Column("modalities", String(128), nullable=False, default=""),
    Column("num_series", Integer, nullable=False, default=0),
    Column("num_instances", Integer, nullable=False, default=0),
    Column("size_bytes", BigInteger, nullable=False, default=0),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("partition_pk", "study_iuid"),
    Index(None, "study_iuid"),
    Index(None, "study_date"),
    Index(None, "accession_number"),
)

series = Table(
    "series",
    metadata,
    Column("pk", PK, primary_key=True),
    Column("study_pk", ForeignKey("study.pk"), nullable=False),
    Column("series_iuid", String(64), nullable=False),
    Column("modality", String(16), nullable=False, default=""),
    Column("series_number", String(12), nullable=False, default=""),
    Column("description", String(64), nullable=False, default=""),
    Column("body_part", String(16), nullable=False, default=""),
    Column("series_date", String(8), nullable=False, default=""),
    Column("series_time", String(16), nullable=False, default=""),
    Column("num_instances", Integer, nullable=False, default=0),
    UniqueConstraint("study_pk", "series_iuid"),
    Index(None, "series_iuid"),
    Index(None, "modality"),
)

instance = Table(
    "instance",
    metadata,
    Column("pk", PK, primary_key=True),
    Column("series_pk", ForeignKey("series.pk"), nullable=False),
    Column("sop_iuid", String(64), nullable=False),
    Column("sop_cuid", String(64), nullable=False),
    Column("instance_number", String(12), nullable=False, default=""),
    Column("number_of_frames", Integer, nullable=True),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("calling_ae", String(16), nullable=False, default=""),
    # The dataset as received up to Pixel Data: answers C-FIND return keys
    # that have no column of their own without reading the file.
    Column("header", LargeBinary, nullable=False),
    UniqueConstraint("series_pk", "sop_iuid"),
    Index(None, "sop_iuid"),
    Index(None, "sop_cuid"),
)

file = Table(
    "file",
    metadata,
    Column("pk", PK, primary_key=True),
    Column("instance_pk", ForeignKey("instance.pk"), nullable=False, index=True),
    Column("filesystem_pk", ForeignKey("filesystem.pk"), nullable=False, index=True),
    Column("path", Text, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("transfer_syntax", String(64), nullable=False),
    Column("checksum", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("filesystem_pk", "path"),
)
