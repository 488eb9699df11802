"""Devices (add, remove, C-ECHO) and the state of the forwards to them (retry the failed)."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse

from hounsfield.archive.context import Archive
from hounsfield.errors import ArchiveError
from hounsfield.sites.devices import (
    Device,
    add_device,
    find_device,
    list_devices,
    remove_device,
)
from hounsfield.sites.forward import retry_failed
from hounsfield.sites.forward_state import STATES, list_forwards
from hounsfield.web.ui.render import page


def routes(archive: Archive) -> APIRouter:
    """The devices page of `archive`."""
    router = APIRouter()

    def table(request: Request, notice: str = "") -> HTMLResponse:
        return page(request, "devices_table.html", devices=list_devices(archive), notice=notice)

    @router.get("/devices", response_class=HTMLResponse)
    def get_devices(request: Request, state: str = "", destination: str = "") -> HTMLResponse:
        forwards = list_forwards(
            archive.engine, destination=destination or None, state=state or None, limit=200
        )
        return page(
            request,
            "devices.html",
            devices=list_devices(archive),
            forwards=forwards,
            states=STATES,
            state=state,
            destination=destination,
        )

    @router.post("/devices", response_class=HTMLResponse)
    def post_device(
        request: Request,
        ae_title: Annotated[str, Form()],
        host: Annotated[str, Form()],
        port: Annotated[int, Form()],
        description: Annotated[str, Form()] = "",
        alternates: Annotated[str, Form()] = "",
        tls: Annotated[bool, Form()] = False,
    ) -> HTMLResponse:
        title = ae_title.strip()
        # An update keeps what the form does not show (forwarding options).
        known = find_device(archive, title) or Device(title, host.strip(), port)
        wanted = replace(
            known,
            host=host.strip(),
            port=port,
            description=description,
            alternates=tuple(a for a in alternates.replace(",", " ").split() if a),
            tls=tls,
        )
        new = add_device(archive, wanted)
        return table(request, f"{'added' if new else 'updated'} {title}")

    @router.post("/devices/{ae_title}/remove", response_class=HTMLResponse)
    def post_remove(request: Request, ae_title: str) -> HTMLResponse:
        remove_device(archive, ae_title)
        return table(request, f"removed {ae_title}")

    @router.post("/devices/{ae_title}/echo", response_class=HTMLResponse)
    def post_echo(request: Request, ae_title: str) -> HTMLResponse:
        from hounsfield.sites.peers import echo  # pynetdicom only when echoing

        try:
            result = echo(archive, ae_title)
        except ArchiveError as exc:
            return page(request, "echo.html", ok=False, text=f"C-ECHO failed: {exc.message}")
        where = f"{result.ae_title} at {result.host}:{result.port}"
        if result.status != 0:
            return page(
                request, "echo.html", ok=False, text=f"{where}: status 0x{result.status:04X}"
            )
        ms = result.seconds * 1000
        return page(request, "echo.html", ok=True, text=f"{where}: success in {ms:.0f} ms")

    @router.post("/forwards/{pk}/retry", response_class=HTMLResponse)
    def post_retry_forward(request: Request, pk: int) -> HTMLResponse:
        retry_failed(archive, pk=pk)
        return page(request, "notice.html", notice=f"forward {pk} queued again")

    return router
