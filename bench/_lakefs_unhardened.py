"""The embedded lakeFS server with this issue's hardening taken out, as ``bench_hardening.py``'s
baseline only: blocks published by replacing (``os.replace``, a clobber), uvicorn's plain HTTP
protocol (no request-head limit or timeout), no JSON body limit. Never run it for data.

Run by the benchmark as ``python bench/_lakefs_unhardened.py`` with LOCKGATE_EMBEDDED_LAKEFS_* set.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from infra.lakefs_server import app, blockstore, server  # noqa: E402
from infra.settings import EmbeddedLakeFSSettings  # noqa: E402


def _clobbering_writer(self: blockstore.LocalBlockStore, address: str) -> blockstore.BlockWriter:
    target = self._path(address)

    def publish(tmp_path: Path) -> None:
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.replace(tmp_path, target)

    return blockstore.BlockWriter(self.tmp_dir, publish)


if __name__ == "__main__":
    blockstore.LocalBlockStore.writer = _clobbering_writer  # type: ignore[method-assign]
    app.MAX_JSON_BODY = 1 << 62
    server._protocol = lambda **_: "httptools"  # uvicorn's own protocol, unbounded heads
    server.run_server(EmbeddedLakeFSSettings())
