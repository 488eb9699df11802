"""The PROXY protocol (versions 1 and 2, as HAProxy sends them): the client's address a load
balancer in TCP mode puts in front of a connection's first bytes.

Version 1 is one text line, `PROXY TCP4 <source> <destination> <sport> <dport>\\r\\n` (at most
107 bytes; `PROXY UNKNOWN ...` for a connection of the balancer's own); version 2 a binary
header: a 12-byte signature, version and command, family, length, then the addresses (and
type-length-value fields, ignored here). The LOCAL command (HAProxy's health checks) names
no client: the connection is the balancer's own.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
V1_PREFIX = b"PROXY "
V1_LONGEST = 107
V2_FIXED = 16
TCP4, TCP6 = 0x11, 0x21  # version 2 family and protocol: TCP over IPv4, over IPv6
LOCAL, PROXY = 0x0, 0x1  # version 2 commands


class NotProxyProtocol(ValueError):
    """The bytes do not start with a valid PROXY protocol header."""


@dataclass(frozen=True)
class Header:
    """A whole PROXY protocol header: how many bytes it takes, and the client's address it
    carries (None for a connection of the balancer's own)."""

    length: int
    source: tuple[str, int] | None


def parse(head: bytes) -> Header | None:
    """The header at the start of `head` (what the connection sent so far); None while more
    bytes are needed; NotProxyProtocol when `head` cannot start one."""
    if head[: len(V2_SIGNATURE)] == V2_SIGNATURE[: len(head)] and len(head) < V2_FIXED:
        return None
    if head.startswith(V2_SIGNATURE):
        return _v2(head)
    if head[: len(V1_PREFIX)] == V1_PREFIX[: len(head)] and len(head) < len(V1_PREFIX):
        return None
    if head.startswith(V1_PREFIX):
        return _v1(head)
    raise NotProxyProtocol("the connection did not start with a PROXY protocol header")


def _v2(head: bytes) -> Header | None:
    version_command, family, size = struct.unpack_from(">BBH", head, 12)
    if version_command >> 4 != 2 or version_command & 0xF not in (LOCAL, PROXY):
        raise NotProxyProtocol(f"PROXY protocol v2: version and command 0x{version_command:02x}")
    length = V2_FIXED + size
    if len(head) < length:
        return None
    if version_command & 0xF == LOCAL:
        return Header(length, None)
    body = head[V2_FIXED:length]
    address: ipaddress.IPv4Address | ipaddress.IPv6Address
    if family == TCP4 and size >= 12:
        address, port = ipaddress.IPv4Address(body[0:4]), struct.unpack_from(">H", body, 8)[0]
    elif family == TCP6 and size >= 36:
        address, port = ipaddress.IPv6Address(body[0:16]), struct.unpack_from(">H", body, 32)[0]
    else:  # UNSPEC, UDP, UNIX sockets: no TCP client address to take
        return Header(length, None)
    return Header(length, (str(address), int(port)))


def _v1(head: bytes) -> Header | None:
    end = head.find(b"\r\n", 0, V1_LONGEST)
    if end < 0:
        if len(head) >= V1_LONGEST:
            raise NotProxyProtocol("PROXY protocol v1: no line end within 107 bytes")
        return None
    words = head[:end].decode("ascii", "replace").split(" ")
    if words[1:2] == ["UNKNOWN"]:
        return Header(end + 2, None)
    if len(words) != 6 or words[1] not in ("TCP4", "TCP6"):
        raise NotProxyProtocol(f"PROXY protocol v1: {head[:end]!r}")
    try:
        address = ipaddress.ip_address(words[2])
        port = int(words[4])
    except ValueError as exc:
        raise NotProxyProtocol(f"PROXY protocol v1: {exc}") from exc
    if not 0 <= port <= 65535 or address.version != (4 if words[1] == "TCP4" else 6):
        raise NotProxyProtocol(f"PROXY protocol v1: {head[:end]!r}")
    return Header(end + 2, (str(address), port))


def balancers(networks: Sequence[str]) -> Callable[[Any], bool] | None:
    """Whether a connection's client address (host, port) is one of these load balancers'
    (addresses or networks); None when there are none."""
    nets = [ipaddress.ip_network(n.strip(), strict=False) for n in networks if n.strip()]
    if not nets:
        return None

    def proxied(address: Any) -> bool:
        try:
            host = ipaddress.ip_address(str(address[0]).split("%", 1)[0])
        except (ValueError, IndexError, TypeError):
            return False
        if isinstance(host, ipaddress.IPv6Address) and host.ipv4_mapped is not None:
            host = host.ipv4_mapped
        return any(host in net for net in nets)

    return proxied
