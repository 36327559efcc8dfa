"""Serving an ASGI app (the webhook relay) on a real loopback port, for tests that need a real URL
(lakeFS action webhooks call it over HTTP)."""

from __future__ import annotations

import contextlib
import contextvars
import threading
import time
from collections.abc import Iterator
from typing import Any

import anyio
import httpx

from infra.processes import free_port


@contextlib.contextmanager
def serve_on_port(app: Any, *, name: str = "asgi-app", startup_timeout: float = 15.0) -> Iterator[str]:
    """Run ``app`` with uvicorn in a background thread; yield its ``http://127.0.0.1:<port>`` URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", access_log=False, lifespan="off", ws="none"
        )
    )
    # Run in a copy of this context, so the thread sees the Prefect harness settings.
    thread = threading.Thread(
        target=contextvars.copy_context().run, args=(server.run,), name=name, daemon=True
    )
    thread.start()
    try:
        deadline = time.monotonic() + startup_timeout
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, f"{name} did not start"
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


class RelayClient:
    """A synchronous client calling the app in-process over httpx's ASGI transport (starlette's
    ``TestClient`` warns that its httpx backend is deprecated)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        async def call() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://relay") as client:
                return await client.request(method, path, **kwargs)

        return anyio.run(call)

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", path, **kwargs)
