"""DICOMweb per partition at /dicomweb/aets/{aet}: every service sees only its partition."""

from __future__ import annotations

import pytest
import requests
from dicomweb_client import DICOMwebClient
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from sqlalchemy import func, select

from hounsfield.archive.context import Archive
from hounsfield.archive.query import Located, locate
from hounsfield.catalog import partitions
from hounsfield.db import engine as db
from hounsfield.db.tables import study
from tests.data import local

CLINIC = "CLINIC_A"
OTHER = "CLINIC_B"
OCTETS = {"Accept": 'multipart/related; type="application/octet-stream"'}


@pytest.fixture
def clinics(archive: Archive) -> Archive:
    """The archive with two more partitions, CLINIC_A and CLINIC_B."""
    with db.write(archive.engine) as conn:
        partitions.add(conn, CLINIC)
        partitions.add(conn, OTHER)
    archive.forget_partitions()
    return archive


def _mr() -> Dataset:
    return dcmread(local("MR_small.dcm"))


def _path(ds: Dataset) -> str:
    return f"studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"


def _instance(ds: Dataset) -> str:
    return f"{_path(ds)}/instances/{ds.SOPInstanceUID}"


def _located(archive: Archive, ds: Dataset, partition: str | None) -> list[Located]:
    ident = Dataset()
    ident.QueryRetrieveLevel = "IMAGE"
    ident.StudyInstanceUID = ds.StudyInstanceUID
    ident.SOPInstanceUID = ds.SOPInstanceUID
    return locate(archive, ident, partition=partition)


def test_services_see_only_their_partition(clinics: Archive, web: str) -> None:
    ds = _mr()
    clinic = f"{web}/dicomweb/aets/{CLINIC}"
    result = DICOMwebClient(url=clinic).store_instances([ds])
    assert result.RetrieveURL == f"{clinic}/studies/{ds.StudyInstanceUID}"
    assert result.ReferencedSOPSequence[0].RetrieveURL == f"{clinic}/{_instance(ds)}"

    # QIDO: only CLINIC_A sees the study, with retrieve URLs under its own root.
    for base in (f"{web}/dicomweb", f"{web}/dicomweb/aets/{OTHER}"):
        for level in ("studies", "series", "instances"):
            assert requests.get(f"{base}/{level}").json() == [], (base, level)
    found = requests.get(f"{clinic}/studies").json()
    assert [Dataset.from_json(d).StudyInstanceUID for d in found] == [ds.StudyInstanceUID]
    assert found[0]["00081190"]["Value"] == [f"{clinic}/studies/{ds.StudyInstanceUID}"]
    instances = requests.get(f"{clinic}/instances").json()
    assert instances[0]["00081190"]["Value"] == [f"{clinic}/{_instance(ds)}"]

    # WADO-RS, metadata, frames, bulkdata, rendered, thumbnails and WADO-URI.
    urls = {
        f"studies/{ds.StudyInstanceUID}": {},
        _path(ds): {},
        _instance(ds): {},
        f"studies/{ds.StudyInstanceUID}/metadata": {},
        f"{_instance(ds)}/metadata": {},
        f"{_instance(ds)}/frames/1": OCTETS,
        f"{_instance(ds)}/bulkdata/7FE00010": OCTETS,
        f"studies/{ds.StudyInstanceUID}/rendered": {"Accept": "image/png"},
        f"{_instance(ds)}/rendered": {"Accept": "image/png"},
        f"{_instance(ds)}/frames/1/rendered": {"Accept": "image/jpeg"},
        f"{_path(ds)}/thumbnail": {"Accept": "image/jpeg"},
    }
    for url, headers in urls.items():
        assert requests.get(f"{web}/dicomweb/{url}", headers=headers).status_code == 404, url
        assert requests.get(f"{clinic}/{url}", headers=headers).status_code == 200, url
    wado_uri = {
        "requestType": "WADO",
        "studyUID": ds.StudyInstanceUID,
        "seriesUID": ds.SeriesInstanceUID,
        "objectUID": ds.SOPInstanceUID,
        "contentType": "application/dicom",
    }
    assert requests.get(f"{web}/dicomweb/wado", params=wado_uri).status_code == 404
    assert requests.get(f"{clinic}/wado", params=wado_uri).status_code == 200
    assert requests.get(clinic, params=wado_uri).status_code == 200

    # Metadata names bulk data under the partition's own root.
    meta = requests.get(f"{clinic}/{_instance(ds)}/metadata").json()
    assert meta[0]["7FE00010"]["BulkDataURI"].startswith(f"{clinic}/studies/")
    pixels = requests.get(meta[0]["7FE00010"]["BulkDataURI"], headers=OCTETS)
    assert pixels.status_code == 200 and ds.PixelData in pixels.content

    # DELETE through another partition removes nothing.
    for base in (f"{web}/dicomweb", f"{web}/dicomweb/aets/{OTHER}"):
        assert requests.delete(f"{base}/studies/{ds.StudyInstanceUID}").status_code == 404
        assert requests.delete(f"{base}/{_instance(ds)}").status_code == 404
    assert len(_located(clinics, ds, CLINIC)) == 1
    assert requests.delete(f"{clinic}/{_instance(ds)}").status_code == 204
    assert _located(clinics, ds, CLINIC) == []
    assert requests.get(f"{clinic}/studies").json() == []


def test_same_instance_in_two_partitions(clinics: Archive, web: str) -> None:
    ds = _mr()
    clinic = f"{web}/dicomweb/aets/{CLINIC}"
    DICOMwebClient(url=clinic).store_instances([ds])
    default = DICOMwebClient(url=f"{web}/dicomweb").store_instances([ds])
    assert default.RetrieveURL == f"{web}/dicomweb/studies/{ds.StudyInstanceUID}"
    ours, theirs = _located(clinics, ds, None), _located(clinics, ds, CLINIC)
    assert len(ours) == len(theirs) == 1
    assert ours[0].path != theirs[0].path
    assert ours[0].path.exists() and theirs[0].path.exists()

    # Deleting the default partition's copy leaves CLINIC_A's.
    assert requests.delete(f"{web}/dicomweb/studies/{ds.StudyInstanceUID}").status_code == 204
    assert _located(clinics, ds, None) == []
    assert len(_located(clinics, ds, CLINIC)) == 1
    assert requests.get(f"{clinic}/{_instance(ds)}").status_code == 200


def test_one_study_uid_two_studies(clinics: Archive, web: str) -> None:
    first = _mr()
    second = _mr()
    second.SOPInstanceUID = generate_uid()
    second.file_meta.MediaStorageSOPInstanceUID = second.SOPInstanceUID
    second.PatientName = "Other^Clinic"
    clinic = f"{web}/dicomweb/aets/{CLINIC}"
    DICOMwebClient(url=clinic).store_instances([first])
    DICOMwebClient(url=f"{web}/dicomweb").store_instances([second])

    uid = str(first.StudyInstanceUID)
    with db.read(clinics.engine) as conn:
        rows = conn.execute(
            select(func.count()).select_from(study).where(study.c.study_iuid == uid)
        ).scalar_one()
    assert rows == 2
    for base, ds in ((clinic, first), (f"{web}/dicomweb", second)):
        found = [Dataset.from_json(d) for d in requests.get(f"{base}/studies").json()]
        assert len(found) == 1
        assert found[0].NumberOfStudyRelatedInstances == 1
        assert str(found[0].PatientName) == str(ds.PatientName)
        listed = requests.get(f"{base}/studies/{uid}/instances").json()
        assert [Dataset.from_json(d).SOPInstanceUID for d in listed] == [ds.SOPInstanceUID]
        meta = requests.get(f"{base}/studies/{uid}/metadata").json()
        assert [Dataset.from_json(d, lambda _: b"").SOPInstanceUID for d in meta] == [
            ds.SOPInstanceUID
        ]


def test_unknown_partition(clinics: Archive, web: str) -> None:
    ds = _mr()
    unknown = f"{web}/dicomweb/aets/NOBODY"
    assert requests.get(f"{unknown}/studies").status_code == 404
    assert "NOBODY" in requests.get(f"{unknown}/studies").json()["error"]
    assert requests.get(f"{unknown}/{_instance(ds)}/metadata").status_code == 404
    assert requests.delete(f"{unknown}/studies/{ds.StudyInstanceUID}").status_code == 404
    assert requests.get(f"{unknown}/wado", params={"requestType": "WADO"}).status_code == 404
    with pytest.raises(requests.HTTPError) as info:
        DICOMwebClient(url=unknown).store_instances([ds])
    assert info.value.response is not None and info.value.response.status_code == 404
    assert requests.get(f"{web}/dicomweb/studies").json() == []
    # The default partition also answers under its own AE title.
    title = clinics.default_partition
    assert requests.get(f"{web}/dicomweb/aets/{title}/studies").status_code == 200


def test_the_partition_paths_declare_their_ae_title(clinics: Archive, web: str) -> None:
    """Every /dicomweb/aets/{aet}/... operation in the OpenAPI description declares `aet`
    as a path parameter (a path template without it is an invalid description)."""
    paths = requests.get(f"{web}/openapi.json", timeout=10).json()["paths"]
    partitioned = {p: ops for p, ops in paths.items() if p.startswith("/dicomweb/aets/{aet}")}
    plain = {
        p: ops for p, ops in paths.items() if p.startswith("/dicomweb") and p not in partitioned
    }
    assert len(partitioned) == len(plain) > 10
    for where, operations in (*partitioned.items(), *plain.items()):
        for operation in operations.values():
            declared = [x["name"] for x in operation.get("parameters", []) if x["in"] == "path"]
            assert ("aet" in declared) == (where in partitioned), where
