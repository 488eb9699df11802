"""The scale part's servers: a node on a grown index, Orthanc on PostgreSQL, and its filling."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from bench.dicom_ops import CALLING_AE, PDU
from bench.http_ops import wait_http
from bench.procs import LOCALHOST, client_env, dcmtk, free_port, run_parallel
from bench.scale_data import Population, Study, template
from bench.scale_index import SYNTAX
from bench.servers import (
    DICOMWEB_PLUGIN,
    ORTHANC_PLUGINS,
    Server,
    hounsfield_command,
    start_orthanc,
    wait_ready,
)
from hounsfield.storage.filemeta import file_meta_bytes

POSTGRES_INDEX_PLUGIN = ORTHANC_PLUGINS / "libOrthancPostgreSQLIndex.so"  # orthanc-postgresql
STORE_ASSOCIATIONS = 4  # storescu processes filling Orthanc
NODE_ENV = {
    "HOUNSFIELD_SCHEDULER": "false",  # no scheduled service runs while the index is measured
    "HOUNSFIELD_QUEUE_THREADS": "0",  # the claim rate is measured by this process alone
}


def start_node(work: Path, database_url: str) -> Server:
    """`hounsfield serve` on an index already grown (the schema is current), data folder
    `work`/hf, no scheduler and no queue workers."""
    folder = work / "hf"
    folder.mkdir(parents=True, exist_ok=True)
    server = Server("Hounsfield", "HOUNSFIELD", free_port(), free_port(), folder, work / "hf.log")
    inherited = {k: v for k, v in client_env().items() if not k.startswith("HOUNSFIELD_")}
    server.env = inherited | NODE_ENV
    server.env |= {
        "HOUNSFIELD_DATA_DIR": str(folder),
        "HOUNSFIELD_DATABASE_URL": database_url,
        "HOUNSFIELD_DIMSE_PORT": str(server.port),
        "HOUNSFIELD_HTTP_PORT": str(server.http_port),
        "HOUNSFIELD_AE_TITLE": server.ae_title,
        "HOUNSFIELD_HOST": LOCALHOST,
    }
    with open(server.log, "ab") as out:
        server.proc = subprocess.Popen(
            [hounsfield_command(), "serve"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=server.env,
            cwd=work,
            start_new_session=True,
        )
    return server


def ready(server: Server, timeout: float) -> None:
    """Wait until the server answers C-ECHO and its DICOMweb root answers HTTP."""
    wait_ready(server, timeout)
    wait_http(server.dicomweb_root + "/studies?limit=1", timeout)


def orthanc_postgres(database_url: str) -> dict[str, object]:
    """The PostgreSQL plugin's settings for a database URL (index only, files on disk)."""
    parts = urlsplit(database_url)
    return {
        "EnableIndex": True,
        "EnableStorage": False,
        "Host": parts.hostname or LOCALHOST,
        "Port": parts.port or 5432,
        "Database": parts.path.lstrip("/"),
        "Username": parts.username or "postgres",
        "Password": parts.password or "",
        "Lock": False,
        "IndexConnectionsCount": 1,
    }


def start_orthanc_pg(work: Path, database_url: str) -> Server:
    """Orthanc with its index in `database_url` and the DICOMweb plugin; writes are not
    fsynced (they are only the filling, untimed by the searches)."""
    if not POSTGRES_INDEX_PLUGIN.is_file():
        raise RuntimeError(f"{POSTGRES_INDEX_PLUGIN} not found: install orthanc-postgresql")
    overrides: dict[str, object] = {
        "Plugins": [str(DICOMWEB_PLUGIN), str(POSTGRES_INDEX_PLUGIN)],
        "PostgreSQL": orthanc_postgres(database_url),
        "SyncStorageArea": False,
    }
    return start_orthanc(work, free_port(), web=True, overrides=overrides)


def write_files(pop: Population, studies: Sequence[Study], folder: Path) -> list[Path]:
    """Part-10 files of `studies` (the bytes the index rows describe), one folder per study;
    the study folders."""
    folders = []
    for study in studies:
        into = folder / study.uid
        into.mkdir(parents=True, exist_ok=True)
        ae = f"{study.kind.modality}01"
        for series in study.series:
            tpl = template(pop, study, series)
            for index in range(series.instances):
                sop, data = tpl.instance(index)
                meta = file_meta_bytes(study.kind.sop_class, sop, SYNTAX, ae)
                (into / f"{sop}.dcm").write_bytes(meta + data)
        folders.append(into)
    return folders


def store(server: Server, folders: Sequence[Path], timeout: float) -> float:
    """storescu of every folder, STORE_ASSOCIATIONS processes at once; seconds."""
    args = [dcmtk("storescu"), "-aet", CALLING_AE, "-aec", server.ae_title, "+sd", "+r"]
    args += ["--max-send-pdu", PDU, LOCALHOST, str(server.port)]
    shares = [[str(f) for f in folders[n::STORE_ASSOCIATIONS]] for n in range(STORE_ASSOCIATIONS)]
    done = run_parallel([[*args, *share] for share in shares if share], timeout)
    for one in done:
        if one.returncode != 0:
            raise RuntimeError(f"storescu into Orthanc: exit {one.returncode}: {one.stderr[-800:]}")
    return done[0].seconds


def orthanc_counts(server: Server) -> dict[str, int]:
    """Orthanc's own counts: patients, studies, series, instances."""
    answer = httpx.get(f"{server.http_base}/statistics", timeout=60, trust_env=False)
    answer.raise_for_status()
    stats = answer.json()
    keys = ("CountPatients", "CountStudies", "CountSeries", "CountInstances")
    return {k: int(stats[k]) for k in keys}


def orthanc_version(server: Server) -> str:
    """Orthanc's version (its REST API) and the PostgreSQL plugin's (its Debian package)."""
    answer = httpx.get(f"{server.http_base}/system", timeout=60, trust_env=False)
    answer.raise_for_status()
    done = subprocess.run(
        ["dpkg-query", "-W", "-f", "${Version}", "orthanc-postgresql"],
        capture_output=True,
        text=True,
        check=False,
    )
    plugin = done.stdout.strip() or "unknown version"
    return f"Orthanc {answer.json().get('Version', '?')} with orthanc-postgresql {plugin}"
