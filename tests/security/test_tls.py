"""DICOM over TLS (BCP 195) with DCMTK's tools in their TLS modes, outgoing associations over
TLS, and HTTPS on the HTTP port."""

from __future__ import annotations

import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pydicom import dcmread

from hounsfield.archive.context import Archive
from hounsfield.dicomnet.tls import server_context
from hounsfield.dimse.server import DimseServer
from hounsfield.errors import PeerError, PeerUnreachable
from hounsfield.sites.devices import Device, add_device
from hounsfield.sites.forward import forward_studies
from hounsfield.sites.peers import echo
from hounsfield.workers.runner import Worker
from tests.audit.helpers import recorded
from tests.conftest import make_archive, make_settings
from tests.dcmtk import ENV, free_port, run
from tests.livenode import Node, cli, node_env
from tests.security.certs import Certs, Pair, make_certs
from tests.synth import instance, put, write_part10


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    """A CA, its server and client certificates, and a rogue client certificate."""
    return make_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture
def archive(tmp_path: Path, certs: Certs) -> Iterator[Archive]:
    """An archive on SQLite whose node has a TLS port that requires client certificates."""
    settings = make_settings(
        tmp_path,
        f"sqlite:///{tmp_path / 'index.db'}",
        tls_port=0,
        tls_cert_file=certs.server.cert,
        tls_key_file=certs.server.key,
        tls_ca_file=certs.ca,
    )
    opened = make_archive(settings)
    yield opened
    opened.close()


@pytest.fixture
def server(archive: Archive) -> Iterator[DimseServer]:
    """The node's DIMSE server with its TLS listener."""
    srv = DimseServer(archive)
    srv.start()
    yield srv
    srv.stop(grace_seconds=2)


def tls_args(pair: Pair, certs: Certs) -> list[str]:
    """DCMTK's options for a TLS association with `pair` as client certificate."""
    return ["+tls", str(pair.key), str(pair.cert), "+cf", str(certs.ca)]


def echoscu(port: int, *args: str) -> subprocess.CompletedProcess[str]:
    """C-ECHO the node's default partition."""
    return run("echoscu", "-aec", "HOUNSFIELD", *args, "127.0.0.1", str(port), timeout=30)


def test_dcmtk_echo_store_and_find_over_tls(
    server: DimseServer, certs: Certs, tmp_path: Path
) -> None:
    args = tls_args(certs.client, certs)
    assert echoscu(server.tls_port, *args).returncode == 0
    ds = instance()
    path = write_part10(ds, tmp_path / "one.dcm")
    assert isinstance(path, Path)
    stored = run(
        "storescu", "-aec", "HOUNSFIELD", *args, "127.0.0.1", str(server.tls_port), str(path)
    )
    assert stored.returncode == 0, stored.stderr
    found = tmp_path / "found"
    found.mkdir()
    run(
        "findscu", "-S", "-aec", "HOUNSFIELD", *args, "-X", "-od", str(found),
        "-k", "QueryRetrieveLevel=STUDY", "-k", "StudyInstanceUID",
        "127.0.0.1", str(server.tls_port), check=True,
    )  # fmt: skip
    answers = [dcmread(p).StudyInstanceUID for p in found.iterdir()]
    assert answers == [ds.StudyInstanceUID]


def test_refusals_keep_the_server_serving(server: DimseServer, certs: Certs) -> None:
    rogue = echoscu(server.tls_port, *tls_args(certs.rogue, certs))
    assert rogue.returncode != 0  # a client certificate the CA did not sign
    assert echoscu(server.tls_port).returncode != 0  # plain DICOM on the TLS port
    # A client that connects and says nothing does not hold up the listener.
    with socket.create_connection(("127.0.0.1", server.tls_port)):
        assert echoscu(server.tls_port, *tls_args(certs.client, certs)).returncode == 0
    assert echoscu(server.port).returncode == 0  # the plain port is unaffected
    refusals = recorded(server.archive, event="association-refused")
    assert refusals and all(r.protocol == "DICOM-TLS" for r in refusals)
    assert all(r.host == "127.0.0.1" and r.outcome == 4 for r in refusals)
    assert any("certificate" in r.detail.lower() for r in refusals)  # the rogue's


def _handshake(port: int, certs: Certs, *, tls11: bool = False, cipher: str = "") -> None:
    context = ssl.create_default_context(cafile=certs.ca)
    context.load_cert_chain(certs.client.cert, certs.client.key)
    if tls11:
        context.minimum_version = ssl.TLSVersion.TLSv1
        context.maximum_version = ssl.TLSVersion.TLSv1_1
        context.set_ciphers("ALL:@SECLEVEL=0")
    if cipher:
        context.maximum_version = ssl.TLSVersion.TLSv1_2
        context.set_ciphers(cipher + ":@SECLEVEL=0")
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="localhost"),
    ):
        pass


def test_old_protocols_and_weak_ciphers_are_refused(server: DimseServer, certs: Certs) -> None:
    _handshake(server.tls_port, certs)  # TLS 1.3 with the right certificate: fine
    _handshake(server.tls_port, certs, cipher="ECDHE-RSA-AES128-GCM-SHA256")  # TLS 1.2 too
    with pytest.raises(ssl.SSLError):
        _handshake(server.tls_port, certs, tls11=True)
    with pytest.raises(ssl.SSLError):
        _handshake(server.tls_port, certs, cipher="AES128-SHA")  # no forward secrecy
    context = server_context(server.archive.settings)
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert context.verify_mode == ssl.CERT_REQUIRED


def test_openssl_tls11_is_refused(server: DimseServer) -> None:
    proc = subprocess.run(
        ["openssl", "s_client", "-tls1_1", "-connect", f"127.0.0.1:{server.tls_port}"],
        input="",
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode != 0
    assert "Cipher is (NONE)" in proc.stdout or "alert" in proc.stderr


class TlsStoreSCP:
    """DCMTK's storescp in TLS mode, requiring a client certificate signed by the CA."""

    def __init__(self, folder: Path, certs: Certs, server: Pair) -> None:
        self.port = free_port()
        folder.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [
                "storescp", "-aet", "TLSSCP", "+tls", str(server.key), str(server.cert),
                "+cf", str(certs.ca), "-od", str(folder), str(self.port),
            ],
            env=ENV,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and self.proc.poll() is None:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise RuntimeError("storescp did not start")

    def stop(self) -> None:
        """Terminate it."""
        self.proc.terminate()
        self.proc.wait(timeout=10)


def test_outgoing_associations_over_tls(archive: Archive, certs: Certs, tmp_path: Path) -> None:
    scp = TlsStoreSCP(tmp_path / "got", certs, certs.server)
    try:
        add_device(archive, Device("TLSSCP", "127.0.0.1", scp.port, tls=True))
        assert echo(archive, "TLSSCP", timeout=10).status == 0
        ds = instance()
        put(archive, ds)
        assert forward_studies(archive, "TLSSCP", study=ds.StudyInstanceUID)
        Worker(archive, threads=1, processes=0).run_until_idle()
        assert [p.name for p in (tmp_path / "got").iterdir()]  # the object arrived
        add_device(archive, Device("PLAIN", "127.0.0.1", scp.port))
        with pytest.raises(PeerError):  # plain DICOM to a TLS peer
            echo(archive, "PLAIN", timeout=5)
    finally:
        scp.stop()


def test_a_peer_whose_certificate_is_not_trusted_is_unreachable(
    archive: Archive, certs: Certs, tmp_path: Path
) -> None:
    rogue_server = TlsStoreSCP(tmp_path / "rogue", certs, certs.rogue)
    try:
        add_device(archive, Device("ROGUE", "127.0.0.1", rogue_server.port, tls=True))
        with pytest.raises(PeerUnreachable, match="TLS"):
            echo(archive, "ROGUE", timeout=5)
    finally:
        rogue_server.stop()


def test_a_node_serves_tls_and_https(tmp_path: Path, certs: Certs) -> None:
    tls_port = free_port()
    env = node_env(
        tmp_path / "data",
        f"sqlite:///{tmp_path / 'node.db'}",
        HOUNSFIELD_TLS_PORT=str(tls_port),
        HOUNSFIELD_TLS_CERT_FILE=str(certs.server.cert),
        HOUNSFIELD_TLS_KEY_FILE=str(certs.server.key),
        HOUNSFIELD_TLS_CA_FILE=str(certs.ca),
        HOUNSFIELD_HTTP_TLS="true",
        HOUNSFIELD_DIMSE_PROCESSES="2",
        HOUNSFIELD_QUEUE_THREADS="0",
    )
    assert cli(env, "db", "upgrade").returncode == 0
    clinic_tls = free_port()
    added = cli(env, "partition", "add", "CLINIC", "--tls-port", str(clinic_tls))
    assert added.returncode == 0, added.stderr
    node = Node(env, tmp_path / "node.log")
    try:
        # The partition's own TLS port answers for it alone, in either DIMSE process.
        client = tls_args(certs.client, certs)
        for _ in range(4):
            assert (
                run("echoscu", "-aec", "CLINIC", *client, "127.0.0.1", str(clinic_tls)).returncode
                == 0
            )
        assert echoscu(clinic_tls, *client).returncode != 0  # HOUNSFIELD is not on that port
        assert run("echoscu", "-aec", "CLINIC", "127.0.0.1", str(clinic_tls)).returncode != 0
        url = f"https://localhost:{node.http_port}/health"
        verify = ssl.create_default_context(cafile=certs.ca)
        assert httpx.get(url, verify=verify).status_code == 200
        with pytest.raises(httpx.ConnectError):
            httpx.get(url)  # the system's CAs do not know the test CA
        for _ in range(4):
            assert echoscu(tls_port, *tls_args(certs.client, certs)).returncode == 0
        # The second DIMSE process does handshakes for connections the listener hands it (an
        # idle node hands it a TLS connection; one it is still counting as open goes to the
        # listener, so a refused handshake is tried until one has landed there).
        deadline = time.monotonic() + 30
        while True:
            assert echoscu(tls_port, *tls_args(certs.rogue, certs)).returncode != 0
            metrics = httpx.get(url.replace("/health", "/metrics"), verify=verify).text
            if 'hounsfield_associations_total{event="tls-failed",process="1"}' in metrics:
                break
            assert time.monotonic() < deadline, "no refused handshake in the second process"
            time.sleep(0.5)
        assert echoscu(tls_port, *tls_args(certs.client, certs)).returncode == 0
    finally:
        node.signal(signal.SIGTERM)
        assert node.wait() == 0
