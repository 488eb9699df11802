"""The direct path's answer to an A-ASSOCIATE-RQ, decided once per distinct request.

A modality, a workstation or a query script sends the same A-ASSOCIATE-RQ bytes each time it
connects. Decoding them with pynetdicom's PDU classes, negotiating the presentation contexts
and encoding the A-ASSOCIATE-AC took about half a millisecond of a findscu association's
server time (Orthanc answers the whole request in 0.7 ms): a server keeps the outcome for the
requests it has seen, by their bytes. Admission and the association limit are decided for
each association all the same.
"""

from __future__ import annotations

import struct
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from pynetdicom import _config
from pynetdicom.pdu import A_ASSOCIATE_AC, A_ASSOCIATE_RQ
from pynetdicom.pdu_primitives import (
    A_ASSOCIATE,
    ImplementationClassUIDNotification,
    ImplementationVersionNameNotification,
    MaximumLengthNotification,
)
from pynetdicom.presentation import (
    PresentationContext,
    PresentationContextTuple,
    negotiate_as_acceptor,
    negotiate_unrestricted,
)

KEPT = 256  # distinct requests remembered per server


@dataclass(frozen=True)
class Negotiated:
    """What an A-ASSOCIATE-RQ asks and what this side answers when it admits it."""

    calling: str
    called: str
    announced: int  # the largest PDU the requestor takes (0: no limit)
    contexts: dict[int, PresentationContextTuple]  # accepted, by context ID
    accept: bytes  # the A-ASSOCIATE-AC


def negotiate(ae: Any, supported: list[PresentationContext], body: bytes) -> Negotiated:
    """Decode the request (`body`: the PDU after its 6-byte header) and decide the answer,
    by pynetdicom's rules."""
    pdu = A_ASSOCIATE_RQ()
    pdu.decode(struct.pack(">BBI", 0x01, 0, len(body)) + body)
    rq = pdu.to_primitive()
    unrestricted = _config.UNRESTRICTED_STORAGE_SERVICE
    rules = negotiate_unrestricted if unrestricted else negotiate_as_acceptor
    results, _roles = rules(rq.presentation_context_definition_list, supported)
    accepted = sorted((c for c in results if c.result == 0x00), key=lambda c: c.context_id)
    return Negotiated(
        calling=str(rq.calling_ae_title or "").strip(),
        called=str(rq.called_ae_title or "").strip(),
        announced=int(rq.maximum_length_received or 0),
        contexts={int(c.context_id): c.as_tuple for c in accepted},
        accept=_accept(ae, rq, accepted + [c for c in results if c.result != 0x00]),
    )


def _accept(ae: Any, rq: A_ASSOCIATE, contexts: list[PresentationContext]) -> bytes:
    answer = A_ASSOCIATE()
    answer.application_context_name = rq.application_context_name
    answer.calling_ae_title = rq.calling_ae_title
    answer.called_ae_title = rq.called_ae_title
    answer.result, answer.result_source = 0x00, 0x01
    answer.presentation_context_definition_results_list = contexts
    length = MaximumLengthNotification()
    length.maximum_length_received = ae.maximum_pdu_size
    uid = ImplementationClassUIDNotification()
    uid.implementation_class_uid = ae.implementation_class_uid
    answer.user_information = [length, uid]
    if ae.implementation_version_name:
        name = ImplementationVersionNameNotification()
        name.implementation_version_name = ae.implementation_version_name
        answer.user_information.append(name)
    ac = A_ASSOCIATE_AC()
    ac.from_primitive(answer)
    return bytes(ac.encode())


class Negotiations:
    """A server's answers to the requests it has seen, the most recent KEPT."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._kept: OrderedDict[tuple[Any, ...], Negotiated] = OrderedDict()

    def answer(self, ae: Any, supported: list[PresentationContext], body: bytes) -> Negotiated:
        """The answer to the request `body`, decided now if this server has not seen it (or
        its AE's maximum PDU size or implementation identity has changed since)."""
        key = (
            body,
            id(supported),
            ae.maximum_pdu_size,
            ae.implementation_class_uid,
            ae.implementation_version_name,
            bool(_config.UNRESTRICTED_STORAGE_SERVICE),
        )
        with self._lock:
            found = self._kept.get(key)
            if found is not None:
                self._kept.move_to_end(key)
                return found
        found = negotiate(ae, supported, body)
        with self._lock:
            self._kept[key] = found
            while len(self._kept) > KEPT:
                self._kept.popitem(last=False)
        return found


_ATTRIBUTE = "_hounsfield_negotiations"
_CREATING = threading.Lock()


def of(server: Any) -> Negotiations:
    """The answers kept by `server` (a listening or handed-connection server)."""
    found: Negotiations | None = getattr(server, _ATTRIBUTE, None)
    if found is None:
        with _CREATING:
            found = getattr(server, _ATTRIBUTE, None)
            if found is None:
                found = Negotiations()
                setattr(server, _ATTRIBUTE, found)
    return found
