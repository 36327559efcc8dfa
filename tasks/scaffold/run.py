"""``run_init``: scaffold a dataset package from a data file, check that it accepts that file, and write
it; plus the checks and writes it is made of.

Everything is inferred, rendered and checked before the first byte is written, so a refused input leaves
nothing behind. A new directory appears whole (written under a temporary name, then renamed); with
``force``, each file of an existing one is replaced atomically.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pandera.errors

from infra.errors import InvalidInputError
from tasks.datasets import DatasetSpec
from tasks.scaffold.inference import ScaffoldPlan, check_new_dataset_name, infer_plan
from tasks.scaffold.profile import profile_data, read_data_file
from tasks.scaffold.render import render_scaffold


@dataclass(frozen=True)
class ScaffoldResult:
    """A written scaffold.

    Attributes:
        plan: What was inferred, with the reasons (the CLI prints it).
        directory: The package's directory (``pip install -e`` it).
        files: The files written, relative to ``directory``.
        refused_rows: Rows of the data file the validated model refuses (e.g. rows without a label);
            0 when the file would pass the gate.
    """

    plan: ScaffoldPlan
    directory: Path
    files: tuple[str, ...]
    refused_rows: int


def run_init(
    data_file: Path,
    *,
    name: str,
    target: str,
    task: str | None = None,
    positive_class: str | None = None,
    key_columns: Sequence[str] = (),
    out: Path | None = None,
    force: bool = False,
) -> ScaffoldResult:
    """Scaffold the package of dataset ``name`` from ``data_file``.

    Args:
        data_file: A CSV, Parquet or JSON-lines file, read as ingestion reads it.
        name: Dataset name (lower case, digits and '-').
        target: The label column.
        task: ``binary``, ``multiclass`` or ``regression``; None infers it.
        positive_class: The binary target's positive class, as text; None infers it.
        key_columns: Columns that identify a row; empty picks a unique column of the file.
        out: Directory to write (default: ``./<name>``).
        force: Overwrite the scaffold's files in an existing, non-empty ``out``.

    Returns:
        The plan, where it was written and how many rows the validated model refuses.

    Raises:
        InvalidInputError: the name, file, target, task, key or output directory cannot work.
    """
    check_new_dataset_name(name)
    directory = Path(name) if out is None else out
    check_output_directory(directory, force=force)
    frame = read_data_file(data_file)
    profile = profile_data(frame, source=data_file.name)
    plan = infer_plan(
        profile, name=name, target=target, task=task, positive_class=positive_class, key_columns=key_columns
    )
    files = render_scaffold(plan)
    _, refused = check_scaffold(files, plan)
    write_scaffold(files, directory, force=force)
    return ScaffoldResult(plan=plan, directory=directory, files=tuple(files), refused_rows=refused)


def check_output_directory(directory: Path, *, force: bool) -> None:
    """Refuse a directory that is a file, or that holds files and ``force`` was not given.

    Raises:
        InvalidInputError: it cannot be written.
    """
    if directory.exists() and not directory.is_dir():
        raise InvalidInputError(f"--out {str(directory)!r} is a file, not a directory")
    if directory.is_dir() and any(directory.iterdir()) and not force:
        raise InvalidInputError(
            f"--out {str(directory)!r} exists and is not empty: choose another --out, or pass --force to "
            "overwrite the scaffold's files in it"
        )


def check_scaffold(files: Mapping[str, str], plan: ScaffoldPlan) -> tuple[DatasetSpec, int]:
    """Import the rendered package (under a private name) and check it against the file it came from.

    Returns:
        The package's DatasetSpec and how many rows of the file its validated model refuses.

    Raises:
        InvalidInputError: the spec has problems, or the raw model refuses the file (neither should
            happen; the message says what to report).
    """
    with loaded_scaffold(files, plan.package) as package:
        spec = importlib.import_module(f"{package.__name__}.dataset").DATASET
        problems = spec.problems()
        if problems:
            raise InvalidInputError(
                f"the scaffold of {plan.name!r} would not be usable: {'; '.join(problems)}; pass --task, "
                "--positive-class or --key to decide differently"
            )
        try:
            typed = spec.raw_model.validate(plan.profile.frame, lazy=True)
        except pandera.errors.SchemaErrors as errors:
            columns = sorted({str(c) for c in errors.failure_cases["column"].dropna()})
            raise InvalidInputError(
                f"the raw model inferred from {plan.source} refuses it (columns {columns}): please report "
                "this with the file's header and a few rows"
            ) from errors
        try:
            spec.validated_model.validate(typed, lazy=True)
        except pandera.errors.SchemaErrors as errors:
            rows = errors.failure_cases["index"].dropna().nunique()
            return spec, int(rows)
        return spec, 0


@contextlib.contextmanager
def loaded_scaffold(files: Mapping[str, str], package: str) -> Iterator[ModuleType]:
    """The rendered package, imported from a temporary directory under a unique name, then forgotten."""
    alias = f"_lockgate_scaffold_{uuid.uuid4().hex}"
    with tempfile.TemporaryDirectory(prefix="lockgate-init-") as temporary:
        root = Path(temporary) / package
        for relative, text in files.items():
            if relative.startswith(f"{package}/"):
                path = Path(temporary) / relative
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text, encoding="utf-8")
        spec = importlib.util.spec_from_file_location(
            alias, root / "__init__.py", submodule_search_locations=[str(root)]
        )
        assert spec is not None and spec.loader is not None  # a file location always has a loader
        module = importlib.util.module_from_spec(spec)
        sys.modules[alias] = module
        try:
            spec.loader.exec_module(module)
            yield module
        finally:
            for loaded in [m for m in sys.modules if m == alias or m.startswith(f"{alias}.")]:
                del sys.modules[loaded]


def write_scaffold(files: Mapping[str, str], directory: Path, *, force: bool = False) -> None:
    """Write ``files`` (relative path -> text) under ``directory``.

    A new (or empty) directory is written under a temporary name beside it and renamed into place, so it
    appears whole or not at all; with ``force`` each file of an existing directory is replaced atomically
    and files the scaffold does not write are left alone.
    """
    check_output_directory(directory, force=force)
    if directory.is_dir() and any(directory.iterdir()):
        for relative, text in files.items():
            _replace(directory / relative, text)
        return
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        for relative, text in files.items():
            path = staging / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        staging.chmod(0o777 & ~_umask())
        if directory.is_dir():
            directory.rmdir()  # empty (checked above); rename cannot replace a directory
        staging.rename(directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _replace(path: Path, text: str) -> None:
    """Write ``path`` through a temporary file beside it, so readers see the old or the new text."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


def _umask() -> int:
    """The process's umask (``mkdtemp`` creates 0700; the scaffold gets the usual permissions)."""
    current = os.umask(0)
    os.umask(current)
    return current
