"""Audit records to a syslog collector over TLS (RFC 5425 framing, RFC 5424 messages) in the
DICOM audit message format, with the node's client certificate checked by the collector."""

from __future__ import annotations

import socket
import ssl
import threading
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from hounsfield.audit import trail
from hounsfield.audit.events import Actor
from tests.conftest import make_archive, make_settings
from tests.security.certs import Certs, make_certs


class Collector:
    """A TLS syslog receiver that requires a client certificate signed by the CA."""

    def __init__(self, certs: Certs) -> None:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(certs.ca))
        ctx.load_cert_chain(str(certs.server.cert), str(certs.server.key))
        ctx.verify_mode = ssl.CERT_REQUIRED
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.context, self.frames, self.peers = ctx, [], []  # type: ignore[var-annotated]
        self.got = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        raw, _ = self.listener.accept()
        with self.context.wrap_socket(raw, server_side=True) as conn:
            self.peers.append(conn.getpeercert())
            buf = b""
            while True:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                buf += chunk
                while b" " in buf:
                    length, _, rest = buf.partition(b" ")
                    if len(rest) < int(length):
                        break
                    self.frames.append(rest[: int(length)])
                    buf = rest[int(length) :]
                    self.got.set()


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("certs"))


def test_records_reach_a_tls_collector_as_dicom_audit_messages(
    tmp_path: Path, certs: Certs
) -> None:
    collector = Collector(certs)
    settings = make_settings(
        tmp_path,
        f"sqlite:///{tmp_path / 'a.db'}",
        audit_syslog=f"tls://localhost:{collector.port}",
        audit_syslog_ca_file=certs.ca,
        tls_cert_file=certs.client.cert,
        tls_key_file=certs.client.key,
        node_name="node-a",
    )
    archive = make_archive(settings)
    try:
        actor = Actor("CT1", "DICOM", host="10.1.2.3", ae_title="CT1", called="HOUNSFIELD")
        trail.record(
            archive.engine,
            "store",
            actor=actor,
            partition="HOUNSFIELD",
            patient_id="P77",
            patient_name="DOE^JANE",
            study_uid="1.2.3.4",
            count=12,
        )
        trail.flush(archive.engine)
        assert collector.got.wait(15), "nothing reached the collector"
    finally:
        archive.close()
    assert collector.peers and collector.peers[0]  # the node showed its client certificate
    head, _, body = collector.frames[0].partition(b"\xef\xbb\xbf")
    pri_version, stamp, host, app, procid, msgid, sd = head.decode().split(" ", 6)
    assert (pri_version, app, procid, msgid) == ("<85>1", "hounsfield", "-", "IHE+RFC-3881")
    assert stamp.endswith("Z") and sd.strip() == "-" and host == socket.gethostname()
    root = ET.fromstring(body)
    ident = root.find("EventIdentification")
    assert ident is not None and ident.get("EventActionCode") == "C"
    assert ident.get("EventOutcomeIndicator") == "0"
    event_id = ident.find("EventID")
    assert event_id is not None and event_id.get("csd-code") == "110104"
    requestor, node = root.findall("ActiveParticipant")
    assert requestor.get("UserID") == "CT1" and requestor.get("NetworkAccessPointID") == "10.1.2.3"
    assert requestor.get("AlternativeUserID") == "AETITLES=CT1"
    assert node.get("UserIsRequestor") == "false"
    source = root.find("AuditSourceIdentification")
    assert source is not None and source.get("AuditSourceID") == "node-a"
    objects = {
        o.get("ParticipantObjectTypeCode"): o
        for o in root.findall("ParticipantObjectIdentification")
    }
    assert objects["2"].get("ParticipantObjectID") == "1.2.3.4"
    assert objects["1"].get("ParticipantObjectID") == "P77"
    assert objects["1"].findtext("ParticipantObjectName") == "DOE^JANE"
