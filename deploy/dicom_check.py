"""Print the A-ASSOCIATE-RQ of HAProxy's DICOM check, as hex for `tcp-check send-binary`.

Usage: python3 deploy/dicom_check.py [CALLED_AE [CALLING_AE]]  (defaults HOUNSFIELD,
HAPROXY-CHECK). Standard library only, so it runs on the load balancer itself.
"""

from __future__ import annotations

import struct
import sys

APPLICATION_CONTEXT = "1.2.840.10008.3.1.1.1"  # DICOM Application Context Name
VERIFICATION = "1.2.840.10008.1.1"
IMPLICIT_VR_LE = "1.2.840.10008.1.2"
IMPLEMENTATION_CLASS_UID = "2.25.154064830640358652879646194109826679242"
IMPLEMENTATION_VERSION = "HAPROXY_CHECK"
MAX_PDU = 16384
CALLED_AE = "HOUNSFIELD"
CALLING_AE = "HAPROXY-CHECK"
# A-RELEASE-RQ and A-RELEASE-RP: PDU type, reserved, length 4, four reserved bytes.
RELEASE_RQ = "05000000000400000000"
RELEASE_RP = "06000000000400000000"


def _item(kind: int, value: bytes) -> bytes:
    """A PDU item or sub-item: type, reserved byte, 2-byte length, value."""
    return struct.pack(">BBH", kind, 0, len(value)) + value


def _ae(title: str) -> bytes:
    """An AE title field: 1 to 16 ASCII characters, padded with spaces."""
    raw = title.strip().encode("ascii")
    if not 0 < len(raw) <= 16 or b"\\" in raw:
        raise ValueError(f"not a valid AE title: {title!r}")
    return raw.ljust(16, b" ")


def associate_rq(called: str = CALLED_AE, calling: str = CALLING_AE) -> bytes:
    """A-ASSOCIATE-RQ proposing Verification with Implicit VR Little Endian (context ID 1)."""
    context = _item(0x30, VERIFICATION.encode()) + _item(0x40, IMPLICIT_VR_LE.encode())
    user = (
        _item(0x51, struct.pack(">I", MAX_PDU))
        + _item(0x52, IMPLEMENTATION_CLASS_UID.encode())
        + _item(0x55, IMPLEMENTATION_VERSION.encode())
    )
    body = (
        struct.pack(">HH", 1, 0)
        + _ae(called)
        + _ae(calling)
        + bytes(32)
        + _item(0x10, APPLICATION_CONTEXT.encode())
        + _item(0x20, bytes([1, 0, 0, 0]) + context)
        + _item(0x50, user)
    )
    return struct.pack(">BBI", 0x01, 0, len(body)) + body


def check_hex(called: str = CALLED_AE, calling: str = CALLING_AE) -> str:
    """The A-ASSOCIATE-RQ as lower-case hex digits."""
    return associate_rq(called, calling).hex()


def main(argv: list[str]) -> int:
    """Print the hex for the AE titles given on the command line."""
    if len(argv) > 2:
        print(__doc__, file=sys.stderr)
        return 2
    print(check_hex(*argv))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
