"""The command line as an operator uses it: import, status, devices."""

from __future__ import annotations

import json
import re
from pathlib import Path

from pydicom import dcmread

from tests.data import PYDICOM_FILES
from tests.livenode import cli, node_env
from tests.synth import instance, write_part10


def test_import_status_and_devices(tmp_path: Path, database_url: str) -> None:
    env = node_env(tmp_path / "data", database_url)
    assert cli(env, "db", "upgrade").returncode == 0
    folder = tmp_path / "incoming"
    (folder / "sub").mkdir(parents=True)
    good = write_part10(instance(StudyInstanceUID="1.2.3.4"), folder / "sub" / "good.dcm")
    same = folder / "again.dcm"
    same.write_bytes(Path(str(good)).read_bytes())
    write_part10(instance(SOPInstanceUID="1.2.3.x"), folder / "bad_uid.dcm")
    (folder / "notes.txt").write_text("not an image")
    imported = cli(env, "import", str(folder), str(PYDICOM_FILES / "CT_small.dcm"))
    assert imported.returncode == 0, imported.stderr
    out = imported.stdout
    assert "stored 2, duplicate 1, rejected 2" in out
    assert re.search(r"rejected .*bad_uid\.dcm: SOPInstanceUID is not a valid UID", out)
    assert re.search(r"rejected .*notes\.txt: not a DICOM Part-10 file", out)

    status = cli(env, "status").stdout
    assert "patients 2  studies 2  series 2  instances 2" in status
    assert re.search(r"instances 2  stored \d+\.\d KiB", status)
    assert "filesystem" in status and "free" in status and "GiB" in status
    counted = json.loads(cli(env, "status", "--json").stdout)
    assert [counted[k] for k in ("patients", "studies", "series", "instances")] == [2, 2, 2, 2]
    assert counted["stored_bytes"] > 0 and counted["filesystems"][0]["free_bytes"] > 0

    assert cli(env, "device", "add", "PACS2", "192.0.2.7", "11112").returncode == 0
    assert "192.0.2.7" in cli(env, "device", "list").stdout
    assert cli(env, "device", "add", "PACS2", "192.0.2.8", "104").returncode == 0
    listed = cli(env, "device", "list").stdout
    assert "192.0.2.8" in listed and "192.0.2.7" not in listed
    assert cli(env, "device", "remove", "PACS2").returncode == 0
    assert "PACS2" not in cli(env, "device", "list").stdout
    missing = cli(env, "device", "remove", "PACS2")
    assert missing.returncode == 1 and "no device" in missing.stderr
    bad = cli(env, "device", "add", "A\\B", "host", "104")
    assert bad.returncode == 2 and "invalid AE title" in bad.stderr

    stored = sorted((tmp_path / "data" / "storage").rglob("*.dcm"))
    assert {str(dcmread(p).SOPInstanceUID) for p in stored} == {
        str(dcmread(good).SOPInstanceUID),
        str(dcmread(PYDICOM_FILES / "CT_small.dcm").SOPInstanceUID),
    }
