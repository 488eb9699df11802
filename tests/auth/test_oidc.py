"""OpenID Connect bearer tokens signed with a key made here: accepted, or refused when forged."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi.testclient import TestClient

from hounsfield.web.app import create_app
from tests.auth.conftest import OTHER, auth_archive

ISSUER = "https://id.hospital.example/realms/radiology"
AUDIENCE = "hounsfield"


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _token(key: rsa.RSAPrivateKey, **claims: Any) -> str:
    now = int(time.time())
    body = {"iss": ISSUER, "aud": AUDIENCE, "sub": "u1", "iat": now, "exp": now + 300}
    body.update(role="radiologist", preferred_username="dr.who")
    body.update(claims)
    return jwt.encode(body, key, algorithm="RS256", headers={"kid": "k1"})


def _get(client: TestClient, token: str, path: str = "/dicomweb/studies") -> int:
    return client.get(path, headers={"Authorization": f"Bearer {token}"}).status_code


@contextmanager
def _jwks_server(key: rsa.RSAPrivateKey) -> Iterator[str]:
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    body = json.dumps({"keys": [{**jwk, "kid": "k1", "use": "sig", "alg": "RS256"}]}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/certs"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def key() -> rsa.RSAPrivateKey:
    return _key()


def _client(tmp_path: Path, **oidc: object) -> Iterator[TestClient]:
    arch = auth_archive(tmp_path, oidc_issuer=ISSUER, oidc_audience=AUDIENCE, **oidc)
    with TestClient(create_app(arch)) as client:
        yield client
    arch.close()


@pytest.fixture
def key_file_client(tmp_path: Path, key: rsa.RSAPrivateKey) -> Iterator[TestClient]:
    (tmp_path / "idp.pem").write_bytes(_pem(key))
    yield from _client(tmp_path, oidc_key_file=tmp_path / "idp.pem")


def test_a_signed_token_is_accepted_with_its_role(
    key_file_client: TestClient, key: rsa.RSAPrivateKey
) -> None:
    assert _get(key_file_client, _token(key)) == 200
    assert _get(key_file_client, _token(key), "/admin/queue") == 403
    limited = _token(key, partitions=[OTHER])
    assert _get(key_file_client, limited) == 403
    assert _get(key_file_client, limited, f"/dicomweb/aets/{OTHER}/studies") == 200
    admin = _token(key, role=["staff", "admin"])
    assert _get(key_file_client, admin, "/admin/queue") == 200


def test_forged_tokens_are_refused(key_file_client: TestClient, key: rsa.RSAPrivateKey) -> None:
    assert _get(key_file_client, _token(_key())) == 401  # another key
    assert _get(key_file_client, _token(key, exp=int(time.time()) - 3600)) == 401
    assert _get(key_file_client, _token(key, aud="another-app")) == 401
    assert _get(key_file_client, _token(key, iss="https://evil.example")) == 401
    head, body, _ = _token(key).split(".")
    assert _get(key_file_client, f"{head}.{body}.") == 401
    unsigned = jwt.encode(
        {"iss": ISSUER, "aud": AUDIENCE, "exp": 2**31, "role": "admin"}, None, "none"
    )
    assert _get(key_file_client, unsigned) == 401
    assert _get(key_file_client, _token(key, role="superuser")) == 403


def test_keys_come_from_a_jwks_url(tmp_path: Path, key: rsa.RSAPrivateKey) -> None:
    with _jwks_server(key) as url:
        for client in _client(tmp_path, oidc_jwks_url=url):
            assert _get(client, _token(key)) == 200
            assert _get(client, _token(_key())) == 401


def test_tokens_are_refused_without_an_issuer(tmp_path: Path, key: rsa.RSAPrivateKey) -> None:
    arch = auth_archive(tmp_path)
    with TestClient(create_app(arch)) as client:
        assert _get(client, _token(key)) == 401
    arch.close()
