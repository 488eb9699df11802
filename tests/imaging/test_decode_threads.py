"""JPEG 2000 decodes on several threads: set per process, and the same pixels as on one."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from hounsfield.imaging.decode import decode_frame, use_threads
from hounsfield.imaging.pixels import open_source
from hounsfield.node.process import open_pool_process, open_process
from tests.conftest import make_archive, make_settings
from tests.data import local


@pytest.fixture(autouse=True)
def _keep_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPJ_NUM_THREADS", "1")  # restored after each test


def test_the_count_reaches_openjpeg_through_its_environment_variable() -> None:
    use_threads(3)
    assert os.environ["OPJ_NUM_THREADS"] == "3"
    use_threads(0)
    assert os.environ["OPJ_NUM_THREADS"] == str(os.cpu_count())


def test_node_processes_take_the_setting_and_pool_processes_one(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, f"sqlite:///{tmp_path / 'i.db'}", decode_threads=2)
    make_archive(settings).close()  # the schema
    process = open_process(settings)
    try:
        assert os.environ["OPJ_NUM_THREADS"] == "2"
    finally:
        process.close()
    open_pool_process(settings).close()
    assert os.environ["OPJ_NUM_THREADS"] == "1"


@pytest.mark.parametrize("name", ["RG3_J2KR.dcm", "RG1_J2KR.dcm"])
@pytest.mark.parametrize("want", [(512, 512), None])
def test_several_threads_decode_the_same_pixels(name: str, want: tuple[int, int] | None) -> None:
    decoded = []
    for threads in (1, 2):
        use_threads(threads)
        decoded.append(decode_frame(open_source(local(name)), 0, want))
    assert decoded[0].method == decoded[1].method
    assert np.array_equal(decoded[0].pixels, decoded[1].pixels)
