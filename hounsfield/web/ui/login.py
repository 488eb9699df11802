"""The login page of the admin pages and the viewer: a web session in an HttpOnly cookie."""

from __future__ import annotations

from typing import Annotated

from anyio import to_thread
from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from hounsfield.archive.context import Archive
from hounsfield.audit.events import MINOR_FAILURE, SUCCESS, Actor
from hounsfield.audit.trail import record
from hounsfield.auth import sessions
from hounsfield.auth.throttle import LoginThrottle
from hounsfield.web.ui.render import TEMPLATES

HOME = "/ui/"


def safe_next(target: str) -> str:
    """Where to go after logging in: a path on this node only (never another site)."""
    if target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return HOME


def routes(archive: Archive) -> APIRouter:
    """GET and POST /ui/login, POST /ui/logout."""
    router = APIRouter(prefix="/ui", include_in_schema=False)
    hours = archive.settings.web_session_hours
    throttle = LoginThrottle(
        archive.engine, archive.settings.login_max_failures, archive.settings.login_lock_seconds
    )

    @router.get("/login", response_class=HTMLResponse)
    def login_page(request: Request, next: str = HOME) -> HTMLResponse:
        context = {"next": safe_next(next), "message": ""}
        return TEMPLATES.TemplateResponse(request, "login.html", context)

    @router.post("/login")
    async def login(
        request: Request,
        name: Annotated[str, Form()],
        password: Annotated[str, Form()],
        next: Annotated[str, Form()] = HOME,
    ) -> Response:
        host = request.client.host if request.client else ""
        actor = Actor(name, "HTTP", host=host)
        wait = await to_thread.run_sync(throttle.locked_for, name, host)
        if wait > 0:
            why = f"too many failed logins: locked for {wait:.0f} more seconds"
            record(
                archive.engine,
                "security-alert",
                actor=actor,
                outcome=MINOR_FAILURE,
                detail=f"login refused, {why}",
            )
            minutes = max(1, round(wait / 60))
            message = f"Too many failed logins. Try again in {minutes} minutes."
            context = {"next": safe_next(next), "message": message}
            return TEMPLATES.TemplateResponse(request, "login.html", context, status_code=429)
        cookie = await to_thread.run_sync(sessions.login, archive.engine, name, password, hours)
        counted = throttle.failed if cookie is None else throttle.succeeded
        await to_thread.run_sync(counted, name, host)
        kind = "login" if cookie is not None else "login-failed"
        record(
            archive.engine,
            kind,
            actor=actor,
            outcome=SUCCESS if cookie else MINOR_FAILURE,
            detail="web session" if cookie else "wrong user name or password",
        )
        if cookie is None:
            context = {"next": safe_next(next), "message": "Wrong user name or password."}
            return TEMPLATES.TemplateResponse(request, "login.html", context, status_code=401)
        response = RedirectResponse(safe_next(next), status_code=303)
        response.set_cookie(
            sessions.COOKIE,
            cookie,
            max_age=int(hours * 3600),
            path="/",
            httponly=True,
            samesite="lax",
            secure=request.url.scheme == "https",
        )
        return response

    @router.post("/logout")
    def logout(request: Request) -> Response:
        cookie = request.cookies.get(sessions.COOKIE)
        if cookie:
            owner = sessions.verify(archive.engine, cookie)
            sessions.logout(archive.engine, cookie)
            if owner is not None:
                host = request.client.host if request.client else ""
                record(
                    archive.engine,
                    "logout",
                    actor=Actor(owner.name, "HTTP", host=host),
                    detail="web session",
                )
        response = RedirectResponse("/ui/login", status_code=303)
        response.delete_cookie(sessions.COOKIE, path="/")
        return response

    return router
