"""The metadata document viewers build images from: no void pixel spacing, rebuilt on upgrade."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydicom import dcmread

from hounsfield.archive import metadata
from hounsfield.archive.context import Archive
from tests.data import local
from tests.storage_helpers import store_variant
from tests.viewer.conftest import sqlite_archive

PIXEL_SPACING = "00280030"


@pytest.fixture
def archive(tmp_path: Path) -> Iterator[Archive]:
    arch = sqlite_archive(tmp_path / "node")
    yield arch
    arch.close()


def test_zero_pixel_spacing_is_left_out(archive: Archive) -> None:
    """RG1's Pixel Spacing is 0\\0: OHIF drew its image and thumbnail black from it."""
    assert [float(v) for v in dcmread(local("RG1_UNCR.dcm")).PixelSpacing] == [0.0, 0.0]
    radiograph = store_variant(archive, "RG1_UNCR.dcm", 1)
    ct = store_variant(archive, "CT_small.dcm", 2)
    [rg1] = metadata.load(archive, radiograph.study).lines
    rg1_json = json.loads(rg1)
    assert PIXEL_SPACING not in rg1_json
    assert rg1_json["00280004"]["Value"] == ["MONOCHROME1"]
    assert rg1_json["00280101"]["Value"] == [15]
    [ct_line] = metadata.load(archive, ct.study).lines
    assert json.loads(ct_line)[PIXEL_SPACING]["Value"] == [0.661468, 0.661468]


def test_documents_of_an_older_format_are_rebuilt(archive: Archive) -> None:
    stored = store_variant(archive, "RG1_UNCR.dcm", 3)
    metadata.load(archive, stored.study)
    path = metadata.folder(archive, archive.default_partition) / f"{stored.study}.json.gz"
    head, _, body = gzip.decompress(path.read_bytes()).partition(b"\n")
    old = json.loads(head)
    old.pop("format")
    stale = body.replace(b'"00280101"', b'"00280030":{"vr":"DS","Value":[0,0]},"00280101"')
    path.write_bytes(gzip.compress(json.dumps(old).encode() + b"\n" + stale))
    [line] = metadata.load(archive, stored.study).lines
    assert PIXEL_SPACING not in json.loads(line)
