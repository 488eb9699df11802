"""PROXY protocol headers (v1 text, v2 binary) as HAProxy sends them, whole or in pieces."""

from __future__ import annotations

import ipaddress
import struct

import pytest
from pydantic import ValidationError

from hounsfield.dicomnet.proxyproto import (
    V2_SIGNATURE,
    Header,
    NotProxyProtocol,
    balancers,
    parse,
)
from hounsfield.settings import Settings

RQ = b"\x01\x00\x00\x00\x00\x44"  # what follows: the start of an A-ASSOCIATE-RQ


def v2(command: int, family: int, body: bytes) -> bytes:
    """A version 2 header."""
    return V2_SIGNATURE + struct.pack(">BBH", 0x20 | command, family, len(body)) + body


def v2_tcp4(source: str, port: int) -> bytes:
    addresses = ipaddress.IPv4Address(source).packed + ipaddress.IPv4Address("10.0.0.11").packed
    return v2(0x1, 0x11, addresses + struct.pack(">HH", port, 11112))


def test_version_1() -> None:
    line = b"PROXY TCP4 203.0.113.7 10.0.0.11 50123 11112\r\n"
    assert parse(line + RQ) == Header(len(line), ("203.0.113.7", 50123))
    line6 = b"PROXY TCP6 2001:db8::7 2001:db8::11 50123 11112\r\n"
    assert parse(line6) == Header(len(line6), ("2001:db8::7", 50123))
    assert parse(b"PROXY UNKNOWN\r\n" + RQ) == Header(15, None)


def test_version_2() -> None:
    header = v2_tcp4("203.0.113.7", 50123)
    assert parse(header + RQ) == Header(len(header), ("203.0.113.7", 50123))
    six = ipaddress.IPv6Address("2001:db8::7").packed + ipaddress.IPv6Address("::1").packed
    header6 = v2(0x1, 0x21, six + struct.pack(">HH", 1024, 104))
    assert parse(header6) == Header(len(header6), ("2001:db8::7", 1024))
    local = v2(0x0, 0x00, b"")  # HAProxy's health check: its own connection
    assert parse(local + RQ) == Header(16, None)
    with_tlv = v2(0x1, 0x11, v2_tcp4("198.51.100.2", 7)[16:] + b"\x04\x00\x01\x00")
    assert parse(with_tlv) == Header(len(with_tlv), ("198.51.100.2", 7))


@pytest.mark.parametrize("whole", [b"PROXY TCP4 203.0.113.7 10.0.0.11 50123 11112\r\n", None])
def test_a_header_in_pieces_waits_for_the_rest(whole: bytes | None) -> None:
    header = whole or v2_tcp4("203.0.113.7", 50123)
    for cut in range(1, len(header)):
        assert parse(header[:cut]) is None
    assert parse(header) == Header(len(header), ("203.0.113.7", 50123))


@pytest.mark.parametrize(
    "head",
    [
        RQ,  # straight to the association: no header
        b"\x16\x03\x01\x02\x00",  # a TLS ClientHello
        b"GET / HTTP/1.1\r\n",
        b"PROXY TCP4 not-an-address 10.0.0.11 1 2\r\n",
        b"PROXY TCP4 203.0.113.7 10.0.0.11 99999 2\r\n",
        b"PROXY TCP6 203.0.113.7 10.0.0.11 1 2\r\n",
        b"PROXY " + b"x" * 120,
        V2_SIGNATURE + b"\x31\x11\x00\x0c",  # version 3
    ],
)
def test_anything_else_is_refused(head: bytes) -> None:
    with pytest.raises(NotProxyProtocol):
        parse(head)


def test_a_balancer_list_is_checked_and_matched() -> None:
    with pytest.raises(ValidationError, match="dimse_proxy_protocol"):
        Settings(dimse_proxy_protocol=["10.0.0.999"])
    assert balancers([]) is None
    proxied = balancers(["10.0.0.5", "192.168.8.0/24"])
    assert proxied is not None
    assert proxied(("10.0.0.5", 1)) and proxied(("192.168.8.77", 2))
    assert proxied(("::ffff:10.0.0.5", 3, 0, 0))  # an IPv4 balancer on a dual-stack socket
    assert not proxied(("10.0.0.6", 1)) and not proxied(("", 0))
