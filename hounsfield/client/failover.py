"""Which failures move a request to the next node, and running one request with failover."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from hounsfield.client.nodes import NodeRing
from hounsfield.dicomnet.peer import Address, format_address
from hounsfield.errors import (
    AssociationAborted,
    AssociationRejected,
    PeerError,
    PeerTimeout,
    PeerUnreachable,
)

log = logging.getLogger(__name__)
T = TypeVar("T")
OnFailover = Callable[[Address, PeerError], object]


def fails_over(exc: PeerError) -> bool:
    """Whether another node may succeed where this failure happened: a refused or
    unreachable connection, a rejected association, an abort or a timeout. A failure
    status (an answer) does not fail over."""
    return isinstance(exc, PeerUnreachable | AssociationRejected | AssociationAborted | PeerTimeout)


def with_failover(
    ring: NodeRing,
    action: Callable[[Address], T],
    *,
    key: str | None = None,
    on_failover: OnFailover | None = None,
) -> T:
    """`action(node)` at the first node of the ring's order, then at each next one while
    it fails over (`on_failover` is told the node that failed and why, each time); the
    first result, or the last node's error."""
    order = ring.order(key)
    for n, node in enumerate(order):
        try:
            result = action(node)
        except PeerError as exc:
            if not fails_over(exc):
                raise
            ring.failed(node)
            if n + 1 == len(order):
                raise
            log.warning("%s: %s; failing over", format_address(node), exc.message)
            if on_failover is not None:
                on_failover(node, exc)
            continue
        ring.succeeded(node)
        return result
    raise AssertionError("a ring has at least one node")  # pragma: no cover
