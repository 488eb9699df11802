"""A simulated clinic link: two network namespaces joined by a rate-limited veth pair."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType

SENDER_NS, RECEIVER_NS = "hfbench-send", "hfbench-recv"
SENDER_IF, RECEIVER_IF = "hfb-send", "hfb-recv"  # interface names: at most 15 characters
SENDER_ADDR, RECEIVER_ADDR = "10.77.0.1", "10.77.0.2"
BURST = "32kb"  # tbf bucket: a few full-size packets
QUEUE = "100ms"  # tbf: packets wait at most this long before being dropped


@dataclass(frozen=True)
class LinkSpec:
    """The link to simulate: a rate (both directions) and a round trip (the delay proxy's)."""

    rate_mbit: float = 20.0
    rtt_ms: float = 40.0

    @property
    def one_way_ms(self) -> float:
        """What the delay proxy holds each chunk for, in each direction."""
        return self.rtt_ms / 2

    @property
    def bytes_per_second(self) -> float:
        """The rate in bytes per second."""
        return self.rate_mbit * 1e6 / 8


def netns(name: str) -> list[str]:
    """The prefix that runs a command inside namespace `name`."""
    return ["ip", "netns", "exec", name]


def setup_commands(spec: LinkSpec) -> list[str]:
    """The `ip` and `tc` commands that build the link (bench/README.md shows them)."""
    rate = f"{spec.rate_mbit:g}mbit"
    out = [
        f"ip netns add {SENDER_NS}",
        f"ip netns add {RECEIVER_NS}",
        f"ip link add {SENDER_IF} netns {SENDER_NS} type veth peer name {RECEIVER_IF} "
        f"netns {RECEIVER_NS}",
    ]
    for ns, dev, addr in (
        (SENDER_NS, SENDER_IF, SENDER_ADDR),
        (RECEIVER_NS, RECEIVER_IF, RECEIVER_ADDR),
    ):
        out += [
            f"ip -n {ns} addr add {addr}/24 dev {dev}",
            f"ip -n {ns} link set {dev} up",
            f"ip -n {ns} link set lo up",
            f"tc -n {ns} qdisc add dev {dev} root tbf rate {rate} burst {BURST} latency {QUEUE}",
        ]
    return out


def teardown() -> None:
    """Delete both namespaces (and with them the veth pair); quiet when they are absent."""
    for ns in (SENDER_NS, RECEIVER_NS):
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)


def _sh(args: list[str]) -> None:
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed: {done.stderr.strip()}")


def _stop(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(f"stopped by {signal.Signals(signum).name}")


@contextmanager
def clinic_link(spec: LinkSpec) -> Iterator[LinkSpec]:
    """Build the link (after removing a leftover one) and always remove it afterwards, also
    on SIGTERM, which raises SystemExit meanwhile."""
    teardown()
    previous = signal.signal(signal.SIGTERM, _stop)
    try:
        for command in setup_commands(spec):
            _sh(command.split())
        yield spec
    finally:
        teardown()
        signal.signal(signal.SIGTERM, previous)
