"""The ``lockgate`` command line, one module per command group.

==========================  =====================================================================
``flows.cli.app``           the Typer app, its consoles, and the one handler that turns anticipated
                            errors into a one-line message and an exit code
``flows.cli.options``       options shared by several commands; options beat the environment
``flows.cli.context``       the lakeFS connection (configured or embedded) and the publisher
``flows.cli.output``        how results are shown (tables, panels, trees)
``flows.cli.settings``      ``version``, ``settings``
``flows.cli.lakefs``        ``lakefs serve``
``flows.cli.demo``          ``demo``
``flows.cli.init``          ``init`` (scaffold a dataset package from a data file)
``flows.cli.data``          ``datasets``, ``generate``, ``ingest``, ``labels``, ``data log``,
                            ``data show``, ``data diff``
``flows.cli.models``        ``train``, ``models list``, ``models show``, ``models alias``
``flows.cli.serving``       ``serve``, ``deploy``, ``predict``
``flows.cli.loop``          ``monitor``, ``retrain``
``flows.cli.reports``       ``report show``, ``report download``
``flows.cli.automation``    ``relay``, ``worker``
``flows.cli.stack``         ``up``, ``down``, ``status``
==========================  =====================================================================

Commands call the same ``run_*`` stages the Prefect flows call, with the clients they build; heavy
libraries are imported inside the commands, so ``--help`` is instant.
"""

from __future__ import annotations

# Registration order is the order of the help's panels: start here, then the loop's stages in order.
# isort: off
from flows.cli import demo, stack  # noqa: F401
from flows.cli import init, data, models, serving, loop, reports, automation  # noqa: F401
from flows.cli import settings, lakefs, retention  # noqa: F401

# isort: on
from flows.cli.app import app


def main() -> None:
    """Entry point for ``python -m flows.cli``."""
    app(prog_name="lockgate")


__all__ = ["app", "main"]
