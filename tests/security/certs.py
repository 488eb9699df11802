"""Test certificates made with the openssl command: a CA, server and client certificates it
signed, and a client certificate from another (rogue) CA."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

LEAF = """basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth,clientAuth
subjectAltName=DNS:localhost,IP:127.0.0.1
"""


@dataclass(frozen=True)
class Pair:
    """A certificate and its private key (PEM files)."""

    cert: Path
    key: Path


@dataclass(frozen=True)
class Certs:
    """Everything a TLS test needs."""

    ca: Path
    server: Pair
    client: Pair
    rogue: Pair  # signed by a CA the node does not trust


def _openssl(*args: str | Path) -> None:
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True, timeout=60)


def _ca(folder: Path, name: str) -> Pair:
    pair = Pair(folder / f"{name}.pem", folder / f"{name}.key")
    _openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-noenc", "-keyout", pair.key, "-out", pair.cert,
        "-days", "2", "-subj", f"/CN={name}",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    )  # fmt: skip
    return pair


def _leaf(folder: Path, name: str, ca: Pair) -> Pair:
    pair = Pair(folder / f"{name}.pem", folder / f"{name}.key")
    csr, ext = folder / f"{name}.csr", folder / f"{name}.ext"
    ext.write_text(LEAF)
    _openssl(
        "req", "-new", "-newkey", "rsa:2048", "-noenc", "-keyout", pair.key, "-out", csr,
        "-subj", f"/CN={name}",
    )  # fmt: skip
    _openssl(
        "x509", "-req", "-in", csr, "-CA", ca.cert, "-CAkey", ca.key, "-CAcreateserial",
        "-out", pair.cert, "-days", "2", "-extfile", ext,
    )  # fmt: skip
    return pair


def make_certs(folder: Path) -> Certs:
    """A fresh set of certificates in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    ca = _ca(folder, "ca")
    rogue_ca = _ca(folder, "rogue-ca")
    return Certs(
        ca.cert,
        _leaf(folder, "server", ca),
        _leaf(folder, "client", ca),
        _leaf(folder, "rogue", rogue_ca),
    )
