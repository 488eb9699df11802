"""What a client's send, get and move did: per instance or sub-operation, and failovers."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from hounsfield.dicomnet.responses import RetrieveResult

SUCCESSFUL = (0x0000, 0xB000, 0xB006, 0xB007)


@dataclass
class SendReport:
    """Per SOP Instance UID: the node that acknowledged it and its status (`sent`), or why
    it was not sent (`failed`); how many times an association moved to another node."""

    sent: dict[str, tuple[str, int]] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    failovers: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        """Every instance was acknowledged with success or a warning."""
        return not self.failed

    def acknowledged(self, sop_instance: str, node: str, status: int) -> None:
        """A node answered the C-STORE of `sop_instance`."""
        with self._lock:
            if status in SUCCESSFUL:
                self.sent[sop_instance] = (node, status)
                self.failed.pop(sop_instance, None)
            else:
                self.failed[sop_instance] = f"{node}: status 0x{status:04X}"

    def not_sent(self, what: str, reason: str) -> None:
        """`what` (an instance or a file) could not be sent."""
        with self._lock:
            self.failed[what] = reason

    def failed_over(self) -> None:
        """An association moved to another node."""
        with self._lock:
            self.failovers += 1

    def per_node(self) -> dict[str, int]:
        """How many instances each node acknowledged."""
        counts: dict[str, int] = {}
        for node, _status in self.sent.values():
            counts[node] = counts.get(node, 0) + 1
        return counts


@dataclass(frozen=True)
class RetrieveReport:
    """How a C-GET or C-MOVE ended, at which node, after how many failovers; for a C-GET,
    the files written."""

    result: RetrieveResult
    node: str
    failovers: int = 0
    files: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """Every sub-operation succeeded."""
        return self.result.ok
