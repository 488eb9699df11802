"""The HTTP server's thread limit comes from the settings: `http_threads` for the node's own
requests and `http_remote_threads` for reads through virtual partitions."""

from __future__ import annotations

from pathlib import Path

import anyio
import anyio.to_thread

from hounsfield.web.app import create_app
from tests.conftest import make_archive, make_settings


def test_the_app_runs_blocking_work_on_http_threads_threads(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'index.db'}"
    archive = make_archive(make_settings(tmp_path, url, http_threads=3, http_remote_threads=2))
    app = create_app(archive)

    async def serve() -> tuple[int, int]:
        before = anyio.to_thread.current_default_thread_limiter().total_tokens
        async with app.router.lifespan_context(app):
            return before, anyio.to_thread.current_default_thread_limiter().total_tokens

    try:
        assert anyio.run(serve) == (40, 5)
    finally:
        archive.close()
