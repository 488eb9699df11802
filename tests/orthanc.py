"""Run Debian's Orthanc (with its DICOMweb plugin) as a real peer on free ports."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import httpx

from tests.dcmtk import ENV, free_port

DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")


class Orthanc:
    """An Orthanc with its own storage; `modalities` are the peers it knows
    ({AE title: (host, port)}), for C-MOVE and storage commitment reports; `limit_find_*`
    set its LimitFindResults / LimitFindInstances."""

    def __init__(
        self,
        folder: Path,
        ae_title: str = "ORTHANC",
        modalities: dict[str, tuple[str, int]] | None = None,
        *,
        limit_find_results: int | None = None,
        limit_find_instances: int | None = None,
    ) -> None:
        self.ae_title, self.port, self.http_port = ae_title, free_port(), free_port()
        folder.mkdir(parents=True, exist_ok=True)
        config = {
            "Name": "peer",
            "StorageDirectory": str(folder / "storage"),
            "IndexDirectory": str(folder / "index"),
            "Plugins": [str(DICOMWEB_PLUGIN)] if DICOMWEB_PLUGIN.is_file() else [],
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
            "HttpPort": self.http_port,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "DicomAet": ae_title,
            "DicomPort": self.port,
            "DicomCheckCalledAet": False,
            "DicomAlwaysAllowStore": True,
            "DicomAlwaysAllowEcho": True,
            "DicomModalities": {
                title: [title, host, port] for title, (host, port) in (modalities or {}).items()
            },
            "SyncStorageArea": True,
            "SaveJobs": False,
        }
        # Orthanc caps C-FIND answers (patient/study/series, and instance level) at these
        # counts and ends a capped answer with status 0xFE00.
        if limit_find_results is not None:
            config["LimitFindResults"] = limit_find_results
        if limit_find_instances is not None:
            config["LimitFindInstances"] = limit_find_instances
        (folder / "orthanc.json").write_text(json.dumps(config))
        self.log = open(folder / "orthanc.log", "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [shutil.which("Orthanc") or "Orthanc", str(folder / "orthanc.json")],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=ENV,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/system", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            assert self.proc.poll() is None, "Orthanc exited during start-up"
            time.sleep(0.2)
        raise RuntimeError("Orthanc did not start")

    @property
    def url(self) -> str:
        """Orthanc's REST root."""
        return f"http://127.0.0.1:{self.http_port}"

    def instances(self) -> set[str]:
        """The SOP Instance UIDs Orthanc holds."""
        ids = httpx.get(f"{self.url}/instances", timeout=30).json()
        out = set()
        for oid in ids:
            tags = httpx.get(f"{self.url}/instances/{oid}/simplified-tags", timeout=30).json()
            out.add(str(tags["SOPInstanceUID"]))
        return out

    def stop(self) -> None:
        """Terminate Orthanc."""
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
