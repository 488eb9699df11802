"""QIDO-RS through dicomweb-client: every path form, the matching kinds, includefield, paging."""

from __future__ import annotations

import pytest
import requests
from dicomweb_client import DICOMwebClient
from pydicom import dcmread
from sqlalchemy import update

from hounsfield.archive.context import Archive
from hounsfield.db.tables import study
from tests.data import local
from tests.web.conftest import put_files

FILES = (
    "CT_small.dcm",
    "MR_small.dcm",
    "rtplan.dcm",
    "SC_rgb_rle_2frame.dcm",
    "emri_small.dcm",
    "RG1_UNCR.dcm",
    "RG1_J2KR.dcm",
)


def _value(obj: dict, tag: str) -> object:
    values = obj.get(tag, {}).get("Value", [])
    return values[0] if values else None


@pytest.fixture
def stored(archive: Archive) -> dict[str, object]:
    """The test files, stored, by name with their headers."""
    paths = put_files(archive, *FILES)
    return {p.name: dcmread(p, stop_before_pixels=True) for p in paths}


def test_every_path_form(client: DICOMwebClient, stored: dict) -> None:
    studies = client.search_for_studies()
    assert {_value(s, "0020000D") for s in studies} == {d.StudyInstanceUID for d in stored.values()}
    rg1 = stored["RG1_UNCR.dcm"]
    one = client.search_for_studies(search_filters={"StudyInstanceUID": rg1.StudyInstanceUID})
    assert len(one) == 1
    assert _value(one[0], "00201208") == 2  # NumberOfStudyRelatedInstances
    assert _value(one[0], "00081190").endswith(f"/dicomweb/studies/{rg1.StudyInstanceUID}")
    assert _value(one[0], "00100020") == "9RG1"

    series = client.search_for_series(rg1.StudyInstanceUID)
    assert [_value(s, "0020000E") for s in series] == [rg1.SeriesInstanceUID]
    assert _value(series[0], "00201209") == 2
    assert len(client.search_for_series()) == len(stored) - 1

    instances = client.search_for_instances(rg1.StudyInstanceUID, rg1.SeriesInstanceUID)
    assert {_value(i, "00080018") for i in instances} == {
        stored["RG1_UNCR.dcm"].SOPInstanceUID,
        stored["RG1_J2KR.dcm"].SOPInstanceUID,
    }
    assert _value(instances[0], "00280010") == 1955  # Rows, a default instance field
    assert len(client.search_for_instances(rg1.StudyInstanceUID)) == 2
    every = client.search_for_instances()
    assert len(every) == len(stored)
    assert all(_value(i, "0020000D") for i in every)  # study fields when not scoped


def test_matching_kinds(client: DICOMwebClient, stored: dict) -> None:
    def ids(**filters: str) -> set[str]:
        found = client.search_for_studies(search_filters=filters)
        return {_value(s, "00100020") for s in found}

    assert ids(PatientID="1CT1") == {"1CT1"}
    assert ids(PatientName="CompressedSamples^*") == {"1CT1", "4MR1", "9RG1"}
    assert ids(PatientName="compressedsamples^c?1") == {"1CT1"}
    assert ids(StudyDate="20040101-20041231") == {"1CT1", "4MR1", "9RG1"}
    assert ids(StudyDate="-20031231") == {"id00001", None}  # rtplan 2003, emri_small 2000
    assert ids(ModalitiesInStudy="CR") == {"9RG1"}
    uid_list = ",".join(stored[n].StudyInstanceUID for n in ("CT_small.dcm", "rtplan.dcm"))
    assert ids(StudyInstanceUID=uid_list) == {"1CT1", "id00001"}
    assert ids(**{"00100020": "4MR1"}) == {"4MR1"}
    assert ids(PatientID="nobody") == set()
    series = client.search_for_series(search_filters={"Modality": "RTPLAN"})
    assert [_value(s, "00080060") for s in series] == ["RTPLAN"]


def test_includefield(client: DICOMwebClient, stored: dict) -> None:
    ct = stored["CT_small.dcm"]
    found = client.search_for_instances(
        search_filters={"SOPInstanceUID": ct.SOPInstanceUID},
        fields=["00180050", "KVP"],
    )
    assert float(_value(found[0], "00180050")) == float(ct.SliceThickness)
    assert float(_value(found[0], "00180060")) == float(ct.KVP)
    everything = client.search_for_instances(
        search_filters={"SOPInstanceUID": ct.SOPInstanceUID}, fields=["all"]
    )[0]
    assert "00280030" in everything  # PixelSpacing, from the stored header
    assert "7FE00010" not in everything
    study = client.search_for_studies(search_filters={"PatientID": "1CT1"}, fields=["all"])[0]
    assert _value(study, "00080061") == "CT"


def test_paging_is_stable(client: DICOMwebClient, stored: dict) -> None:
    whole = [_value(s, "0020000D") for s in client.search_for_studies()]
    pages = []
    for offset in range(0, len(whole), 2):
        page = client.search_for_studies(limit=2, offset=offset)
        pages += [_value(s, "0020000D") for s in page]
    assert pages == whole
    assert client.search_for_studies(offset=len(whole)) == []
    remaining = client.search_for_studies(limit=2, get_remaining=True)
    assert [_value(s, "0020000D") for s in remaining] == whole


def test_fuzzy_and_bad_requests(web: str, stored: dict) -> None:
    base = f"{web}/dicomweb"
    fuzzy = requests.get(f"{base}/studies", params={"PatientName": "x*", "fuzzymatching": "true"})
    assert fuzzy.status_code == 200
    assert "fuzzymatching" in fuzzy.headers["Warning"]
    assert fuzzy.headers["Content-Type"] == "application/dicom+json"
    for params, fragment in (
        ({"limit": "100000000"}, "exceeds"),
        ({"limit": "ten"}, "whole number"),
        ({"offset": "-1"}, "negative"),
        ({"NoSuchAttribute": "1"}, "unknown attribute"),
        ({"00400275.00401001": "1"}, "sequence"),
    ):
        answer = requests.get(f"{base}/studies", params=params)
        assert answer.status_code == 400, params
        assert fragment in answer.json()["error"]
    bad_uid = requests.get(f"{base}/studies/1.2.abc/series")
    assert bad_uid.status_code == 400
    assert "StudyInstanceUID" in bad_uid.json()["error"]


def test_answers_are_gzipped_for_clients_that_take_gzip(web: str, stored: dict) -> None:
    base = f"{web}/dicomweb/instances"
    plain = requests.get(base, headers={"Accept-Encoding": "identity"})
    packed = requests.get(base, headers={"Accept-Encoding": "gzip, deflate"})
    assert "Content-Encoding" not in plain.headers
    assert packed.headers["Content-Encoding"] == "gzip"
    assert packed.headers["Vary"] == "Accept-Encoding"
    assert packed.json() == plain.json() and len(plain.json()) == len(FILES)
    assert int(packed.headers["Content-Length"]) < len(plain.content) / 2


def test_study_answers_as_ohif_reads_them(web: str, archive: Archive, stored: dict) -> None:
    """OHIF's study list query: list-valued attributes carry a list or are left out."""
    put_files(archive, "SC_jpeg_no_color_transform.dcm")  # no Modality at all
    with archive.engine.begin() as conn:  # a study row whose modalities were never filled in
        conn.execute(
            update(study)
            .where(study.c.study_iuid == stored["CT_small.dcm"].StudyInstanceUID)
            .values(modalities="")
        )
    params = {"limit": "101", "offset": "0", "includefield": "00081030,00080060"}
    answer = requests.get(f"{web}/dicomweb/studies", params=params)
    assert answer.status_code == 200
    by_patient = {_value(s, "00100020"): s for s in answer.json()}
    for found in by_patient.values():
        for tag in ("00080060", "00080061"):
            assert tag not in found or isinstance(found[tag]["Value"], list), (tag, found)
    assert by_patient["1CT1"]["00080061"]["Value"] == ["CT"]
    assert by_patient["9RG1"]["00080061"]["Value"] == ["CR"]
    no_modality = [s for s in by_patient.values() if "00080061" not in s]
    assert len(no_modality) == 1
    assert _value(no_modality[0], "0020000D") == str(
        dcmread(local("SC_jpeg_no_color_transform.dcm"), stop_before_pixels=True).StudyInstanceUID
    )
