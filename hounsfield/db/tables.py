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
    text,
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

# A partition is a tenant: its own AE title (and optionally port), policies and data.
# A NULL policy follows the node's setting of the same name.
partition = Table(
    "partition",
    metadata,
    Column("pk", PK, primary_key=True),
    Column("ae_title", String(16), nullable=False, unique=True),
    Column("description", Text, nullable=False, default=""),
    Column("port", Integer, nullable=True),
    Column("duplicate_policy", String(16), nullable=True),
    Column("caller_policy", String(16), nullable=True),
    # JSON list of "AE" or "AE@host" entries allowed to call; empty: any (per caller_policy).
    Column("accept_from", Text, nullable=False, default="[]"),
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
    # Person names match case-insensitively (as most archives do): upper-cased once, here.
    Column("name_key", String(324), nullable=False, default=""),
    Column("birth_date", String(8), nullable=False, default=""),
    Column("sex", String(16), nullable=False, default=""),
    Column("num_studies", Integer, nullable=False, default=0),
    # Tells apart patients without a Patient ID: "" for a patient with one, else
    # "<birth date>|<name>" (see hounsfield.catalog.index.match_key).
    Column("match_key", String(333), nullable=False, default=""),
    UniqueConstraint("partition_pk", "patient_id", "issuer", "match_key"),
    Index(None, "name_key"),
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
    Column("referring_key", String(324), nullable=False, default=""),
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

# The predicate of the partial unique index on work_item.coalesce_key, spelled out literally
# so that PostgreSQL can match ON CONFLICT … WHERE to the index.
WAITING_PREDICATE = "status IN ('idle', 'pending')"

# Background work: one row per work item, claimed under a lease (see hounsfield.workqueue).
work_item = Table(
    "work_item",
    metadata,
    Column("pk", PK, primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("priority", Integer, nullable=False, default=2),
    Column("status", String(16), nullable=False),
    Column("scheduled_at", DateTime(timezone=True), nullable=False),
    Column("failure_count", Integer, nullable=False, default=0),
    Column("max_retries", Integer, nullable=False, default=3),
    Column("node", String(64), nullable=True),
    Column("lease_token", String(32), nullable=True),
    Column("lease_expires_at", DateTime(timezone=True), nullable=True),
    # Items sharing a study key take the study lock: one writer or many readers.
    Column("study_key", String(96), nullable=True),
    Column("study_lock", String(8), nullable=True),
    # At most one idle / pending item per coalesce key (see the partial unique index).
    Column("coalesce_key", String(255), nullable=True),
    Column("payload", Text, nullable=False, default="{}"),
    Column("result", Text, nullable=False, default=""),
    Column("error", Text, nullable=False, default=""),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("completed_at", DateTime(timezone=True), nullable=True),
    Index(None, "status", "priority", "scheduled_at"),
    Index(None, "study_key"),
    Index(
        "uq_work_item_coalesce_key_waiting",
        "coalesce_key",
        unique=True,
        sqlite_where=text(WAITING_PREDICATE),
        postgresql_where=text(WAITING_PREDICATE),
    ),
)

# The service schedule: one row per scheduled service, locked by the node running it.
service = Table(
    "service",
    metadata,
    Column("pk", PK, primary_key=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("enabled", Boolean, nullable=False, default=True),
    Column("interval_seconds", Integer, nullable=False),
    Column("next_run_at", DateTime(timezone=True), nullable=False),
    Column("locked_by", String(64), nullable=True),
    Column("locked_until", DateTime(timezone=True), nullable=True),
    Column("last_run_at", DateTime(timezone=True), nullable=True),
    Column("last_result", Text, nullable=False, default=""),
    Column("state", Text, nullable=False, default="{}"),
)

# Server rules: conditions and one timed action each (see hounsfield.rules).
server_rule = Table(
    "server_rule",
    metadata,
    Column("pk", PK, primary_key=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("partition_pk", ForeignKey("partition.pk"), nullable=True),
    Column("action", String(32), nullable=False),
    Column("enabled", Boolean, nullable=False, default=True),
    Column("exempt", Boolean, nullable=False, default=False),
    Column("is_default", Boolean, nullable=False, default=False),
    Column("match", String(8), nullable=False, default="all"),
    Column("conditions", Text, nullable=False, default="[]"),
    Column("after_seconds", BigInteger, nullable=False, default=0),
    Column("time_from", String(16), nullable=False, default="receipt"),
    Column("params", Text, nullable=False, default="{}"),
)

# What the rules decided for each study: when it becomes eligible for which action.
study_outcome = Table(
    "study_outcome",
    metadata,
    Column("pk", PK, primary_key=True),
    Column("study_pk", ForeignKey("study.pk", ondelete="CASCADE"), nullable=False),
    Column("action", String(32), nullable=False),
    Column("eligible_at", DateTime(timezone=True), nullable=False),
    Column("rule_name", String(64), nullable=False),
    Column("params", Text, nullable=False, default="{}"),
    UniqueConstraint("study_pk", "action"),
    Index(None, "action", "eligible_at"),
)

# Alerts for operators: level, category, source, message, time.
alert = Table(
    "alert",
    metadata,
    Column("pk", PK, primary_key=True),
    Column("level", String(16), nullable=False),
    Column("category", String(32), nullable=False),
    Column("source", String(128), nullable=False),
    Column("message", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, index=True),
)

# The application log: warnings and above, and work-queue / service events, from every node.
app_log = Table(
    "app_log",
    metadata,
    Column("pk", PK, primary_key=True),
    Column("level", String(16), nullable=False),
    Column("logger", String(128), nullable=False),
    Column("node", String(64), nullable=False),
    Column("message", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, index=True),
)
