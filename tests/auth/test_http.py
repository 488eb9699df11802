"""Over HTTP from a remote client: 401 without credentials, 403 per role and per partition."""

from __future__ import annotations

import asyncio

import httpx
from pydicom import dcmread

from hounsfield.auth import tokens
from hounsfield.web.app import create_app
from tests.auth.conftest import FILE, OTHER, PASSWORD, Node
from tests.data import local

HTML = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}


def _stow_body() -> tuple[bytes, str]:
    boundary = "b0undary"
    body = (
        f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
        + local(FILE).read_bytes()
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f'multipart/related; type="application/dicom"; boundary={boundary}'


def test_no_credentials_get_401_and_pages_go_to_login(node: Node) -> None:
    client = node.client
    for path in ("/dicomweb/studies", f"/dicomweb/aets/{OTHER}/studies", "/admin/queue"):
        answer = client.get(path)
        assert answer.status_code == 401, path
        assert answer.headers["WWW-Authenticate"].startswith("Bearer")
    page = client.get("/ui/queue?state=failed", headers=HTML, follow_redirects=False)
    assert page.status_code == 303
    assert page.headers["location"] == "/ui/login?next=%2Fui%2Fqueue%3Fstate%3Dfailed"
    assert client.get("/", headers=HTML, follow_redirects=False).status_code == 303
    assert client.get("/health").status_code == 200
    assert client.get("/metrics").status_code == 200
    assert client.get("/ui/login").status_code == 200
    bad = client.get("/dicomweb/studies", headers={"Authorization": "Bearer hf_nonsense"})
    assert bad.status_code == 401


def test_radiologist_reads_own_partition_only(node: Node) -> None:
    client, rad = node.client, node.headers("rad")
    found = client.get("/dicomweb/studies", headers=rad)
    assert found.status_code == 200 and len(found.json()) == 1
    meta = client.get(f"/dicomweb/studies/{node.study}/metadata", headers=rad)
    assert meta.status_code == 200
    assert client.get(f"/dicomweb/aets/{OTHER}/studies", headers=rad).status_code == 403
    assert client.get("/admin/queue", headers=rad).status_code == 403
    assert client.get("/ui/queue", headers=rad).status_code == 403  # a view of every tenant
    body, kind = _stow_body()
    stow = client.post("/dicomweb/studies", content=body, headers={**rad, "Content-Type": kind})
    assert stow.status_code == 403
    assert client.delete(f"/dicomweb/studies/{node.study}", headers=rad).status_code == 403
    assert client.get(f"/admin/studies/{OTHER}/{node.study}/files", headers=rad).status_code == 403


def test_operator_acts_but_does_not_manage_users(node: Node) -> None:
    client, oper = node.client, node.headers("oper")
    assert client.get("/admin/queue", headers=oper).status_code == 200
    files = client.get(f"/admin/studies/{OTHER}/{node.study}/files", headers=oper)
    assert files.status_code == 200
    assert client.get("/ui/queue", headers=oper).status_code == 200
    assert client.get(f"/dicomweb/aets/{OTHER}/studies", headers=oper).status_code == 200
    new = {"name": "eve", "password": PASSWORD, "role": "admin"}
    assert client.post("/admin/users", json=new, headers=oper).status_code == 403
    assert client.get("/admin/users", headers=oper).status_code == 403
    root = node.headers("root")
    assert client.post("/admin/users", json=new, headers=root).status_code == 201
    assert "eve" in [u["name"] for u in client.get("/admin/users", headers=root).json()]


def test_api_role_stores_and_reads_but_not_admin(node: Node) -> None:
    client, script = node.client, node.headers("script")
    body, kind = _stow_body()
    stow = client.post(
        f"/dicomweb/aets/{OTHER}/studies", content=body, headers={**script, "Content-Type": kind}
    )
    assert stow.status_code == 200, stow.text
    assert client.get("/dicomweb/studies", headers=script).status_code == 200
    assert client.get("/admin/queue", headers=script).status_code == 403
    assert client.get("/ui/", headers=script).status_code == 403


def test_revoked_and_expired_tokens_are_refused(node: Node) -> None:
    client = node.client
    assert client.get("/dicomweb/studies", headers=node.headers("script")).status_code == 200
    token = tokens.list_tokens(node.archive.engine, "script")[0]
    tokens.revoke(node.archive.engine, token.pk)
    assert client.get("/dicomweb/studies", headers=node.headers("script")).status_code == 401
    _, short = tokens.create(node.archive.engine, "script", "short", days=1e-9)
    refused = client.get("/dicomweb/studies", headers={"Authorization": f"Bearer {short}"})
    assert refused.status_code == 401


def test_cookie_login_serves_viewer_and_frames(node: Node) -> None:
    client = node.client
    wrong = client.post("/ui/login", data={"name": "rad", "password": "nope nope nope"})
    assert wrong.status_code == 401
    login = client.post(
        "/ui/login",
        data={"name": "rad", "password": PASSWORD, "next": "/viewer"},
        follow_redirects=False,
    )
    assert login.status_code == 303 and login.headers["location"] == "/viewer"
    cookie = login.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie
    assert client.get("/app-config.js").status_code == 200
    assert client.get("/viewer", headers=HTML).status_code == 200
    ds = dcmread(local(FILE), stop_before_pixels=True)
    frame = (
        f"/dicomweb/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
        f"/instances/{ds.SOPInstanceUID}/frames/1"
    )
    assert client.get(frame, headers={"Range": "bytes=0-99"}).status_code in (200, 206)
    assert client.get(f"/dicomweb/aets/{OTHER}/studies").status_code == 403
    out = client.post("/ui/logout", follow_redirects=False)
    assert out.status_code == 303
    client.cookies.clear()
    assert client.get("/app-config.js").status_code == 401


def test_external_redirects_after_login_are_refused(node: Node) -> None:
    login = node.client.post(
        "/ui/login",
        data={"name": "oper", "password": PASSWORD, "next": "//evil.example/"},
        follow_redirects=False,
    )
    assert login.headers["location"] == "/ui/"
    home = node.client.get("/ui/")
    assert home.status_code == 200 and "oper (operator)" in home.text and "Log out" in home.text


def _loopback_get(node: Node, path: str, host: str) -> int:
    async def call() -> int:
        transport = httpx.ASGITransport(app=create_app(node.archive), client=(host, 1234))
        async with httpx.AsyncClient(transport=transport, base_url="http://node") as client:
            return (await client.get(path)).status_code

    return asyncio.run(call())


def test_loopback_passes_only_when_remote_mode(node: Node) -> None:
    assert _loopback_get(node, "/admin/queue", "127.0.0.1") == 200
    assert _loopback_get(node, "/admin/queue", "::1") == 200
    assert _loopback_get(node, "/admin/queue", "10.1.2.3") == 401
    node.archive.settings.http_auth = "always"
    assert _loopback_get(node, "/admin/queue", "127.0.0.1") == 401
    node.archive.settings.http_auth = "never"
    assert _loopback_get(node, "/admin/queue", "10.1.2.3") == 200
