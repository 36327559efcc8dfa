"""The ``lockgate`` Typer app, its command groups, its consoles, and the one place errors become exits.

Every command runs inside ``LockgateGroup.invoke``: an error lockgate anticipated (any ``LockgateError``,
invalid settings or parameters, a service that does not answer) is printed as one line naming what to
do and exits with its code (2: your input or settings; 1: anything else), never as a traceback.
"""

from __future__ import annotations

from typing import Any, NoReturn

import typer
from rich.console import Console
from typer.core import TyperGroup

console = Console()
error_console = Console(stderr=True)


def fail(message: str, *, code: int = 1) -> NoReturn:
    """Print ``error: message`` on standard error and exit with ``code``."""
    error_console.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


def explain(error: BaseException) -> tuple[str, int] | None:
    """The one-line message and exit code of an anticipated error; ``None`` for a real bug."""
    from pydantic import ValidationError

    from infra.errors import LockgateError

    if isinstance(error, LockgateError):
        return str(error) or type(error).__name__, error.exit_code
    if isinstance(error, ValidationError):
        return f"invalid {_title(error)}: {validation_problems(error)}", 2
    unreachable = _unreachable(error)
    if unreachable is not None:
        return unreachable, 1
    return None


def validation_problems(error: Any) -> str:
    """A pydantic ``ValidationError`` field by field, without the values (they may be secrets)."""
    problems = []
    for problem in error.errors(include_input=False, include_url=False):
        if problem["type"] == "default_factory_not_called":
            continue  # a default derived from a field refused above (e.g. a model name from its dataset)
        field = ".".join(str(part) for part in problem["loc"]) or "settings"
        problems.append(f"{field}: {problem['msg'].removeprefix('Value error, ')}")
    return "; ".join(problems)


def _title(error: Any) -> str:
    from infra.settings import ALL_SETTINGS

    for settings in ALL_SETTINGS:
        if settings.model_config.get("title") == error.title:
            return f"{error.title} ({settings.model_config.get('env_prefix', '')}*)"
    return f"parameters ({error.title})"


def _unreachable(error: BaseException) -> str | None:
    """A connection that failed below lockgate's own translation (a stray client call)."""
    import httpx
    import urllib3.exceptions

    if isinstance(error, urllib3.exceptions.HTTPError | httpx.TransportError | ConnectionRefusedError):
        return (
            f"a service did not answer ({type(error).__name__}: {error}); check the endpoints "
            "`lockgate settings` shows"
        )
    return None


class LockgateGroup(TyperGroup):
    """The command group that maps anticipated errors to a one-line message and an exit code."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort):
            raise
        except KeyboardInterrupt:
            error_console.print("interrupted", highlight=False)
            raise typer.Exit(130) from None
        except Exception as error:
            explained = explain(error)
            if explained is None:
                raise
            message, code = explained
            fail(message, code=code)


app = typer.Typer(
    name="lockgate",
    cls=LockgateGroup,
    help="lockgate: a production ML loop where data moves on only when its contract gate opens.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
    pretty_exceptions_show_locals=False,  # locals may hold credentials
)
lakefs_app = typer.Typer(
    help="The embedded lakeFS-API-compatible server (versioned data without Docker).",
    no_args_is_help=True,
)
models_app = typer.Typer(help="The model registry (lakeFS repository lockgate-models).", no_args_is_help=True)
app.add_typer(lakefs_app, name="lakefs", rich_help_panel="Setup")
app.add_typer(models_app, name="models", rich_help_panel="Models")


@app.callback()
def _defaults() -> None:
    from infra.processes import set_environment_defaults

    # A temporary local Prefect server must not try to phone home from an offline machine.
    set_environment_defaults({"PREFECT_SERVER_ANALYTICS_ENABLED": "false"})
