"""The layering and the house rules, checked on the source itself (``README.md``, "Architecture").

Each test names the rule it keeps, so a change that breaks one says which.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("flows", "serving", "tasks", "contracts", "infra")
# What each layer may import from lockgate (dependencies point down; nothing imports flows).
ALLOWED = {
    "infra": {"infra"},
    "contracts": {"contracts", "infra"},
    "tasks": {"tasks", "contracts", "infra"},
    "serving": {"serving", "tasks", "contracts", "infra"},
    "flows": {"flows", "serving", "tasks", "contracts", "infra"},
}
MAX_LINES = 500
# The embedded lakeFS server's HTTP app: one route handler per lakeFS API operation, kept together so
# it reads side by side with the OpenAPI spec it implements.
LONG_MODULES = {"infra/lakefs_server/app.py"}
ENVIRONMENT_READERS = {"infra/settings/report.py", "infra/processes.py"}
LAKEFS_SDK_USERS = ("tasks/versioning/", "infra/clients.py", "infra/lakefs_server/launcher.py")


def sources() -> list[Path]:
    return sorted(path for package in PACKAGES for path in (ROOT / package).rglob("*.py"))


def relative(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def type_checking_lines(tree: ast.Module) -> set[int]:
    """Line numbers inside ``if TYPE_CHECKING:`` blocks (imports there are for annotations only)."""
    lines: set[int] = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.If)
            and getattr(node.test, "id", getattr(node.test, "attr", None)) == "TYPE_CHECKING"
        ):
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def imports(tree: ast.Module) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


@pytest.mark.parametrize("path", sources(), ids=relative)
def test_dependencies_point_down(path: Path) -> None:
    layer = relative(path).split("/")[0]
    tree = ast.parse(path.read_text())
    wrong = [
        f"line {line}: {module}"
        for line, module in imports(tree)
        if module.split(".")[0] in PACKAGES and module.split(".")[0] not in ALLOWED[layer]
    ]
    assert not wrong, f"{relative(path)} ({layer}) imports a layer above it: {wrong}"


@pytest.mark.parametrize("path", sources(), ids=relative)
def test_modules_stay_readable_in_size(path: Path) -> None:
    lines = len(path.read_text().splitlines())
    if relative(path) in LONG_MODULES:
        return
    assert lines <= MAX_LINES, (
        f"{relative(path)} has {lines} lines (> {MAX_LINES}): split it by responsibility"
    )


@pytest.mark.parametrize("path", sources(), ids=relative)
def test_only_the_settings_read_the_environment(path: Path) -> None:
    text = path.read_text()
    tree = ast.parse(text)
    used = [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and node.attr in ("environ", "getenv")
        and getattr(node.value, "id", "") == "os"
    ]
    if relative(path) in ENVIRONMENT_READERS or relative(path).startswith("infra/settings/"):
        return
    assert not used, f"{relative(path)} reads os.environ (lines {used}): add a settings field instead"


@pytest.mark.parametrize("path", sources(), ids=relative)
def test_lakefs_is_reached_through_the_versioning_gateway(path: Path) -> None:
    name = relative(path)
    if name.startswith(LAKEFS_SDK_USERS) or name.startswith("infra/lakefs_server/"):
        return
    tree = ast.parse(path.read_text())
    annotations_only = type_checking_lines(tree)
    runtime = [
        f"line {line}: {module}"
        for line, module in imports(tree)
        if module.split(".")[0] in ("lakefs", "lakefs_sdk") and line not in annotations_only
    ]
    assert not runtime, f"{name} uses the lakeFS SDK directly ({runtime}): go through tasks.versioning"


def flow_functions() -> list[tuple[str, ast.FunctionDef]]:
    found = []
    for path in sorted((ROOT / "flows").glob("*.py")):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.FunctionDef) and any(
                getattr(getattr(d, "func", d), "id", None) == "flow" for d in node.decorator_list
            ):
                found.append((relative(path), node))
    return found


@pytest.mark.parametrize("where, function", flow_functions(), ids=lambda value: getattr(value, "name", value))
def test_flow_bodies_hold_no_decisions(where: str, function: ast.FunctionDef) -> None:
    branching = [
        type(node).__name__
        for node in ast.walk(function)
        if isinstance(node, ast.If | ast.For | ast.While | ast.Try | ast.IfExp | ast.Match)
    ]
    assert not branching, f"{where}:{function.name} decides ({branching}): move the logic into its run_*"
    calls = [node for node in function.body if isinstance(node, ast.Return)]
    assert len(calls) == 1, f"{where}:{function.name} should return the result of one run_*"


def test_there_are_flows_to_check() -> None:
    assert {function.name for _, function in flow_functions()} == {
        "ingest_flow",
        "train_flow",
        "deploy_flow",
        "monitor_flow",
        "retrain_flow",
        "retention_flow",
    }


def project_modules() -> list[str]:
    names = []
    for package in PACKAGES:
        module = importlib.import_module(package)
        names += [
            info.name
            for info in pkgutil.walk_packages(module.__path__, f"{package}.")
            if not info.name.endswith("__main__")
        ]
    return names


def test_every_project_error_derives_from_lockgate_error() -> None:
    from infra.errors import LockgateError

    strays = []
    for name in project_modules():
        module = importlib.import_module(name)
        for _, value in inspect.getmembers(module, inspect.isclass):
            if (
                value.__module__ == name
                and issubclass(value, BaseException)
                and not issubclass(value, LockgateError)
            ):
                strays.append(f"{name}.{value.__name__}")
    assert not strays, f"errors outside the tree of infra.errors.LockgateError: {strays}"


def test_every_settings_class_lives_in_infra_settings_and_describes_its_fields() -> None:
    from pydantic_settings import BaseSettings

    from infra.settings import ALL_SETTINGS

    for name in project_modules():
        importlib.import_module(name)
    declared = {cls for cls in _subclasses(BaseSettings) if cls.__module__.split(".")[0] in PACKAGES}
    assert declared == set(ALL_SETTINGS), "a settings class outside infra.settings.ALL_SETTINGS"
    for settings in ALL_SETTINGS:
        assert settings.__module__.startswith("infra.settings"), settings
        undescribed = [name for name, field in settings.model_fields.items() if not field.description]
        assert not undescribed, f"{settings.__name__} fields without a description: {undescribed}"


def _subclasses(cls: type) -> set[type]:
    found = set()
    for sub in cls.__subclasses__():
        found |= {sub, *_subclasses(sub)}
    return found


@pytest.mark.parametrize("path", sources(), ids=relative)
def test_importing_a_module_changes_nothing(path: Path) -> None:
    """No module-level side effects: no matplotlib backend switch, no model built, no client made."""
    tree = ast.parse(path.read_text())
    calls = [
        ast.unparse(node.value.func)
        for node in tree.body
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)
    ]
    assignments = [
        ast.unparse(node.value.func)
        for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call)
    ]
    wiring = ("main", "app.add_typer")  # the entry point of __main__, the CLI's command groups
    effects = [call for call in calls if call not in wiring] + [
        call for call in assignments if call in ("request_model", "make_lakefs_client", "LakeFSSettings")
    ]
    if relative(path).endswith("__main__.py"):
        return
    assert not effects, f"{relative(path)} does work at import: {effects}"


# -- no loans in the framework: the demo's dataset is the demo's, not a default ----------------------

DEMO_NAMES = {"loans", "loans-mlp"}
# The demo and the loans contract may name the demo's dataset; everything else takes it from settings.
DEMO_MODULES = ("flows/demo/", "contracts/loans.py")
FIELD_CALLS = {"Field", "field", "Option", "Argument"}


def framework_sources() -> list[Path]:
    return [path for path in sources() if not relative(path).startswith(DEMO_MODULES)]


def literal_defaults(tree: ast.Module) -> list[tuple[int, ast.expr]]:
    """Every default value in a module: of function arguments, of class-level fields (dataclasses,
    pydantic models, settings), and the defaults of ``Field(...)``, ``field(...)`` and typer's
    ``Option(...)`` / ``Argument(...)`` (first argument, ``default=``, ``default_factory=lambda: ...``)."""
    found: list[tuple[int, ast.expr]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            arguments = node.args
            found += [
                (value.lineno, value) for value in (*arguments.defaults, *arguments.kw_defaults) if value
            ]
        elif isinstance(node, ast.ClassDef):
            found += [
                (statement.lineno, statement.value)
                for statement in node.body
                if isinstance(statement, ast.AnnAssign | ast.Assign) and statement.value is not None
            ]
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "id", getattr(node.func, "attr", None)) in FIELD_CALLS
        ):
            found += [(node.lineno, value) for value in node.args[:1]]
            for keyword in node.keywords:
                if keyword.arg == "default":
                    found.append((node.lineno, keyword.value))
                elif keyword.arg == "default_factory" and isinstance(keyword.value, ast.Lambda):
                    found.append((node.lineno, keyword.value.body))
    return found


def module_constants(tree: ast.Module) -> dict[str, object]:
    """Module-level ``NAME = "literal"`` assignments (a default may name one)."""
    constants = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
            constants.update(
                {target.id: node.value.value for target in node.targets if isinstance(target, ast.Name)}
            )
    return constants


def demo_name_defaults(tree: ast.Module) -> list[tuple[int, str]]:
    """The defaults in a module that are the demo's dataset or model, literally or by a module constant."""
    constants = module_constants(tree)
    found = []
    for line, value in literal_defaults(tree):
        literal = value.value if isinstance(value, ast.Constant) else None
        if isinstance(value, ast.Name):
            literal = constants.get(value.id)
        if isinstance(literal, str) and literal in DEMO_NAMES:
            found.append((line, literal))
    return found


@pytest.mark.parametrize("path", framework_sources(), ids=relative)
def test_the_framework_defaults_to_no_dataset_of_the_demo(path: Path) -> None:
    named = [f"line {line}: {value!r}" for line, value in demo_name_defaults(ast.parse(path.read_text()))]
    assert not named, (
        f"{relative(path)} defaults to the demo's dataset or model ({named}): take it from the settings "
        "(infra.settings.WorkloadSettings: LOCKGATE_DATASET, LOCKGATE_MODEL_NAME) or a parameter"
    )


def test_the_demo_name_scan_sees_every_kind_of_default() -> None:
    """The scan above finds each form a default takes, so its passing means something."""
    source = """
import typer
from dataclasses import dataclass, field
from pydantic import BaseModel, Field
MODEL = "loans-mlp"
def command(dataset: str = "loans", *, model: str = MODEL, other: str = "penguins") -> None: ...
def option(name: Annotated[str, typer.Option("loans")], other: Annotated[str, typer.Option("--x")]): ...
class Parameters(BaseModel):
    dataset: str = Field("loans")
    other: str = Field(default="loans")
    made: str = Field(default_factory=lambda: "loans")
    fine: str = Field("--loans")
@dataclass
class Config:
    dataset: str = "loans"
    model: str = field(default="loans-mlp")
"""
    lines = [line for line, _ in demo_name_defaults(ast.parse(source))]
    assert sorted(set(lines)) == [6, 7, 9, 10, 11, 15, 16], lines
    assert lines.count(6) == 2  # the literal and the module constant
