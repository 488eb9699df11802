"""A real HTTP server over an archive for the browser tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from hounsfield.archive.context import Archive
from hounsfield.web.app import create_app
from tests.live_http import live


@contextmanager
def serving(archive: Archive) -> Iterator[str]:
    """The base URL of the whole HTTP application, served until the block ends."""
    with live(create_app(archive)) as url:
        yield url
