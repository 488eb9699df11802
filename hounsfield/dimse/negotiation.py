"""Transfer syntax choice per association: the C-GET requestor's preference wins for retrieval."""

from __future__ import annotations

from copy import deepcopy

from pynetdicom.events import Event
from pynetdicom.pdu_primitives import A_ASSOCIATE


def prefer_requestor_for_retrieve(event: Event) -> None:
    """EVT_REQUESTED: for storage classes the requestor will receive (it asked for the SCP
    role, as a C-GET SCU does), accept the first syntax it proposes that we support, so stored
    objects travel as they are whenever the peer can take them. Storage sent to the archive
    keeps the archive's own order (uncompressed first)."""
    assoc = event.assoc
    primitive = assoc.requestor.primitive
    if not isinstance(primitive, A_ASSOCIATE):
        return
    receivers = {uid for uid, item in assoc.requestor.role_selection.items() if item.scp_role}
    if not receivers:
        return
    proposed: dict[str, list[str]] = {}
    for rq in primitive.presentation_context_definition_list:
        if rq.abstract_syntax in receivers:
            proposed.setdefault(str(rq.abstract_syntax), [str(ts) for ts in rq.transfer_syntax])
    contexts = deepcopy(assoc.acceptor.supported_contexts)
    for cx in contexts:
        order = proposed.get(str(cx.abstract_syntax))
        if order:
            ours = [str(ts) for ts in cx.transfer_syntax]
            cx.transfer_syntax = [ts for ts in order if ts in ours] + [
                ts for ts in ours if ts not in order
            ]
    assoc.acceptor.supported_contexts = contexts
