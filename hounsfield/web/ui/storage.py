"""Filesystems by tier: usage bars against their watermarks, flags and mirrors."""

from __future__ import annotations

from itertools import groupby

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from hounsfield.archive.context import Archive
from hounsfield.storage.tiers import list_filesystems
from hounsfield.web.ui.render import page


def routes(archive: Archive) -> APIRouter:
    """The filesystems page of `archive`."""
    router = APIRouter()

    @router.get("/filesystems", response_class=HTMLResponse)
    def get_filesystems(request: Request) -> HTMLResponse:
        usages = sorted(list_filesystems(archive.engine), key=lambda u: (u.tier, u.pk))
        tiers = [(tier, list(group)) for tier, group in groupby(usages, key=lambda u: u.tier)]
        return page(request, "filesystems.html", tiers=tiers)

    return router
