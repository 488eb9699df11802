"""The whole database schema in one place (SQLAlchemy Core, SQLite and PostgreSQL)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
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
    Column("tls_port", Integer, nullable=True),  # its own DICOM TLS port
    Column("duplicate_policy", String(16), nullable=True),
    Column("caller_policy", String(16), nullable=True),
    # JSON list of "AE" or "AE@host" entries allowed to call; empty: any (per caller_policy).
    Column("accept_from", Text, nullable=False, default="[]"),
    # "local" holds data; "virtual" answers for its members: a JSON list, in precedence
    # order, of local partitions' AE titles and "device:AE" remote peers. Objects fetched
    # from a peer are kept in the partition `cache_to` (none: not kept); each remote member
    # gets `member_timeout` seconds (none: the node's timeouts).
    Column("kind", String(8), nullable=False, default="local"),
    Column("members", Text, nullable=False, default="[]"),
    Column("cache_to", String(16), nullable=True),
    Column("member_timeout", Float, nullable=True),
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
    # A mirror holds a second copy of everything written to the filesystem it mirrors:
    # "sync" before the store is acknowledged, "async" by a work item soon after.
    Column("mirror_of_pk", ForeignKey("filesystem.pk"), nullable=True),
    Column("mirror_mode", String(8), nullable=True),
)

# Bytes used per filesystem, kept exact by triggers on `file` in the index's own
# transactions: the usage is the sum of a filesystem's rows (one per writer shard).
filesystem_usage = Table(
    "filesystem_usage",
    metadata,
    Column("filesystem_pk", ForeignKey("filesystem.pk", ondelete="CASCADE"), primary_key=True),
    Column("shard", Integer, primary_key=True),
    Column("bytes", BigInteger, nullable=False),
)

# One row; triggers on the configuration tables bump `version` on every change.
config_version = Table(
    "config_version",
    metadata,
    Column("pk", Integer, primary_key=True),
    Column("version", BigInteger, nullable=False),
)

# The nodes of a cluster: each registers at start and beats every few seconds.
node = Table(
    "node",
    metadata,
    Column("pk", PK, primary_key=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("address", String(255), nullable=False),
    Column("dimse_port", Integer, nullable=False),
    Column("http_port", Integer, nullable=False),
    Column("version", String(32), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("runs", Text, nullable=False),  # JSON list: dimse, http, workers, scheduler
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("beat_at", DateTime(timezone=True), nullable=False),
    Column("stopped_at", DateTime(timezone=True), nullable=True),
    Column("draining", Boolean, nullable=False, default=False),
    Column("healthy", Boolean, nullable=False, default=True),
    Column("problem", Text, nullable=False, default=""),
    Column("associations", Integer, nullable=False, default=0),
)

device = Table(
    "device",
    metadata,
    Column("pk", PK, primary_key=True),
    Column("ae_title", String(16), nullable=False, unique=True),
    Column("host", String(255), nullable=False),
    Column("port", Integer, nullable=False),
    Column("description", Text, nullable=False, default=""),
    # Forwarding: "dimse" (C-STORE) or "dicomweb" (STOW-RS to `url`), how many associations
    # at once, an optional bandwidth cap (kbit/s), whether to request storage commitment.
    Column("protocol", String(8), nullable=False, default="dimse"),
    Column("url", Text, nullable=False, default=""),
    Column("associations", Integer, nullable=False, default=1),
    Column("bandwidth_kbps", Integer, nullable=True),
    Column("commitment", Boolean, nullable=False, default=False),
    # JSON list of further "host:port" addresses of the same AE (a cluster): an association
    # that cannot be opened at one address is tried at the next.
    Column("alternates", Text, nullable=False, default="[]", server_default="[]"),
    # Associations to it run over TLS.
    Column("tls", Boolean, nullable=False, default=False, server_default=false()),
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
    Index(None, "patient_id"),  # a search by Patient ID names the partition on the study
    # DOE* is a LIKE prefix: on PostgreSQL only an index in pattern order serves it.
    Index(
        "ix_patient_name_key_prefix",
        "name_key",
        postgresql_ops={"name_key": "varchar_pattern_ops"},
    ).ddl_if(dialect="postgresql"),
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
    # When storage verification last found the file's size and checksum as indexed.
    Column("verified_at", DateTime(timezone=True), nullable=True),
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

# Forwarding: one row per (study or series, destination) with what has been sent and committed.
forward = Table(
    "forward",
    metadata,
    Column("pk", PK, primary_key=True),
    Column("partition_pk", ForeignKey("partition.pk"), nullable=False),
    Column("study_iuid", String(64), nullable=False),
    Column("series_iuid", String(64), nullable=False, default=""),  # "": the whole study
    Column("destination", String(16), nullable=False),
    # pending, sending, sent (waiting for commitment), committed (or sent, without
    # commitment: done), failed (dead-lettered)
    Column("state", String(16), nullable=False),
    Column("instances", Integer, nullable=False, default=0),
    Column("sent", Integer, nullable=False, default=0),
    Column("committed", Integer, nullable=False, default=0),
    Column("refused", Integer, nullable=False, default=0),
    Column("attempts", Integer, nullable=False, default=0),
    Column("last_error", Text, nullable=False, default=""),
    Column("transaction_uid", String(64), nullable=True),
    Column("reason", String(64), nullable=False, default=""),  # the rule, or "by hand"
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("sent_at", DateTime(timezone=True), nullable=True),
    Column("committed_at", DateTime(timezone=True), nullable=True),
    UniqueConstraint("partition_pk", "study_iuid", "series_iuid", "destination"),
    Index(None, "destination", "state"),
    Index(None, "transaction_uid"),
)

# Each instance a forward sent: acknowledged ("sent"), then "committed" or "refused" by the
# destination's storage commitment report.
forward_instance = Table(
    "forward_instance",
    metadata,
    Column("pk", PK, primary_key=True),
    Column("forward_pk", ForeignKey("forward.pk", ondelete="CASCADE"), nullable=False),
    Column("sop_iuid", String(64), nullable=False),
    Column("sop_cuid", String(64), nullable=False),
    Column("state", String(12), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("forward_pk", "sop_iuid"),
)

# Reconciliation with a peer: one report per run (its per-day counts and notes as JSON) and
# the differences it found (pass 1) and those left after fetching or pushing (pass 2).
reconcile_report = Table(
    "reconcile_report",
    metadata,
    Column("pk", PK, primary_key=True),
    Column("partition_ae", String(16), nullable=False),
    Column("peer_ae", String(16), nullable=False),
    Column("date_from", String(8), nullable=False),
    Column("date_to", String(8), nullable=False),
    Column("direction", String(8), nullable=False, default="none"),  # none, fetch, push, both
    Column("reason", String(64), nullable=False, default=""),  # "by hand", or the job's name
    # running, complete, incomplete (the peer capped a list that could not be split), failed
    Column("state", String(16), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    Column("local_studies", Integer, nullable=False, default=0),
    Column("local_instances", Integer, nullable=False, default=0),
    Column("peer_studies", Integer, nullable=False, default=0),
    Column("peer_instances", Integer, nullable=False, default=0),
    # objects missing here / held only here, as first found; repaired; left at the end
    Column("missing", Integer, nullable=False, default=0),
    Column("extra", Integer, nullable=False, default=0),
    Column("fetched", Integer, nullable=False, default=0),
    Column("pushed", Integer, nullable=False, default=0),
    Column("missing_left", Integer, nullable=False, default=0),
    Column("extra_left", Integer, nullable=False, default=0),
    Column("passes", Integer, nullable=False, default=0),  # 2: compared again after repair
    Column("days", Text, nullable=False, default="[]"),
    Column("notes", Text, nullable=False, default="[]"),
    Column("error", Text, nullable=False, default=""),
    Index(None, "partition_ae", "peer_ae", "state"),
)

reconcile_difference = Table(
    "reconcile_difference",
    metadata,
    Column("pk", PK, primary_key=True),
    Column(
        "report_pk",
        ForeignKey("reconcile_report.pk", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("pass_no", Integer, nullable=False),  # 1: as found, 2: left after the repair
    Column("side", String(8), nullable=False),  # missing (here) or extra (here only)
    Column("level", String(8), nullable=False),  # STUDY, SERIES or IMAGE
    Column("study_iuid", String(64), nullable=False),
    Column("series_iuid", String(64), nullable=False, default=""),
    Column("sop_iuid", String(64), nullable=False, default=""),
    Column("sop_cuid", String(64), nullable=False, default=""),
    Column("study_date", String(8), nullable=False, default=""),
    Column("instances", Integer, nullable=False, default=1),
    Column("repair", String(16), nullable=False, default=""),  # fetched, pushed, failed
    Column("detail", Text, nullable=False, default=""),
)

# Scheduled reconciliations: one per (partition, peer, period), run by the
# reconcile-with-peers service when due.
reconcile_job = Table(
    "reconcile_job",
    metadata,
    Column("pk", PK, primary_key=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("partition_ae", String(16), nullable=False),
    Column("peer_ae", String(16), nullable=False),
    Column("period", String(16), nullable=False),  # yesterday, last-7-days, last-month
    Column("direction", String(8), nullable=False, default="none"),
    Column("at_time", String(5), nullable=False, default="02:00"),  # node's local time
    Column("enabled", Boolean, nullable=False, default=True),
    Column("next_run_at", DateTime(timezone=True), nullable=False),
    Column("last_run_at", DateTime(timezone=True), nullable=True),
    Column("last_report_pk", BigInteger, nullable=True),
    # counts, or instances: every series compared instance by instance
    Column("depth", String(16), nullable=False, default="counts", server_default="counts"),
)

# Local users of the HTTP interfaces: an argon2 password hash, one role (admin, operator,
# radiologist, api) and the partitions (AE titles) they may reach: a JSON list, or "*".
user = Table(
    "user",
    metadata,
    Column("pk", PK, primary_key=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("password_hash", Text, nullable=False),
    Column("role", String(16), nullable=False),
    Column("partitions", Text, nullable=False, default='"*"'),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("disabled", Boolean, nullable=False, default=False),
)

# API tokens for scripts: only the SHA-256 of the secret is kept; the secret is shown once.
api_token = Table(
    "api_token",
    metadata,
    Column("pk", PK, primary_key=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("user_pk", ForeignKey("user.pk", ondelete="CASCADE"), nullable=False, index=True),
    Column("name", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=True),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
    Column("last_used_at", DateTime(timezone=True), nullable=True),
)

# Logins of the admin pages and the viewer: the SHA-256 of the cookie's random id.
web_session = Table(
    "web_session",
    metadata,
    Column("pk", PK, primary_key=True),
    Column("id_hash", String(64), nullable=False, unique=True),
    Column("user_pk", ForeignKey("user.pk", ondelete="CASCADE"), nullable=False, index=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
)

# Failed logins of the admin pages, counted by every process and node: the SHA-256 of what
# is counted (a user name from an address, or an address) and when (seconds since the epoch).
login_failure = Table(
    "login_failure",
    metadata,
    Column("pk", PK, primary_key=True),
    Column("key_hash", String(64), nullable=False),
    Column("failed_at", Float, nullable=False),
    Index(None, "key_hash", "failed_at"),
    Index(None, "failed_at"),
)

# The audit trail: who (user or calling AE title, address), what (event, patient, study, how
# many instances), when, outcome (0 success, 4 minor, 8 serious, 12 major failure).
audit_event = Table(
    "audit_event",
    metadata,
    Column("pk", PK, primary_key=True),
    Column("created_at", DateTime(timezone=True), nullable=False, index=True),
    Column("event", String(32), nullable=False, index=True),
    Column("outcome", Integer, nullable=False),
    Column("user_name", String(128), nullable=False, index=True),
    Column("ae_title", String(16), nullable=False),
    Column("remote_host", String(64), nullable=False),
    Column("called", String(64), nullable=False),
    Column("protocol", String(16), nullable=False),
    Column("partition", String(16), nullable=False),
    Column("patient_id", String(64), nullable=False, index=True),
    Column("patient_name", String(324), nullable=False),
    Column("study_iuid", String(64), nullable=False, index=True),
    Column("count", Integer, nullable=False),
    Column("detail", Text, nullable=False),
    Column("node", String(64), nullable=False),
)
