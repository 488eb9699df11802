"""A DIMSE process reports its metrics to the listener: promptly, but not once per association."""

from __future__ import annotations

import socket
import threading
import time

from hounsfield.node import child_link


def _reports(link: socket.socket, until: float) -> list[float]:
    """When each report arrived on `link`, until the monotonic time `until`."""
    seen: list[float] = []
    while (left := until - time.monotonic()) > 0:
        link.settimeout(left)
        try:
            if link.recv(child_link.MESSAGE_BYTES):
                seen.append(time.monotonic())
        except TimeoutError:
            break
    return seen


def test_associations_ending_together_are_reported_together() -> None:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    stopping, changed = threading.Event(), threading.Event()
    reporter = threading.Thread(
        target=child_link.report, args=(theirs, stopping, changed), daemon=True
    )
    reporter.start()
    seen: list[float] = []
    window = 0.4 + child_link.COALESCE_SECONDS + 0.5
    reader = threading.Thread(
        target=lambda: seen.extend(_reports(ours, time.monotonic() + window)), daemon=True
    )
    try:
        reader.start()
        start = time.monotonic()
        for _ in range(20):  # an association ends every 20 ms, as short C-FINDs do
            changed.set()
            last_change = time.monotonic()
            time.sleep(0.02)
        reader.join(timeout=window + 5)
        during = [t for t in seen if t <= last_change]
        # one report per window at most (a busy machine stretches the 0.4 s), not one per end
        most = int((last_change - start) / child_link.COALESCE_SECONDS) + 2
        assert 1 <= len(during) <= most, f"{len(during)} reports for 20 ends"
        assert seen and seen[-1] > last_change, "the last end was not reported"
        assert seen[0] - start < child_link.COALESCE_SECONDS + 0.3, "the first end waited"
    finally:
        stopping.set()
        changed.set()
        reporter.join(timeout=5)
        ours.close()
        theirs.close()
