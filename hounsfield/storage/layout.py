"""The self-describing path of an object: partition, StudyDate, study, series, SOP UID."""

from __future__ import annotations

import re
import secrets

from hounsfield.uids import check_uid

_SAFE = re.compile(r"[^A-Za-z0-9_.-]")
_DATE = re.compile(r"^[0-9]{8}$")


def partition_folder(ae_title: str) -> str:
    """A folder name for a partition's AE title (anything unsafe becomes `_`)."""
    return _SAFE.sub("_", ae_title.strip()) or "_"


def object_path(
    partition: str, study_date: str, study: str, series: str, sop: str, token: str = ""
) -> str:
    """The relative path of one object; UIDs are validated before they touch the path.

    `token` makes the name unique to one write (`SOP_token.dcm`): two writers of the same
    SOP Instance UID never share a file, so each removes only what it created."""
    date = study_date if _DATE.match(study_date or "") else "nodate"
    parts = (
        partition_folder(partition),
        date,
        check_uid(study, "StudyInstanceUID"),
        check_uid(series, "SeriesInstanceUID"),
        check_uid(sop, "SOPInstanceUID") + (f"_{token}" if token else "") + ".dcm",
    )
    return "/".join(parts)


def write_token() -> str:
    """A short random token that makes one write's file name unique."""
    return secrets.token_hex(4)


_TOKEN = re.compile(r"^[0-9.]+_([0-9a-f]+)\.")


def token_of(name: str) -> str:
    """The write token of an object's file name (`SOP_token....dcm`); "" for one without."""
    found = _TOKEN.match(name)
    return found.group(1) if found else ""
