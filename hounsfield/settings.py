"""Node settings from a TOML file and HOUNSFIELD_* environment variables."""

from __future__ import annotations

import ipaddress
import os
import socket
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

DuplicatePolicy = Literal["keep", "overwrite", "reject"]
CallerPolicy = Literal["any", "known"]
MirrorMode = Literal["sync", "async"]


class DeviceConfig(BaseModel):
    """A remote DICOM device declared in the TOML file."""

    ae_title: str
    host: str
    port: int = Field(ge=1, le=65535)
    description: str = ""
    protocol: Literal["dimse", "dicomweb"] = "dimse"
    url: str = ""  # the DICOMweb base URL (STOW-RS posts to {url}/studies)
    associations: int = Field(default=1, ge=1, le=16)
    bandwidth_kbps: int | None = Field(default=None, ge=8)
    commitment: bool = False
    alternates: list[str] = []  # further "host:port" addresses of the same AE (a cluster)
    tls: bool = False  # associate over TLS (DICOMweb: an https URL)


class PartitionConfig(BaseModel):
    """A partition (a tenant with its own AE title) declared in the TOML file."""

    ae_title: str
    port: int | None = Field(default=None, ge=1, le=65535)
    tls_port: int | None = Field(default=None, ge=1, le=65535)  # its own DICOM TLS port
    description: str = ""
    duplicate_policy: DuplicatePolicy | None = None  # None: the node's setting
    caller_policy: CallerPolicy | None = None
    accept_from: list[str] = []
    kind: Literal["local", "virtual"] = "local"
    members: list[str] = []  # a virtual partition's: local AE titles and "device:AE" peers
    cache_to: str | None = None
    member_timeout: float | None = Field(default=None, gt=0)


class FilesystemConfig(BaseModel):
    """A storage filesystem declared in the TOML file."""

    path: Path
    tier: int = Field(default=1, ge=1, le=3)
    enabled: bool = True
    read_only: bool = False
    write_only: bool = False
    capacity_bytes: int | None = None
    low_watermark: int = Field(default=80, ge=0, le=100)
    high_watermark: int = Field(default=90, ge=0, le=100)
    # This filesystem mirrors the one at `mirror_of`: a second copy of everything written
    # there, before the store is acknowledged ("sync", the default) or soon after ("async").
    mirror_of: Path | None = None
    mirror_mode: MirrorMode | None = None


class RuleCondition(BaseModel):
    """One condition of a server rule: an attribute (or `CallingAE`), a test, a value."""

    attribute: str
    op: Literal["equals", "one-of", "regex", "present", "absent"] = "equals"
    value: str = ""
    values: list[str] = []


class RuleConfig(BaseModel):
    """A server rule declared in the TOML file."""

    name: str
    action: str
    partition: str | None = None
    after: str = "0 days"
    time_from: Literal["receipt", "study-date"] = Field(default="receipt", alias="from")
    match: Literal["all", "any"] = "all"
    conditions: list[RuleCondition] = []
    exempt: bool = False
    default: bool = False
    enabled: bool = True
    params: dict[str, str | int | float | list[str]] = {}

    model_config = {"populate_by_name": True}


class ReconcileConfig(BaseModel):
    """A scheduled reconciliation of a partition with a peer, declared in the TOML file
    (`[[reconcile]]`): the period it covers, when it runs, and what it repairs."""

    name: str
    partition: str
    peer: str
    period: Literal["yesterday", "last-7-days", "last-month"] = "yesterday"
    direction: Literal["none", "fetch", "push", "both"] = "none"
    depth: Literal["counts", "instances"] = "counts"  # see `hounsfield reconcile --instances`
    at: str = "02:00"  # HH:MM, the node's local time
    enabled: bool = True


class Settings(BaseSettings):
    """Everything one node needs to start; embedded defaults run with no set-up."""

    model_config = SettingsConfigDict(env_prefix="HOUNSFIELD_", extra="ignore")

    config: Path | None = None
    ae_title: str = "HOUNSFIELD"
    host: str = "0.0.0.0"
    dimse_port: int = 11112
    http_port: int = 8080
    data_dir: Path = Path("var")
    database_url: str | None = None
    node_name: str = Field(default_factory=socket.gethostname)
    # Cluster: the address other nodes and `cluster status` show for this node (default: the
    # host name), how often it beats, and after how long without a beat it is taken as down
    # (its scheduled-service locks are released and its work items reclaimed at once).
    node_address: str | None = None
    heartbeat_seconds: float = Field(default=2.0, gt=0)
    node_down_seconds: float = Field(default=10.0, gt=0)

    caller_policy: CallerPolicy = "any"
    duplicate_policy: DuplicatePolicy = "keep"
    # A called AE title no partition answers to: refused (A-ASSOCIATE-RJ), or served by the
    # default partition when this is true.
    unknown_called_ae_to_default: bool = False
    max_associations: int = 32
    dimse_processes: int = Field(default=0, ge=0)  # 0: one per CPU, at most two
    max_pdu: int = 1_048_576
    # Load balancers (addresses or networks) in TCP mode that put a PROXY protocol header
    # (v1 or v2, HAProxy's `send-proxy-v2`) in front of each DICOM connection: the client's
    # address is taken from it. A connection from them without one is closed. Empty: none.
    dimse_proxy_protocol: list[str] = []
    # Associations that propose only Verification and C-FIND are served by the archive's own
    # one-thread path (dicomnet/direct/); false: by pynetdicom, as all others are.
    dimse_query_path: bool = True
    # With the above: so are those that also (or only) propose storage SOP classes.
    dimse_store_path: bool = True
    connect_timeout: float = 10.0
    association_timeout: float = 30.0
    dimse_timeout: float = 60.0
    idle_timeout: float = 300.0
    # TLS (BCP 195: TLS 1.2 and newer). `tls_port`: a DICOM TLS listener besides the plain
    # one (every partition answers there, chosen by the called AE title); its certificate and
    # key, also offered as client certificate to peers; `tls_ca_file`: the CA that must have
    # signed every TLS caller's certificate, and that peers' certificates are checked against
    # (without it: the system's CAs). `http_tls`: HTTPS on the HTTP port with the same pair.
    tls_port: int | None = Field(default=None, ge=0, le=65535)
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    tls_ca_file: Path | None = None
    tls_ciphers: str = "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20"
    tls_check_hostname: bool = True  # a peer's certificate must name its host
    http_tls: bool = False
    # An HTTP client must send each request's whole header within this many seconds of
    # connecting (or of the previous answer); a slower one is closed.
    http_header_timeout: float = Field(default=10.0, gt=0)
    # Threads that run the HTTP server's blocking work (handlers, file reads of streamed
    # answers). Each holds Python's lock while it computes, so more threads mostly wait on
    # each other: frames of 0.5 MB from 24 connections, 12 runs each, medians: 121 frames/s
    # and 9.3 ms of server CPU each with 8 threads, 114/s and 10.5 ms with 40 (Starlette's
    # default). GET and HEAD requests take as many turns at once, a client with nothing
    # else outstanding first, the others client by client (web/fair.py).
    http_threads: int = Field(default=8, ge=1)
    # Turns (and threads) for reads through a virtual partition, which wait on its remote
    # members (up to their timeout each): a member that never answers holds up these, never
    # the node's own `http_threads`.
    http_remote_threads: int = Field(default=4, ge=1)
    # Processes answering HTTP on the one port; 0: one per two CPUs, at least one, at most
    # four (on two CPUs one process gave viewers their first image sooner, two answered more
    # requests per second: bench/RESULTS.md, Notes).
    http_processes: int = Field(default=0, ge=0)

    storage_capacity_bytes: int | None = None
    storage_reserve_bytes: int = 64 * 1024 * 1024
    fsync: bool = True

    devices: list[DeviceConfig] = []
    partitions: list[PartitionConfig] = []
    filesystems: list[FilesystemConfig] = []
    rules: list[RuleConfig] = []
    reconcile: list[ReconcileConfig] = []  # [[reconcile]]

    queue_threads: int = Field(default=10, ge=0)
    queue_processes: int = Field(default=1, ge=0)
    queue_lease_seconds: float = Field(default=60.0, gt=0)
    queue_poll_seconds: float = Field(default=1.0, gt=0)
    queue_keep_completed_hours: float = 24.0
    study_settle_seconds: float = 60.0
    # Forwarding: retries back off exponentially from `forward_retry_seconds` up to
    # `forward_retry_max_seconds` (with jitter); a forward is dead-lettered after
    # `forward_max_attempts` failures or `forward_max_age_hours` since it was queued.
    forward_retry_seconds: float = Field(default=30.0, gt=0)
    forward_retry_max_seconds: float = Field(default=1800.0, gt=0)
    forward_max_attempts: int = Field(default=20, ge=1)
    forward_max_age_hours: float = Field(default=72.0, gt=0)
    forward_receipt_delay_seconds: float = Field(default=2.0, ge=0)  # batch what arrives
    forward_linger_seconds: float = Field(default=5.0, ge=0)  # keep a link open for the next
    forward_commitment_wait_seconds: float = Field(default=600.0, gt=0)
    import_settle_seconds: float = 5.0
    scheduler: bool = True
    scheduler_poll_seconds: float = 5.0
    alert_keep_days: float = 30.0
    alert_archive: bool = False
    app_log_keep_days: float = 2.0
    # The audit trail: kept in the database for `audit_keep_days` (each finished day is also
    # archived to a zip on the lowest tier); alike stores and retrieves of one caller and study
    # within `audit_coalesce_seconds` make one record. `audit_syslog`: also send every record
    # as a DICOM audit message (PS3.15 A.5) in RFC 5424 syslog to tls://HOST:6514 (RFC 5425),
    # tcp://HOST:514 or udp://HOST:514; over TLS the collector's certificate is checked against
    # `audit_syslog_ca_file` (else `tls_ca_file`, else the system's CAs) and the node offers
    # `tls_cert_file` as its client certificate.
    audit_keep_days: float = Field(default=400.0, gt=0)
    # Reconciliation reports finished longer ago are removed (the newest of each partition and
    # peer, and each scheduled job's last one, stay).
    reconcile_keep_days: float = Field(default=400.0, gt=0)
    audit_coalesce_seconds: float = Field(default=5.0, ge=0)
    audit_syslog: str | None = None
    audit_syslog_ca_file: Path | None = None

    # Who may call over HTTP: "remote" (default) lets loopback clients in unauthenticated and
    # asks everyone else to log in; "always" asks everyone; "never" asks no one. /health and
    # /metrics stay open (load balancers, Prometheus). Behind a reverse proxy on the same host
    # every client looks like the loopback: use "always" there.
    http_auth: Literal["remote", "always", "never"] = "remote"
    web_session_hours: float = Field(default=12.0, gt=0)  # a login's lifetime
    # After `login_max_failures` failed logins of one user name from one address within
    # `login_lock_seconds`, that name may not log in from there until the time has passed (an
    # address trying many names: after ten times as many); other addresses are not locked out.
    login_max_failures: int = Field(default=5, ge=1)
    login_lock_seconds: float = Field(default=300.0, gt=0)
    # OpenID Connect bearer tokens (JWT): accepted when an issuer is set, checked against the
    # keys at `oidc_jwks_url` or in `oidc_key_file` (PEM public key); the claim `oidc_role_claim`
    # names the role (or a list holding one), `oidc_partitions_claim` the partitions.
    oidc_issuer: str | None = None
    oidc_audience: str | None = None
    oidc_jwks_url: str | None = None
    oidc_key_file: Path | None = None
    oidc_algorithms: list[str] = ["RS256", "ES256"]
    oidc_role_claim: str = "role"
    oidc_partitions_claim: str = "partitions"
    oidc_leeway_seconds: float = Field(default=30.0, ge=0)
    cors_origins: list[str] = []
    public_url: str | None = None
    qido_max_limit: int = Field(default=10_000, ge=1)
    render_cache_bytes: int = Field(default=512 * 1024 * 1024, ge=0)
    # Threads OpenJPEG may use for one JPEG 2000 decode in the node's HTTP and DIMSE processes
    # (0: one per CPU); work-queue pool processes decode with one each, side by side.
    decode_threads: int = Field(default=0, ge=0)
    # OHIF's static files (`make viewer` puts them here), served at the node's root; the node
    # serves no viewer when the folder has no index.html.
    viewer_dir: Path = Path(__file__).parent / "web" / "viewer" / "dist"
    # Reconciliation: a peer's study list for a date (or time) range with this many matches
    # is taken as capped, like one the peer cut short, and the range is split.
    reconcile_split_at: int = Field(default=1000, ge=2)

    @field_validator("ae_title")
    @classmethod
    def _check_ae(cls, value: str) -> str:
        value = value.strip()
        if not 0 < len(value) <= 16 or "\\" in value:
            raise ValueError("AE title must be 1 to 16 characters without backslash")
        return value

    @field_validator("dimse_proxy_protocol")
    @classmethod
    def _check_balancers(cls, value: list[str]) -> list[str]:
        for entry in value:
            try:
                ipaddress.ip_network(entry.strip(), strict=False)
            except ValueError as exc:
                raise ValueError(f"dimse_proxy_protocol: {exc}") from exc
        return [entry.strip() for entry in value if entry.strip()]

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = _config_path(init_settings)
        if path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)

    @property
    def sqlalchemy_url(self) -> str:
        """The database URL with the driver SQLAlchemy should use."""
        url = self.database_url or f"sqlite:///{(self.data_dir / 'hounsfield.db').resolve()}"
        if url.startswith("postgresql://") or url.startswith("postgres://"):
            url = "postgresql+psycopg://" + url.split("://", 1)[1]
        return url

    @property
    def dimse_process_count(self) -> int:
        """How many processes serve DICOM connections (`dimse_processes`, 0: auto)."""
        return self.dimse_processes or min(2, os.cpu_count() or 1)

    @property
    def http_process_count(self) -> int:
        """How many processes answer HTTP requests (`http_processes`, 0: auto)."""
        return self.http_processes or max(1, min(4, (os.cpu_count() or 1) // 2))

    @property
    def storage_dir(self) -> Path:
        """The default tier-1 filesystem: the `storage` folder of the data folder."""
        return self.data_dir / "storage"


def _config_path(init_settings: PydanticBaseSettingsSource) -> Path | None:
    explicit = init_settings().get("config") or os.environ.get("HOUNSFIELD_CONFIG")
    if not explicit:
        return None
    path = Path(explicit)
    if not path.is_file():
        raise FileNotFoundError(f"configuration file not found: {path}")
    return path


def load_settings(config: Path | None = None, **overrides: object) -> Settings:
    """Settings from the environment, the optional TOML file, and explicit overrides."""
    if config is not None:
        overrides["config"] = config
    return Settings(**overrides)  # type: ignore[arg-type]
