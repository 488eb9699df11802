"""The audit records of the HTTP edge: each request runs as its caller, and DICOMweb queries
and retrievals are recorded with who asked, from where, for which study, and the outcome."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs, unquote

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hounsfield.archive.context import Archive
from hounsfield.audit.events import MINOR_FAILURE, SUCCESS, Actor, acting
from hounsfield.audit.trail import record
from hounsfield.auth.policy import Principal

COLLECTIONS = ("studies", "series", "instances")
QUERY_AT_MOST = 512


@dataclass(frozen=True)
class Audited:
    """What one request is, for the audit trail."""

    kind: str  # query, retrieve
    partition: str
    study_uid: str
    detail: str


def classify(method: str, path: str, query: str, default_partition: str) -> Audited | None:
    """The audit record a DICOMweb read makes (stores and deletes are recorded by the
    archive itself); None for every other request."""
    if method not in ("GET", "HEAD") or not (path == "/dicomweb" or path.startswith("/dicomweb/")):
        return None
    parts = [unquote(p) for p in path.split("/")[2:] if p]
    partition = default_partition
    if len(parts) >= 2 and parts[0] == "aets":
        partition, parts = parts[1], parts[2:]
    if not parts or parts[0] == "wado":  # WADO-URI, at the root too: ?studyUID=...
        if not parts and "requestType=WADO" not in query:
            return None
        study = (parse_qs(query).get("studyUID") or [""])[0]
        return Audited("retrieve", partition, study, "WADO-URI requests")
    if parts[0] not in COLLECTIONS:
        return None
    study = parts[1] if parts[0] == "studies" and len(parts) > 1 else ""
    if parts[-1] in COLLECTIONS:
        return Audited("query", partition, study, f"QIDO-RS {parts[-1]}?{query}"[:QUERY_AT_MOST])
    return Audited("retrieve", partition, study, "WADO-RS requests")


def actor_of(scope: Scope, principal: Principal | None) -> Actor:
    """The caller of a request: the user the gate admitted (else "anonymous") and address."""
    client = scope.get("client")
    host = str(client[0]) if client else ""
    name = principal.name if principal is not None else "anonymous"
    protocol = "DICOMweb" if scope["path"].startswith("/dicomweb") else "HTTP"
    return Actor(name, protocol, host=host)


class AuditTrailMiddleware:
    """Runs each request as its caller (so what the archive records names them) and records
    DICOMweb queries and retrievals once answered."""

    def __init__(self, app: ASGIApp, archive: Archive) -> None:
        self.app, self.archive = app, archive

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        found = scope.get("state", {}).get("principal")
        actor = actor_of(scope, found if isinstance(found, Principal) else None)
        query = scope.get("query_string", b"").decode("latin-1")
        what = classify(scope["method"], scope["path"], query, self.archive.default_partition)
        status = [500]

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
            await send(message)

        with acting(actor):
            try:
                await self.app(scope, receive, sending if what else send)
            finally:
                if what is not None:
                    self._record(actor, what, status[0])

    def _record(self, actor: Actor, what: Audited, status: int) -> None:
        if status == 304:
            return  # the caller holds it already: nothing was transferred
        outcome = SUCCESS if status < 400 else MINOR_FAILURE
        detail = what.detail if status < 400 else f"{what.detail} (HTTP {status})"
        record(
            self.archive.engine,
            what.kind,
            actor=actor,
            coalesce=what.kind == "retrieve",
            outcome=outcome,
            partition=what.partition,
            study_uid=what.study_uid,
            count=1,
            detail=detail,
        )
