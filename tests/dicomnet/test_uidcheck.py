"""pynetdicom's UID setter with a cache keeps pynetdicom's answers and errors."""

from __future__ import annotations

import pytest
from pydicom.uid import UID
from pynetdicom import utils
from pynetdicom.dimse_primitives import C_STORE

from hounsfield.dicomnet.install import install
from hounsfield.dicomnet.uidcheck import set_uid


def test_answers_are_pynetdicoms() -> None:
    for value in ("1.2.840.10008.1.2.1", "1.2.3", UID("1.2.840.10008.5.1.4.1.1.2")):
        ours, theirs = set_uid(value, "x"), utils.set_uid(value, "x")
        assert ours == theirs and isinstance(ours, UID)
        assert set_uid(value, "x") is ours  # the second time from the cache
    assert set_uid(None, "x") is None
    assert set_uid(b"1.2.3\0", "x") == utils.set_uid(b"1.2.3\0", "x")
    assert set_uid("", "x") == ""
    with pytest.raises(ValueError, match="must not be an empty"):
        set_uid("", "x", allow_empty=False)


def test_an_invalid_uid_is_refused_with_the_parameters_name() -> None:
    with pytest.raises(ValueError, match=r"'AffectedSOPInstanceUID'.*64"):
        set_uid("1." + "2" * 70, "AffectedSOPInstanceUID")
    with pytest.raises(ValueError, match=r"'AffectedSOPInstanceUID'.*64"):
        set_uid("1." + "2" * 70, "AffectedSOPInstanceUID")  # not cached as valid
    assert set_uid("1." + "2" * 70, "x", validate=False) == "1." + "2" * 70
    assert set_uid("1.2.3 4", "x") == utils.set_uid("1.2.3 4", "x")  # non-conformant: kept


def test_installed_for_dimse_primitives() -> None:
    install()
    req = C_STORE()
    req.AffectedSOPInstanceUID = "1.2.3.4"
    assert req.AffectedSOPInstanceUID == "1.2.3.4"
    with pytest.raises(ValueError):
        req.AffectedSOPClassUID = "1." + "2" * 70
