"""Who calls, and may they: one ASGI middleware in front of every route of the node."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import quote, unquote

from anyio import to_thread
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from hounsfield.archive.context import Archive
from hounsfield.audit.events import MINOR_FAILURE, Actor
from hounsfield.audit.trail import record
from hounsfield.auth import sessions, tokens
from hounsfield.auth.oidc import OidcVerifier, looks_like_jwt
from hounsfield.auth.policy import LOOPBACK, Permission, Principal
from hounsfield.auth.recent import RECENT
from hounsfield.errors import ArchiveError, Forbidden, Unauthenticated
from hounsfield.web.errors import error_response

OPEN_PATHS = ("/health", "/metrics", "/ui/login", "/ui/logout")
OPEN_PREFIXES = ("/ui/static/",)
LOGIN = "/ui/login"
TOKEN, SESSION = "token", "session"  # kinds of credential kept in `auth.recent`


@dataclass(frozen=True)
class Need:
    """What a request needs: a permission, and the partition it addresses (None: a view of
    every partition); `tenant` False for what holds no tenant's data (the viewer's files)."""

    permission: Permission
    partition: str | None
    tenant: bool = True


def is_loopback(host: str | None) -> bool:
    """Whether a client address is on the loopback."""
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def need_of(method: str, path: str, default_partition: str) -> Need:
    """The permission and partition a request needs, from its method and path."""
    read = method in ("GET", "HEAD")
    parts = [unquote(p) for p in path.split("/")]
    if path == "/dicomweb" or path.startswith("/dicomweb/"):
        aet = parts[3] if len(parts) > 3 and parts[2] == "aets" else default_partition
        verb: Permission = "dicomweb.read" if read else "dicomweb.store"
        return Need("dicomweb.delete" if method == "DELETE" else verb, aet)
    if path.startswith("/admin/users") or path.startswith("/admin/tokens"):
        return Need("users", None)
    if path.startswith(("/admin/audit", "/ui/audit")):
        return Need("audit", None)
    if path.startswith("/admin/studies/") and len(parts) > 3:
        return Need("admin.read" if read else "admin.write", parts[3])
    if path.startswith("/admin") or path in ("/docs", "/redoc", "/openapi.json"):
        return Need("admin.read" if read else "admin.write", None)
    if path.startswith("/ui/studies/") and len(parts) > 3:
        return Need("ui.read" if read else "ui.write", parts[3])
    if path == "/ui" or path.startswith("/ui/"):
        return Need("ui.read" if read else "ui.write", None)
    return Need("viewer", None, tenant=False)


class Gate:
    """Identifies the caller of each request and refuses what their role or partitions
    do not allow; loopback callers pass unauthenticated when `http_auth` is "remote"."""

    def __init__(self, app: ASGIApp, archive: Archive) -> None:
        self.app, self.archive = app, archive
        self.mode = archive.settings.http_auth
        self.oidc = OidcVerifier(archive.settings)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.mode == "never" or _open(scope):
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        if request.method == "OPTIONS":  # CORS preflights carry no credentials
            await self.app(scope, receive, send)
            return
        try:
            recent = self._recent(request)
            if recent is not None:  # verified a moment ago: nothing to look up
                principal = self.permit(request, recent)
            elif request.headers.get("authorization") or request.cookies.get(sessions.COOKIE):
                principal = await to_thread.run_sync(self.authorise, request)
            else:  # nothing to look up: no thread (and no wait for one)
                principal = self.authorise(request)
        except ArchiveError as exc:
            self._audit_refusal(request, exc)
            await _refusal(request, exc)(scope, receive, send)
            return
        scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, send)

    def _audit_refusal(self, request: Request, exc: ArchiveError) -> None:
        """A security alert for refused rights and for a bearer token that did not hold (a
        request with none, or with an expired session cookie, is only asked to log in)."""
        if isinstance(exc, Unauthenticated) and not request.headers.get("authorization"):
            return
        client = request.client
        actor = Actor(
            getattr(exc, "user", "") or "unknown",
            "DICOMweb" if request.url.path.startswith("/dicomweb") else "HTTP",
            host=client.host if client else "",
        )
        detail = f"{request.method} {request.url.path}: {exc.message}"
        record(
            self.archive.engine,
            "security-alert",
            actor=actor,
            outcome=MINOR_FAILURE,
            detail=detail[:512],
        )

    def authorise(self, request: Request) -> Principal:
        """The caller, when allowed; Unauthenticated or Forbidden otherwise."""
        return self.permit(request, self.identify(request))

    def permit(self, request: Request, principal: Principal) -> Principal:
        """`principal`, when their role and partitions allow the request; Forbidden
        otherwise."""
        need = need_of(request.method, request.url.path, self.archive.default_partition)
        if not principal.may(need.permission):
            why = f"{principal.name} ({principal.role}) may not {need.permission}"
            raise _refused(Forbidden(why), principal.name)
        if need.tenant and not principal.reaches(need.partition):
            where = need.partition or "every partition"
            raise _refused(Forbidden(f"{principal.name} may not reach {where}"), principal.name)
        return principal

    def identify(self, request: Request) -> Principal:
        """The caller from a bearer token or a web session cookie (or the loopback)."""
        engine, local = self.archive.engine, self._loopback_open(request)
        scheme, _, credential = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and credential.strip():
            return self._bearer(credential.strip())
        cookie = request.cookies.get(sessions.COOKIE)
        if cookie:
            owner = sessions.verify(engine, cookie)
            if owner is not None:
                principal = owner.principal("session")
                RECENT.put(SESSION, cookie, principal)
                return principal
        if local:
            return LOOPBACK
        raise Unauthenticated("authentication required: log in or send a bearer token")

    @staticmethod
    def _recent(request: Request) -> Principal | None:
        """Who the request's API token or session cookie was verified as a moment ago (see
        `auth.recent`); None when it was not, or the request carries another credential."""
        scheme, _, credential = request.headers.get("authorization", "").partition(" ")
        credential = credential.strip()
        if scheme.lower() == "bearer" and credential:
            return RECENT.get(TOKEN, credential) if credential.startswith(tokens.PREFIX) else None
        cookie = request.cookies.get(sessions.COOKIE)
        return RECENT.get(SESSION, cookie) if cookie else None

    def _loopback_open(self, request: Request) -> bool:
        client = request.client
        return self.mode == "remote" and is_loopback(client.host if client else None)

    def _bearer(self, credential: str) -> Principal:
        if credential.startswith(tokens.PREFIX):
            owner = tokens.verify(self.archive.engine, credential)
            if owner is None:
                raise Unauthenticated("API token unknown, expired or revoked")
            principal = owner.principal("token")
            RECENT.put(TOKEN, credential, principal)
            return principal
        if looks_like_jwt(credential):
            return self.oidc.verify(credential)
        raise Unauthenticated("bearer token not recognised")


def _refused(exc: Forbidden, user: str) -> Forbidden:
    """`exc`, naming the user it refuses (for the audit trail)."""
    exc.user = user  # type: ignore[attr-defined]
    return exc


def _open(scope: Scope) -> bool:
    path = scope["path"]
    return path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)


def _refusal(request: Request, exc: ArchiveError) -> Response:
    """A 401 for a browser page becomes a redirect to the login page."""
    page = "text/html" in request.headers.get("accept", "")
    if isinstance(exc, Unauthenticated) and page and request.method in ("GET", "HEAD"):
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"{LOGIN}?next={quote(target, safe='')}", status_code=303)
    response = error_response(exc)
    if isinstance(exc, Unauthenticated) and request.headers.get("HX-Request") == "true":
        response.headers["HX-Redirect"] = LOGIN  # htmx: an expired login reloads the page
    return response


def principal_of(request: Request) -> Principal:
    """The caller the gate admitted (the loopback when the gate is open)."""
    found = request.scope.get("state", {}).get("principal")
    return found if isinstance(found, Principal) else LOOPBACK
