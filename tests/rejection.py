"""How a DICOM node answers an association request, read from a plain socket: the A-ASSOCIATE-RJ
fields, or None when it accepts. Not pynetdicom's requestor: its thread, slow to wake on a
loaded machine, may find the connection its own reader already closed and take a rejection
that came at once for an abort."""

from __future__ import annotations

import socket
from collections.abc import Sequence

from pynetdicom.pdu import A_ASSOCIATE_RQ
from pynetdicom.pdu_primitives import A_ASSOCIATE
from pynetdicom.presentation import build_context
from pynetdicom.sop_class import Verification

A_ASSOCIATE_AC, A_ASSOCIATE_RJ = 0x02, 0x03
A_ABORT = bytes([0x07, 0, 0, 0, 0, 4, 0, 0, 0, 0])


def _exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError(f"closed after {len(data)} of {size} bytes")
        data += chunk
    return data


def association_request(called: str, calling: str, syntaxes: Sequence[str]) -> bytes:
    """An encoded A-ASSOCIATE-RQ from `calling` to `called`, one context per abstract syntax."""
    rq = A_ASSOCIATE()
    rq.application_context_name = "1.2.840.10008.3.1.1.1"
    rq.calling_ae_title, rq.called_ae_title = calling, called
    rq.maximum_length_received = 16382
    contexts = [build_context(uid) for uid in syntaxes]
    for n, context in enumerate(contexts):
        context.context_id = 2 * n + 1
    rq.presentation_context_definition_list = contexts
    pdu = A_ASSOCIATE_RQ()
    pdu.from_primitive(rq)
    return bytes(pdu.encode())


def rejection(
    port: int,
    called: str,
    calling: str = "ASKER",
    syntaxes: Sequence[str] = (Verification,),
    host: str = "127.0.0.1",
    timeout: float = 30,
    source: str | None = None,
) -> tuple[int, int, int] | None:
    """Propose an association from `calling` to `called` (one context per abstract syntax),
    from the address `source` when given: (result, source, reason) of the A-ASSOCIATE-RJ, or
    None when it is accepted (then aborted at once)."""
    bound = (source, 0) if source else None
    with socket.create_connection((host, port), timeout=timeout, source_address=bound) as sock:
        sock.sendall(association_request(called, calling, syntaxes))
        header = _exactly(sock, 6)
        body = _exactly(sock, int.from_bytes(header[2:6], "big"))
        if header[0] == A_ASSOCIATE_RJ:
            return body[1], body[2], body[3]
        if header[0] == A_ASSOCIATE_AC:
            sock.sendall(A_ABORT)
            return None
        raise AssertionError(f"PDU type {header[0]:#04x} in answer to an A-ASSOCIATE-RQ")
