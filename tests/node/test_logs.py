"""pydicom's complaints about a received dataset are logged as warnings, not errors."""

from __future__ import annotations

import logging

import pytest

from hounsfield.node import logs


def test_pydicom_errors_are_warnings_and_the_archives_stay_errors(
    caplog: pytest.LogCaptureFixture,
) -> None:
    logs.configure(logging.INFO)
    logs.configure(logging.INFO)  # once more: still one filter
    assert len(logging.getLogger("pydicom").filters) == 1
    with caplog.at_level(logging.INFO):
        logging.getLogger("pydicom").error("Error while processing tag 300A0018")
        logging.getLogger("hounsfield.archive").error("a real error")
    levels = {r.name: r.levelname for r in caplog.records}
    assert levels == {"pydicom": "WARNING", "hounsfield.archive": "ERROR"}
