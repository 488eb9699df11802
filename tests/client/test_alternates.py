"""Devices with several addresses: every association the node opens fails over to the next."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pydicom.uid import generate_uid
from pynetdicom import AE
from pynetdicom.sop_class import Verification

from hounsfield.archive.context import Archive
from hounsfield.dicomnet.contexts import query_contexts
from hounsfield.dicomnet.peer import Peer, format_address, parse_address
from hounsfield.dicomnet.scu import VERIFICATION, associate
from hounsfield.errors import AssociationRejected, InvalidDataset, PeerUnreachable
from hounsfield.settings import DeviceConfig
from hounsfield.sites.devices import (
    Device,
    add_device,
    apply_declared,
    find_device,
    list_devices,
)
from hounsfield.sites.forward import forward_studies
from hounsfield.sites.forward_state import list_forwards
from hounsfield.sites.links import POOL
from hounsfield.sites.peers import echo, peer_of
from hounsfield.workers.runner import Worker
from tests.client.peers import CountingSCP, closed_port
from tests.client.test_client import Node, _start
from tests.conftest import make_archive, make_settings
from tests.synth import instance, put


@pytest.fixture
def local(tmp_path: Path) -> Iterator[Archive]:
    """This node's archive (SQLite)."""
    archive = make_archive(make_settings(tmp_path / "local", f"sqlite:///{tmp_path / 'l.db'}"))
    yield archive
    POOL.close_all()
    archive.close()


@pytest.fixture
def hq(tmp_path: Path) -> Iterator[Node]:
    """Another Hounsfield node answering as HQ."""
    started = _start(tmp_path, "hq", ae_title="HQ")
    yield started
    started[1].stop(grace_seconds=2)
    started[0].close()


def test_addresses_parse_and_print() -> None:
    assert parse_address(" h1:104 ") == ("h1", 104)
    assert parse_address("[::1]:11112") == ("::1", 11112)
    assert format_address(("::1", 11112)) == "[::1]:11112"
    for bad in ("h1", "h1:", ":104", "h1:0", "h1:70000", "h1:x"):
        with pytest.raises(ValueError):
            parse_address(bad)
    peer = Peer("A", "h1", 1, alternates=(("h2", 2), ("h1", 1)))
    assert peer.addresses() == (("h1", 1), ("h2", 2))
    assert peer.at(("h2", 2)) == Peer("A", "h2", 2)


def test_devices_keep_their_alternates(local: Archive) -> None:
    add_device(local, Device("HQ", "h1", 104, alternates=("h2:104", " h3:105", "h2:104")))
    assert find_device(local, "HQ") == Device("HQ", "h1", 104, alternates=("h2:104", "h3:105"))
    assert peer_of(Device("HQ", "h1", 104, alternates=("h2:104",))).alternates == (("h2", 104),)
    with pytest.raises(InvalidDataset, match="alternate"):
        add_device(local, Device("BAD", "h1", 104, alternates=("h2",)))
    apply_declared(local, [DeviceConfig(ae_title="TOML", host="h1", port=1, alternates=["h9:9"])])
    declared = {d.ae_title: d for d in list_devices(local)}["TOML"]
    assert declared.alternates == ("h9:9",)
    add_device(local, Device("HQ", "h1", 104))  # updated: no alternates any more
    assert find_device(local, "HQ").alternates == ()  # type: ignore[union-attr]


def test_echo_and_forward_reach_a_device_at_its_alternate_address(local: Archive, hq: Node) -> None:
    dead = closed_port()
    add_device(local, Device("HQ", "127.0.0.1", dead, alternates=(f"127.0.0.1:{hq[1].port}",)))
    assert echo(local, "HQ").status == 0
    study, series = generate_uid(), generate_uid()
    for n in range(5):
        put(local, instance(StudyInstanceUID=study, SeriesInstanceUID=series, InstanceNumber=n))
    assert forward_studies(local, "HQ", study=study) == [study]
    Worker(local, threads=2, processes=0).run_until_idle()
    row = list_forwards(local.engine, study=study)[0]
    assert (row.state, row.sent, row.instances) == ("sent", 5, 5)


def test_without_alternates_a_dead_address_fails_as_before(local: Archive) -> None:
    add_device(local, Device("HQ", "127.0.0.1", closed_port()))
    with pytest.raises(PeerUnreachable):
        echo(local, "HQ")


def test_a_permanent_rejection_is_not_retried_elsewhere(local: Archive, tmp_path: Path) -> None:
    other = _start(tmp_path, "other", ae_title="OTHER")  # rejects the called AE HQ for good
    live = CountingSCP("HQ")
    try:
        add_device(
            local,
            Device("HQ", "127.0.0.1", other[1].port, alternates=(f"127.0.0.1:{live.port}",)),
        )
        with pytest.raises(AssociationRejected) as rejected:
            echo(local, "HQ")
        assert rejected.value.result == 1
        assert live.associations == 0
    finally:
        live.stop()
        other[1].stop(grace_seconds=2)
        other[0].close()


def test_a_transient_rejection_moves_to_the_next_address(local: Archive) -> None:
    busy, free = CountingSCP("HQ", max_associations=1), CountingSCP("HQ")
    holder = AE("HOLDER")
    holder.add_requested_context(Verification)
    held = holder.associate("127.0.0.1", busy.port, ae_title="HQ")
    try:
        assert held.is_established
        peer = Peer("HQ", "127.0.0.1", busy.port, alternates=(("127.0.0.1", free.port),))
        with associate(peer, local.settings, query_contexts([VERIFICATION])) as link:
            assert link.echo() == 0
            assert link.peer.port == free.port
        assert free.associations == 1
    finally:
        held.release()
        busy.stop()
        free.stop()


def test_the_admin_api_takes_and_shows_alternates(local: Archive) -> None:
    from fastapi.testclient import TestClient

    from hounsfield.web.app import create_app

    client = TestClient(create_app(local))
    body = {"host": "h1", "port": 104, "alternates": ["h2:104", "h3:105"]}
    assert client.put("/admin/devices/HQ", json=body).status_code == 200
    (shown,) = client.get("/admin/devices").json()
    assert shown["alternates"] == ["h2:104", "h3:105"]
    bad = client.put("/admin/devices/HQ", json={**body, "alternates": ["h2"]})
    assert bad.status_code == 400
