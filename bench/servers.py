"""Start and stop the two archives under test: Hounsfield and Orthanc, each on fresh storage."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.procs import LOCALHOST, client_env, dcmtk, free_port, run, terminate, which

STARTUP_SECONDS = 90.0
ORTHANC_PLUGINS = Path("/usr/share/orthanc/plugins")
DICOMWEB_PLUGIN = ORTHANC_PLUGINS / "libOrthancDicomWeb.so"  # Debian's orthanc-dicomweb
GDCM_PLUGIN = ORTHANC_PLUGINS / "libOrthancGdcm.so"  # Debian's orthanc-gdcm: JPEG 2000 decoding
MOVE_DESTINATION = "STORESCP"
PG_DATABASE = "hounsfield_bench"  # the only database the benchmark ever drops


@dataclass
class Server:
    """A running archive: how to reach it and the process behind it."""

    name: str
    ae_title: str
    port: int
    http_port: int
    folder: Path
    log: Path
    dicomweb_path: str = "/dicomweb"
    plugins: tuple[str, ...] = ()
    proc: subprocess.Popen[bytes] | None = None
    exit_code: int | None = None
    wrap: tuple[str, ...] = ()  # a command prefix it runs under, e.g. `ip netns exec NS`
    env: dict[str, str] = field(default_factory=dict)  # Hounsfield's: what its CLI needs too

    @property
    def http_base(self) -> str:
        """The server's HTTP root URL."""
        return f"http://{LOCALHOST}:{self.http_port}"

    @property
    def dicomweb_root(self) -> str:
        """The server's DICOMweb root URL (no trailing slash)."""
        return self.http_base + self.dicomweb_path

    @property
    def pid(self) -> int:
        """The server's process id."""
        assert self.proc is not None
        return self.proc.pid

    def log_tail(self, lines: int = 40) -> str:
        """The end of the server's log, for error messages."""
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, grace: float = 20.0) -> None:
        """SIGTERM, then SIGKILL if it does not exit within `grace` seconds."""
        if self.proc is not None:
            self.exit_code = terminate(self.proc, grace)


def _fresh(folder: Path) -> Path:
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    return folder


def _spawn(args: list[str], log: Path, env: dict[str, str], cwd: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(
            args, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd, start_new_session=True
        )


def wait_ready(server: Server, timeout: float = STARTUP_SECONDS) -> float:
    """Poll with echoscu until the server answers; seconds it took."""
    started = time.perf_counter()
    deadline = started + timeout
    echo = [
        *server.wrap,
        dcmtk("echoscu"),
        "-aec",
        server.ae_title,
        "-to",
        "2",
        LOCALHOST,
        str(server.port),
    ]
    while time.perf_counter() < deadline:
        if server.proc is not None and server.proc.poll() is not None:
            raise RuntimeError(
                f"{server.name} exited with {server.proc.returncode} during start-up:\n"
                + server.log_tail()
            )
        if run(echo, timeout=10).returncode == 0:
            return time.perf_counter() - started
        time.sleep(0.2)
    raise RuntimeError(
        f"{server.name} did not answer C-ECHO in {timeout:.0f}s:\n{server.log_tail()}"
    )


def hounsfield_command() -> str:
    """The `hounsfield` entry point of the virtualenv running the benchmark."""
    beside = Path(sys.executable).parent / "hounsfield"
    return str(beside) if beside.is_file() else which("hounsfield")


def fresh_postgres(server_url: str) -> str:
    """Drop and create the `hounsfield_bench` database on `server_url`; its URL."""
    import psycopg  # only needed with BENCH_HOUNSFIELD_PG

    base = server_url.rstrip("/")
    if base.count("/") > 2:  # a database name was given: use the server it names
        base = base.rsplit("/", 1)[0]
    with psycopg.connect(f"{base}/postgres", autocommit=True, connect_timeout=10) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {PG_DATABASE} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {PG_DATABASE}")
    return f"{base}/{PG_DATABASE}"


def start_hounsfield(
    work: Path,
    destination_port: int,
    timeout: float,
    postgres: str | None = None,
    wrap: Sequence[str] = (),
    extra_env: dict[str, str] | None = None,
) -> Server:
    """Fresh data folder (and database), schema upgrade, move destination, `hounsfield serve`
    (under `wrap`, with `extra_env` added to its environment)."""
    folder = _fresh(work / "hf")
    server = Server("Hounsfield", "HOUNSFIELD", free_port(), free_port(), folder, work / "hf.log")
    server.wrap = tuple(wrap)
    server.log.unlink(missing_ok=True)
    inherited = {k: v for k, v in client_env().items() if not k.startswith("HOUNSFIELD_")}
    env = (
        inherited
        | {
            "HOUNSFIELD_DATA_DIR": str(folder),
            "HOUNSFIELD_DIMSE_PORT": str(server.port),
            "HOUNSFIELD_HTTP_PORT": str(server.http_port),
            "HOUNSFIELD_AE_TITLE": server.ae_title,
            "HOUNSFIELD_HOST": LOCALHOST,
        }
        | (extra_env or {})
    )
    server.env = env
    if postgres:
        env["HOUNSFIELD_DATABASE_URL"] = fresh_postgres(postgres)
    cli = hounsfield_command()
    for step in (
        [cli, "db", "upgrade"],
        [cli, "device", "add", MOVE_DESTINATION, LOCALHOST, str(destination_port)],
    ):
        done = run(step, timeout=timeout, env=env, cwd=work)
        with open(server.log, "a") as out:
            out.write(f"$ {' '.join(step)}\n{done.stdout}{done.stderr}")
        done.check()
    server.proc = _spawn([*server.wrap, cli, "serve"], server.log, env, work)
    return server


def orthanc_plugins(web: bool) -> tuple[str, ...]:
    """The plugins Orthanc loads: DICOMweb (and GDCM, when installed) for the web part."""
    if not web:
        return ()
    if not DICOMWEB_PLUGIN.is_file():
        raise SystemExit(f"{DICOMWEB_PLUGIN} not found: install orthanc-dicomweb")
    return tuple(str(p) for p in (DICOMWEB_PLUGIN, GDCM_PLUGIN) if p.is_file())


def orthanc_config(server: Server, destination_port: int) -> dict[str, object]:
    """Orthanc's configuration: own SQLite index and storage, durable writes, given plugins."""
    return {
        "Name": "bench",
        "StorageDirectory": str(server.folder / "storage"),
        "IndexDirectory": str(server.folder / "index"),
        "StorageCompression": False,
        "Plugins": list(server.plugins),
        "DicomWeb": {"Enable": True, "Root": server.dicomweb_path + "/"},
        "HttpServerEnabled": True,
        "HttpPort": server.http_port,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "DicomServerEnabled": True,
        "DicomAet": server.ae_title,
        "DicomPort": server.port,
        "DicomCheckCalledAet": False,
        "DicomCheckModalityHost": False,
        "DicomAlwaysAllowStore": True,
        "DicomAlwaysAllowFind": True,
        "DicomAlwaysAllowGet": True,
        "DicomAlwaysAllowMove": True,
        "DicomAlwaysAllowEcho": True,
        "DicomModalities": {MOVE_DESTINATION: [MOVE_DESTINATION, LOCALHOST, destination_port]},
        "DicomScpTimeout": 30,
        "DicomScuTimeout": 30,
        "SyncStorageArea": True,
        "MaximumPduLength": 131072,
        "SynchronousCMove": True,
        "SaveJobs": False,
        "LimitFindResults": 0,
        "LimitFindInstances": 0,
        "StorageAccessOnFind": "Always",  # Orthanc's default, stated for the record
    }


def start_orthanc(
    work: Path,
    destination_port: int,
    web: bool = False,
    wrap: Sequence[str] = (),
    overrides: dict[str, object] | None = None,
) -> Server:
    """Orthanc with a generated configuration in bench/work/orthanc (plugins if `web`;
    `overrides` replace top-level settings), run under `wrap` when given."""
    folder = _fresh(work / "orthanc")
    server = Server(
        "Orthanc",
        "ORTHANC",
        free_port(),
        free_port(),
        folder,
        work / "orthanc.log",
        dicomweb_path="/dicom-web",
        plugins=orthanc_plugins(web),
        wrap=tuple(wrap),
    )
    server.log.unlink(missing_ok=True)
    config = folder / "orthanc.json"
    settings = orthanc_config(server, destination_port) | (overrides or {})
    config.write_text(json.dumps(settings, indent=2))
    server.proc = _spawn(
        [*server.wrap, which("Orthanc"), str(config)], server.log, client_env(), work
    )
    return server


def start_sink(work: Path) -> Server:
    """DCMTK storescp that takes every object and keeps none (`--ignore`): what receiving
    alone costs on this machine, with no archive behind it."""
    folder = _fresh(work / "sink")
    server = Server("storescp --ignore", "SINK", free_port(), 0, folder, work / "sink.log")
    server.log.unlink(missing_ok=True)
    args = [dcmtk("storescp"), "-aet", server.ae_title, "+xa", "-pdu", "131072", "--ignore"]
    server.proc = _spawn([*args, str(server.port)], server.log, client_env(), work)
    return server


def start_storescp(work: Path, port: int) -> tuple[subprocess.Popen[bytes], Path]:
    """DCMTK storescp as the C-MOVE destination; returns the process and its output folder."""
    folder = _fresh(work / "storescp")
    args = [
        dcmtk("storescp"),
        "-aet",
        MOVE_DESTINATION,
        "+xa",
        "-pdu",
        "131072",
        "-od",
        str(folder),
        str(port),
    ]
    return _spawn(args, work / "storescp.log", client_env(), work), folder
