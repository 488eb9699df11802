"""WADO-RS through a virtual partition: stored copies at once, fetched ones as they arrive."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from fastapi.responses import StreamingResponse

from hounsfield.archive.context import Archive
from hounsfield.archive.query import Located
from hounsfield.catalog.partitions import Partition
from hounsfield.dicomnet.identifiers import retrieve
from hounsfield.errors import NotFound
from hounsfield.imaging.transcode import choose
from hounsfield.sites.virtual_fetch import Fetch, Missing, sources
from hounsfield.web.batched import streamed
from hounsfield.web.dicomweb import multipart
from hounsfield.web.dicomweb.accept import parse_accept
from hounsfield.web.dicomweb.common import uids
from hounsfield.web.dicomweb.streamed import DICOM, accepted_syntaxes, parts, plan

log = logging.getLogger(__name__)


def retrieve_response(
    archive: Archive,
    part: Partition,
    study: str,
    series: str | None,
    sop: str | None,
    accept: str | None,
) -> StreamingResponse:
    """The streamed multipart answer: what a local member holds first (406 up front when it
    cannot be served in an accepted syntax), then each fetched object as it arrives."""
    study, series, sop = uids(study, series, sop)
    found = sources(archive, retrieve(study, series, sop), part)
    if not len(found):
        raise NotFound(f"no member holds {'/'.join(u for u in (study, series, sop) if u)}")
    accepted = accepted_syntaxes(parse_accept(accept))
    local = plan(found.local, accepted)
    fetch = Fetch(archive, part, found.remote)

    def planned() -> Iterator[tuple[Located, str | None]]:
        try:
            yield from local
            for got in fetch:
                if isinstance(got, Missing):
                    log.warning(
                        "WADO-RS %s: %s not fetched: %s",
                        part.ae_title,
                        got.sop_instance,
                        got.reason,
                    )
                    continue
                try:
                    yield got, choose(got.transfer_syntax, accepted)
                except Exception as exc:
                    log.warning("WADO-RS %s: %s left out: %s", part.ae_title, got.sop_instance, exc)
        finally:
            fetch.close()

    boundary = multipart.new_boundary()
    # One piece per trip: a fetched object goes out as soon as it has arrived.
    return streamed(
        multipart.write(parts(planned()), boundary),
        multipart.content_type(DICOM, boundary),
        size=0,
    )
