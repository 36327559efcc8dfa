"""``python -m infra.lakefs_server``: run the embedded server from LOCKGATE_EMBEDDED_LAKEFS_* settings."""

from infra.settings import EmbeddedLakeFSSettings

from .server import run_server

if __name__ == "__main__":
    run_server(EmbeddedLakeFSSettings())
