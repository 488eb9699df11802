"""Every real test file goes in with storescu and comes back unchanged via getscu and movescu."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest
from pydicom import dcmread
from sqlalchemy import select

from hounsfield.archive.context import Archive
from hounsfield.db.tables import file, filesystem, instance
from hounsfield.dimse.server import DimseServer
from hounsfield.sites.devices import Device, add_device
from tests.data import TestFile, dataset_bytes, part10_files
from tests.dcmtk import StoreSCP, run

pytestmark = pytest.mark.dcmtk

# storescu / getscu flags that propose (or prefer) each transfer syntax.
FLAGS: dict[str, tuple[str, str]] = {
    "1.2.840.10008.1.2": ("-xi", ""),
    "1.2.840.10008.1.2.1": ("", ""),
    "1.2.840.10008.1.2.2": ("-xb", "+xb"),
    "1.2.840.10008.1.2.1.99": ("-xd", "+xd"),
    "1.2.840.10008.1.2.4.50": ("-xy", "+xy"),
    "1.2.840.10008.1.2.4.51": ("-xx", "+xx"),
    "1.2.840.10008.1.2.4.70": ("-xs", "+xs"),
    "1.2.840.10008.1.2.4.80": ("-xt", "+xt"),
    "1.2.840.10008.1.2.4.81": ("-xu", "+xu"),
    "1.2.840.10008.1.2.4.90": ("-xv", "+xv"),
    "1.2.840.10008.1.2.4.91": ("-xw", "+xw"),
    "1.2.840.10008.1.2.5": ("-xr", "+xr"),
}


def _groups(files: list[TestFile]) -> dict[str, list[TestFile]]:
    out: dict[str, list[TestFile]] = defaultdict(list)
    for f in files:
        if f.sop_instance and f.transfer_syntax in FLAGS:
            out[f.transfer_syntax].append(f)
    return dict(out)


def _stored(archive: Archive) -> dict[str, tuple[Path, str]]:
    with archive.engine.connect() as conn:
        rows = conn.execute(
            select(instance.c.sop_iuid, filesystem.c.path, file.c.path, file.c.transfer_syntax)
            .join(file, file.c.instance_pk == instance.c.pk)
            .join(filesystem, filesystem.c.pk == file.c.filesystem_pk)
        ).all()
    return {iuid: (Path(root) / rel, ts) for iuid, root, rel, ts in rows}


def _received(folder: Path) -> dict[str, Path]:
    out = {}
    for path in folder.iterdir():
        ds = dcmread(path, stop_before_pixels=True)
        out[str(ds.SOPInstanceUID)] = path
    return out


def test_store_get_move_every_test_file(
    archive: Archive, server: DimseServer, tmp_path: Path
) -> None:
    groups = _groups(part10_files())
    order = [f for ts in groups for f in groups[ts]]
    for ts, files in groups.items():
        flag = FLAGS[ts][0]
        args = ["-R", "-nh", "-aec", "HOUNSFIELD", *([flag] if flag else [])]
        run("storescu", *args, "127.0.0.1", str(server.port), *(str(f.path) for f in files))

    stored = _stored(archive)
    first: dict[str, TestFile] = {}
    for f in order:
        first.setdefault(f.sop_instance, f)
    refused = {f.path.name for f in first.values() if f.sop_instance not in stored}
    assert refused == set(REFUSED), refused ^ set(REFUSED)

    # What was stored is what was sent: storescu re-encodes (drops group lengths, converts
    # retired big endian), so the original file and the stored one hold the same attributes.
    for uid, original in first.items():
        if uid in stored:
            path, ts = stored[uid]
            if original.transfer_syntax != "1.2.840.10008.1.2.2":
                assert ts == original.transfer_syntax, original.path.name
            assert_same_dataset(original.path, path)

    by_syntax: dict[str, list[str]] = defaultdict(list)
    for uid, (_, ts) in stored.items():
        by_syntax[ts].append(uid)

    # C-GET with getscu, preferring each stored syntax in turn.
    got_dir = tmp_path / "get"
    for ts, uids in by_syntax.items():
        got_dir.mkdir(exist_ok=True)
        prefer = FLAGS[ts][1]
        run(
            "getscu",
            "-S",
            "+B",
            "-aec",
            "HOUNSFIELD",
            *([prefer] if prefer else []),
            "-od",
            str(got_dir),
            "-k",
            "QueryRetrieveLevel=IMAGE",
            "-k",
            "SOPInstanceUID=" + "\\".join(uids),
            "127.0.0.1",
            str(server.port),
            check=True,
        )
    got = _received(got_dir)
    assert set(got) == set(stored)
    for uid, (path, ts) in stored.items():
        assert_returned(path, ts, got[uid])

    # C-MOVE with movescu into a DCMTK storescp.
    scp = StoreSCP(tmp_path / "moved")
    add_device(archive, Device("STORESCP", "127.0.0.1", scp.port))
    try:
        for uids in by_syntax.values():
            run(
                "movescu",
                "-S",
                "-aec",
                "HOUNSFIELD",
                "-aem",
                "STORESCP",
                "-k",
                "QueryRetrieveLevel=IMAGE",
                "-k",
                "SOPInstanceUID=" + "\\".join(uids),
                "127.0.0.1",
                str(server.port),
                check=True,
            )
    finally:
        scp.stop()
    moved = _received(scp.folder)
    assert set(moved) == set(stored)
    for uid, (path, ts) in stored.items():
        assert_returned(path, ts, moved[uid])


def assert_returned(stored: Path, syntax: str, returned: Path) -> None:
    """Stored bytes come back unchanged. getscu proposes explicit VR only, so objects
    stored implicit VR are converted for it: the same attributes, in the syntax it took."""
    returned_syntax = dcmread(returned, stop_before_pixels=True).file_meta.TransferSyntaxUID
    if returned_syntax == syntax:
        assert dataset_bytes(returned) == dataset_bytes(stored), stored.name
    else:
        assert (syntax, returned_syntax) == ("1.2.840.10008.1.2", "1.2.840.10008.1.2.1")
        assert_same_dataset(stored, returned)


def assert_same_dataset(original: Path, stored: Path) -> None:
    """Same attributes with the same values (group lengths aside), and the same pixels."""
    a, b = dcmread(original), dcmread(stored)
    for elem in a:
        if elem.tag.element == 0 or elem.tag in (0x7FE00010, 0xFFFCFFFC):
            continue
        assert elem.tag in b, (original.name, elem)
        assert b[elem.tag].value == elem.value, (original.name, elem.tag)
    if "PixelData" in a:
        same_encoding = a.file_meta.TransferSyntaxUID == b.file_meta.TransferSyntaxUID
        if same_encoding:
            assert a.PixelData == b.PixelData, original.name
        else:
            assert (a.pixel_array == b.pixel_array).all(), original.name


# Files that do not get in, and why. storescu also skips, before sending, every file
# without SOP Class and Instance UIDs (DICOMDIRs, truncated files); those are not listed.
REFUSED: dict[str, str] = {
    "bad_sequence.dcm": "SOP Instance UID is a hex digest, not digits and dots: 0xC001",
    "explicit_VR-UN.dcm": "storescu cannot read its File Meta (UN-encoded), skips it",
}
