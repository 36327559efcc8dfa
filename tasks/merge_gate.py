"""The pre-merge contract gate: what a merge into a dataset's protected branch would bring, checked
against the dataset's contract before lakeFS lets the merge happen.

The ingestion flow only ever merges batches that passed their contract, but a person can still merge
a branch into ``main`` by hand (lakectl, the UI, the SDK). A lakeFS ``pre-merge`` webhook (see
``serving.webhook_relay``) calls :func:`check_merge`, and a failed check makes lakeFS refuse the
merge (412), so ``main`` only moves to data that satisfies the contract.

What is checked, for every object under ``data/`` that the merge adds or changes (the three-dot
diff ``destination...source``, i.e. what the source changed since the merge base):

* it is a readable Parquet file (any other file under ``data/`` is refused: nothing could check it);
* every row passes the dataset's pandera contract: first coerced to the raw model's types, then the
  validated model's row rules, with the key columns unique across every file the merge brings --
  the same code the ingestion gate runs (``tasks.ingestion``);
* its batch folder (``data/batch-<fingerprint>/``) has a passed contract report on the source ref,
  as ``tasks.training.resolve_training_data`` requires of everything it trains on. A merge that
  brought data without one would leave ``main`` untrainable, and the report also carries the Great
  Expectations (dataset-level) verdict, which cannot be recomputed sensibly on part of a batch. The
  report is not trusted alone: the rows are re-checked, so a part edited after its report was
  written is still caught. Pass ``require_report=False`` to check rows only.

Removed objects are not checked (removing rows cannot break a row contract), nor are objects outside
``data/``. Keys are checked for uniqueness within what the merge brings, not against the rows
already on the destination (as the ingestion gate does). Memory stays bounded: files are read one
row group batch at a time and keys are spilled to disk (``KeyLedger``).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import lakefs
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from lakefs.exceptions import NotFoundException

from infra.errors import RefNotFoundError
from tasks import versioning
from tasks.datasets import DatasetSpec, available_datasets
from tasks.ingestion import (
    DATA_PREFIX,
    REPORTS_PREFIX,
    KeyLedger,
    RowCheckCollector,
    _check_cross_chunk_keys,
    _check_rows,
    _coerce,
    _unique_keys,
)

CHECKED_CHANGES = ("added", "changed")
PARQUET_SUFFIXES = (".parquet", ".pq")
ALL_FILES = "(all files)"
FILE_COLUMN = "(file)"
READ_BATCH_ROWS = 100_000


@dataclass(frozen=True)
class MergeFailure:
    """One rule broken by one file of the merge (``file`` is ``(all files)`` for cross-file checks).

    Attributes:
        file: Object path on the source ref.
        column: The column, ``(row)`` for a rule over whole rows, ``(file)`` for the file itself.
        check: The rule, as pandera names it (e.g. ``less_than_or_equal_to(80)``).
        count: How many values (or rows, or files) broke it.
        examples: A few failing cases, each with its ``row`` in the file and the whole ``record``.
    """

    file: str
    column: str
    check: str
    count: int
    examples: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class MergeCheck:
    """The verdict on one merge.

    Attributes:
        dataset: The dataset checked.
        repository: Its lakeFS repository.
        source_ref: The ref being merged, as given.
        source_commit: The commit it resolved to; everything was read there.
        destination_ref: The ref merged into.
        files_checked: Data objects the merge adds or changes, in path order.
        rows_checked: Rows read from them.
        failures: Every broken rule, per file.
        passed: True when there are no failures.
    """

    dataset: str
    repository: str
    source_ref: str
    source_commit: str
    destination_ref: str
    files_checked: list[str] = field(default_factory=list)
    rows_checked: int = 0
    failures: list[MergeFailure] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``passed`` included)."""
        return {"passed": self.passed, **asdict(self)}

    def message(self) -> str:
        """One line per failure, for people (the relay's answer, a log line)."""
        if self.passed:
            return (
                f"merge of {self.source_ref!r} into {self.destination_ref!r} of dataset {self.dataset!r} "
                f"passed its contract ({len(self.files_checked)} file(s), {self.rows_checked} rows)"
            )
        lines = [
            f"merge of {self.source_ref!r} into {self.destination_ref!r} of dataset {self.dataset!r} "
            f"breaks its contract:"
        ]
        for failure in self.failures:
            lines.append(
                f"- {failure.file}: column {failure.column!r} rule {failure.check!r}: "
                f"{failure.count} failure(s)"
            )
        return "\n".join(lines)


def find_dataset_for_repository(
    repository: str, *, datasets: Mapping[str, DatasetSpec] | None = None
) -> DatasetSpec | None:
    """The dataset stored in lakeFS repository ``repository``, or None when none is declared there.

    Args:
        repository: A lakeFS repository name.
        datasets: The declared datasets by name; defaults to ``available_datasets()``.
    """
    known = available_datasets() if datasets is None else datasets
    return next((spec for spec in known.values() if spec.repository == repository), None)


def passed_contract_reports(repository: str, ref: str, *, client: lakefs.Client) -> dict[str, str]:
    """The data prefixes that have a passed contract report at ``ref``, each with the report's path."""
    reference = lakefs.Reference(repository, ref, client=client)
    passed: dict[str, str] = {}
    for item in reference.objects(prefix=REPORTS_PREFIX):
        if not item.path.endswith("contract_report.json"):
            continue
        with reference.object(item.path).reader(mode="rb", pre_sign=False) as handle:
            try:
                report = json.loads(handle.read())
            except ValueError:
                continue  # an unreadable report vouches for nothing
        if isinstance(report, dict) and report.get("passed") is True and report.get("data_prefix"):
            passed[str(report["data_prefix"])] = item.path
    return passed


def check_merge(
    spec: DatasetSpec,
    *,
    source_ref: str,
    destination_ref: str,
    client: lakefs.Client,
    require_report: bool = True,
) -> MergeCheck:
    """Check the data a merge of ``source_ref`` into ``destination_ref`` would bring.

    Args:
        spec: The dataset whose repository is merged into.
        source_ref: Branch, tag or commit being merged (it is pinned to its commit first).
        destination_ref: The branch merged into.
        client: The lakeFS client to use.
        require_report: Refuse data whose batch folder has no passed contract report on the source.

    Returns:
        The verdict; ``passed`` is False when any file is unreadable or any row breaks the contract.

    Raises:
        RefNotFoundError: a ref does not resolve.
        RepositoryNotFoundError: the dataset's repository does not exist.
    """
    source_commit = _resolve(spec.repository, source_ref, client=client)
    changes = versioning.diff_refs(
        spec.repository,
        left_ref=destination_ref,
        right_ref=source_commit,
        prefix=DATA_PREFIX,
        client=client,
    )
    result = MergeCheck(
        dataset=spec.name,
        repository=spec.repository,
        source_ref=source_ref,
        source_commit=source_commit,
        destination_ref=destination_ref,
        files_checked=[change.path for change in changes if change.type in CHECKED_CHANGES],
    )
    if not result.files_checked:
        return result
    reports = passed_contract_reports(spec.repository, source_commit, client=client) if require_report else {}
    reference = lakefs.Reference(spec.repository, source_commit, client=client)
    keys = RowCheckCollector()
    with tempfile.TemporaryDirectory(prefix="lockgate-merge-gate-") as tmp:
        ledger = KeyLedger(Path(tmp) / "keys")
        for path in result.files_checked:
            if not path.endswith(PARQUET_SUFFIXES):
                result.failures.append(
                    MergeFailure(
                        path,
                        FILE_COLUMN,
                        "Parquet data part",
                        1,
                        [{"file": path, "expected": f"only Parquet files under {DATA_PREFIX}"}],
                    )
                )
                continue
            folder = path.rsplit("/", 1)[0] + "/"
            if require_report and folder not in reports:
                result.failures.append(
                    MergeFailure(
                        path,
                        FILE_COLUMN,
                        "passed contract report",
                        1,
                        [
                            {
                                "file": path,
                                "expected": f"a contract_report.json under {REPORTS_PREFIX} with "
                                f"passed=true and data_prefix={folder!r} (ingest the data with "
                                "`lockgate ingest` instead of merging it by hand)",
                            }
                        ],
                    )
                )
            collector = RowCheckCollector()
            rows = _check_file(spec, reference, path, collector, add_keys=ledger.add)
            result.rows_checked += rows
            result.failures.extend(_failures_of(path, collector))
        _check_cross_chunk_keys(spec, ledger, keys)
    result.failures.extend(_failures_of(ALL_FILES, keys))
    return result


def _resolve(repository: str, ref: str, *, client: lakefs.Client) -> str:
    """The commit ID ``ref`` points at."""
    try:
        return lakefs.Reference(repository, ref, client=client).get_commit().id
    except NotFoundException as error:
        raise RefNotFoundError(f"ref {ref!r} not found in dataset repository {repository!r}") from error


def _check_file(
    spec: DatasetSpec,
    reference: lakefs.Reference,
    path: str,
    collector: RowCheckCollector,
    *,
    add_keys: Callable[[Any], None],
) -> int:
    """Coerce and row-check one Parquet object batch by batch; return the rows read."""
    rows = 0
    try:
        with reference.object(path).reader(mode="rb", pre_sign=False) as handle:
            for batch in pq.ParquetFile(handle).iter_batches(batch_size=READ_BATCH_ROWS):
                chunk = batch.to_pandas()
                chunk.index = pd.RangeIndex(rows, rows + len(chunk))  # examples name the row in the file
                rows += len(chunk)
                typed = _coerce(spec, chunk, collector, file=path)
                if typed is None:
                    continue
                _check_rows(spec, typed, collector, file=path)
                add_keys(_unique_keys(typed, spec.key_columns))
    # lakeFS errors are not the file's fault: they propagate, and the relay fails closed (503).
    except (pa.ArrowInvalid, OSError) as error:
        collector.add(
            FILE_COLUMN,
            "readable Parquet",
            count=1,
            examples=[
                {"file": path, "error": f"not a readable Parquet file (corrupt or truncated?): {error}"}
            ],
        )
    return rows


def _failures_of(file: str, collector: RowCheckCollector) -> list[MergeFailure]:
    return [MergeFailure(file, c.column, c.check, c.count, list(c.examples)) for c in collector.summary()]
