"""The direct path decides its answer to an A-ASSOCIATE-RQ once per distinct request, by
pynetdicom's rules; admission and the association limit are decided for every association."""

from __future__ import annotations

from typing import Any

from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, JPEGBaseline8Bit
from pynetdicom import AE
from pynetdicom.pdu import A_ASSOCIATE_AC, A_ASSOCIATE_RQ
from pynetdicom.pdu_primitives import A_ASSOCIATE, MaximumLengthNotification
from pynetdicom.presentation import build_context
from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind, Verification

from hounsfield.archive.context import Archive
from hounsfield.dicomnet.direct import negotiation
from hounsfield.dimse.server import DimseServer
from tests.dcmtk import run

STUDY_FIND = StudyRootQueryRetrieveInformationModelFind
PRINT = "1.2.840.10008.5.1.1.9"  # Basic Grayscale Print Management: not supported here


def _request(calling: str, *contexts: Any, largest: int = 16384) -> bytes:
    """An A-ASSOCIATE-RQ's body (the PDU after its header), as pynetdicom encodes it."""
    rq = A_ASSOCIATE()
    rq.application_context_name = "1.2.840.10008.3.1.1.1"
    rq.calling_ae_title, rq.called_ae_title = calling, "HOUNSFIELD"
    for n, context in enumerate(contexts):
        context.context_id = 2 * n + 1
    rq.presentation_context_definition_list = list(contexts)
    length = MaximumLengthNotification()
    length.maximum_length_received = largest
    rq.user_information = [length]
    pdu = A_ASSOCIATE_RQ()
    pdu.from_primitive(rq)
    return bytes(pdu.encode())[6:]


def test_the_answer_follows_pynetdicoms_rules(server: DimseServer) -> None:
    """Supported contexts accepted with the first transfer syntax this side takes, the
    others refused with their reason; the requestor's AE titles and largest PDU read."""
    listener = server.server
    body = _request(
        "ASKER",
        build_context(STUDY_FIND, [JPEGBaseline8Bit, ExplicitVRLittleEndian]),
        build_context(PRINT),
        build_context(Verification, [JPEGBaseline8Bit]),
        largest=32768,
    )
    found = negotiation.negotiate(listener.ae, listener.contexts, body)
    assert (found.calling, found.called, found.announced) == ("ASKER", "HOUNSFIELD", 32768)
    assert {i: (c.abstract_syntax, c.transfer_syntax) for i, c in found.contexts.items()} == {
        1: (STUDY_FIND, ExplicitVRLittleEndian)
    }
    ac = A_ASSOCIATE_AC()
    ac.decode(found.accept)
    answer = ac.to_primitive()
    results = {c.context_id: c.result for c in answer.presentation_context_definition_results_list}
    assert results == {1: 0x00, 3: 0x03, 5: 0x04}  # accepted; abstract, transfer syntax refused
    assert answer.maximum_length_received == listener.ae.maximum_pdu_size


def test_one_answer_per_distinct_request(server: DimseServer) -> None:
    listener = server.server
    kept = negotiation.of(listener)
    assert negotiation.of(listener) is kept
    one = _request("ONE", build_context(STUDY_FIND, [ImplicitVRLittleEndian]))
    other = _request("OTHER", build_context(STUDY_FIND, [ImplicitVRLittleEndian]))
    first = kept.answer(listener.ae, listener.contexts, one)
    assert kept.answer(listener.ae, listener.contexts, one) is first
    assert kept.answer(listener.ae, listener.contexts, other).calling == "OTHER"
    largest = listener.ae.maximum_pdu_size
    listener.ae.maximum_pdu_size = largest // 2
    try:  # the answer carries this side's largest PDU: decided again
        again = kept.answer(listener.ae, listener.contexts, one)
    finally:
        listener.ae.maximum_pdu_size = largest
    assert again is not first and again.accept != first.accept
    for n in range(negotiation.KEPT):
        kept.answer(listener.ae, listener.contexts, _request(f"AE{n}", build_context(PRINT)))
    assert kept.answer(listener.ae, listener.contexts, one) is not first  # forgotten


def test_a_peer_connecting_again_is_answered_from_what_was_decided(
    archive: Archive, server: DimseServer
) -> None:
    """findscu sends the same request each time: one answer decided for three associations;
    the association limit and the called AE title are still checked on each."""
    echo = ["-aet", "SCRIPT", "-aec", "HOUNSFIELD", "127.0.0.1", str(server.port)]
    for _ in range(3):
        assert run("echoscu", *echo).returncode == 0
    kept = negotiation.of(server.server)
    assert len(kept._kept) == 1
    wrong = ["-aet", "SCRIPT", "-aec", "NOBODY", "127.0.0.1", str(server.port)]
    assert run("echoscu", *wrong).returncode != 0
    ae = AE(ae_title="SCRIPT")
    ae.add_requested_context(Verification)
    ae.maximum_associations = 10
    server.server.ae.maximum_associations = 1
    first = ae.associate("127.0.0.1", server.port, ae_title="HOUNSFIELD")
    try:
        assert first.is_established
        # echoscu, not pynetdicom: a pynetdicom requestor whose thread is slow to wake may
        # take a rejection that came at once for a failed connection (an abort).
        second = run("echoscu", *echo)
        assert second.returncode != 0
        assert "Rejected Transient" in second.stderr and "Local Limit Exceeded" in second.stderr
    finally:
        first.release()
