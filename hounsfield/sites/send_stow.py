"""Forward stored objects by STOW-RS: batches of stored files posted as they are on disk."""

from __future__ import annotations

import logging
import ssl
import threading
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import httpx

from hounsfield.archive.query import Located
from hounsfield.dicomnet.tls import client_context
from hounsfield.errors import PeerError, PeerTimeout, PeerUnreachable
from hounsfield.settings import Settings
from hounsfield.sites.devices import Device
from hounsfield.sites.links import RateCap
from hounsfield.sites.send_dimse import Acked, Refused

log = logging.getLogger(__name__)
BATCH_BYTES = 16 * 1024 * 1024
BATCH_OBJECTS = 200
CHUNK = 256 * 1024
REFERENCED_SOP = "00081199"
FAILED_SOP = "00081198"
SOP_INSTANCE = "00081155"


def batches(objects: Sequence[Located]) -> Iterator[list[Located]]:
    """The objects in order, in requests of at most BATCH_OBJECTS and about BATCH_BYTES."""
    group: list[Located] = []
    size = 0
    for obj in objects:
        if group and (size + obj.size > BATCH_BYTES or len(group) >= BATCH_OBJECTS):
            yield group
            group, size = [], 0
        group.append(obj)
        size += obj.size
    if group:
        yield group


def send(
    settings: Settings,
    device: Device,
    objects: Sequence[Located],
    on_acked: Acked,
    *,
    cap: RateCap | None = None,
    links: int = 1,
) -> None:
    """POST the objects to `{url}/studies` in batches, `links` requests at once; every
    batch's stored objects go to `on_acked`; objects the peer failed raise `Refused` at the
    end, a transport failure a PeerError at once."""
    groups = list(batches(objects))
    refused: list[str] = []
    errors: list[BaseException] = []
    timeout = httpx.Timeout(
        settings.dimse_timeout, connect=settings.connect_timeout, pool=settings.connect_timeout
    )
    verify: ssl.SSLContext | bool = True
    try:  # https: the peer's certificate checked against the node's CA
        if device.url.startswith("https://"):
            verify = client_context(settings)
    except (OSError, ValueError) as exc:
        raise PeerUnreachable(f"{device.url}: cannot set up TLS: {exc}") from exc
    with httpx.Client(timeout=timeout, verify=verify) as client:

        def run(share: list[list[Located]]) -> None:
            try:
                for group in share:
                    refused.extend(_post(client, device, group, on_acked, cap))
            except BaseException as exc:
                errors.append(exc)

        workers = max(1, min(links, len(groups)))
        threads = [
            threading.Thread(target=run, args=(groups[n::workers],), name=f"stow-{n}")
            for n in range(workers)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    if errors:
        raise errors[0]
    if refused:
        raise Refused(
            f"{device.ae_title} refused {len(refused)} of {len(objects)} objects: "
            + "; ".join(refused[:3])
        )


def _post(
    client: httpx.Client,
    device: Device,
    group: list[Located],
    on_acked: Acked,
    cap: RateCap | None,
) -> list[str]:
    boundary = uuid.uuid4().hex
    url = device.url.rstrip("/") + "/studies"
    headers = {
        "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}',
        "Accept": "application/dicom+json",
    }
    try:
        response = client.post(url, content=_body(group, boundary, cap), headers=headers)
    except httpx.TimeoutException as exc:
        raise PeerTimeout(f"{url}: {exc}", "HTTP") from exc
    except httpx.TransportError as exc:
        raise PeerUnreachable(f"{url}: {exc}") from exc
    if response.status_code not in (200, 202, 409):
        raise PeerError(f"{url} answered {response.status_code}: {response.text[:200]}")
    failed = _failed(response)
    if response.status_code == 409 and not failed:
        failed = {o.sop_instance for o in group}
    on_acked([(o.sop_class, o.sop_instance) for o in group if o.sop_instance not in failed])
    return [f"{uid}: failed by STOW-RS ({response.status_code})" for uid in sorted(failed)]


def _body(group: list[Located], boundary: str, cap: RateCap | None) -> Iterator[bytes]:
    for obj in group:
        yield f"\r\n--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
        with open(obj.readable(), "rb") as fh:  # the mirror's copy when the primary is gone
            while chunk := fh.read(CHUNK):
                if cap is not None:
                    cap.spend(len(chunk))
                yield chunk
    yield f"\r\n--{boundary}--\r\n".encode()


def _failed(response: httpx.Response) -> set[str]:
    """The SOP Instance UIDs the response lists as failed (JSON answers; others: none)."""
    try:
        body: Any = response.json()
    except ValueError:
        return set()
    if isinstance(body, list):
        body = body[0] if body else {}
    items = (body.get(FAILED_SOP) or {}).get("Value") or []
    out: set[str] = set()
    for item in items:
        values = (item.get(SOP_INSTANCE) or {}).get("Value") or []
        out.update(str(v) for v in values)
    return out
