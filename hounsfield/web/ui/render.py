"""The templates of the admin pages and the filters they share."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates
from pydicom.uid import UID

TEMPLATES = Jinja2Templates(directory=Path(__file__).parent / "templates")


def human_size(n: int | None) -> str:
    """Bytes as B, kB, MB, GB or TB (decimal)."""
    if n is None:
        return "-"
    size = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(size) < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{n} B"


def when(value: datetime | None) -> str:
    """A time in UTC to the second, or "-"."""
    if value is None:
        return "-"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def ago(value: datetime | None) -> str:
    """How long ago (or, negative, how far ahead) a time is, in words."""
    if value is None:
        return "-"
    seconds = int((datetime.now(UTC) - value).total_seconds())
    ahead, seconds = seconds < 0, abs(seconds)
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min")):
        if seconds >= size:
            text = f"{seconds // size} {unit}"
            break
    else:
        text = f"{seconds} s"
    return f"in {text}" if ahead else f"{text} ago"


def dicom_date(value: str | None) -> str:
    """YYYYMMDD as YYYY-MM-DD (anything else as it is)."""
    if value and len(value) == 8 and value.isdigit():
        return f"{value[:4]}-{value[4:6]}-{value[6:]}"
    return value or ""


def compression(syntax: str) -> str:
    """A transfer syntax as its compression: "none" for native ones, else its name."""
    uid = UID(syntax)
    if not uid.is_transfer_syntax:
        return syntax
    return uid.name if uid.is_compressed else f"none ({uid.name})"


TEMPLATES.env.filters.update(
    human_size=human_size, when=when, ago=ago, dicom_date=dicom_date, compression=compression
)


def page(request: Request, name: str, **context: Any) -> HTMLResponse:
    """A template rendered for `request` (a whole page, or a fragment for htmx)."""
    return TEMPLATES.TemplateResponse(request, name, context)


def wants_fragment(request: Request, target: str) -> bool:
    """Whether htmx asks to refresh the element with id `target` (not a whole page, as it
    does when it restores history)."""
    headers = request.headers
    return (
        headers.get("HX-Request") == "true"
        and headers.get("HX-Target") == target
        and headers.get("HX-History-Restore-Request") != "true"
    )


def redirect(location: str) -> Response:
    """Tell htmx to load another page (after an action that removed what was shown)."""
    return Response(status_code=204, headers={"HX-Redirect": location})
