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

import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from tasks import versioning
from tasks.contract_reports import DATA_PREFIX, REPORTS_PREFIX, batch_folder, passed_contract_reports
from tasks.datasets import DatasetSpec, find_dataset_for_repository
from tasks.ingestion.checks import (
    KeyLedger,
    RowCheckCollector,
    check_keys_across_chunks,
    check_rows,
    coerce,
    unique_keys,
)

if TYPE_CHECKING:
    import lakefs

__all__ = ["find_dataset_for_repository", "check_merge", "MergeCheck", "MergeFailure"]

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
    source_commit = versioning.resolve_ref(spec.repository, source_ref, client=client)
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
            folder = batch_folder(path)
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
            collector = RowCheckCollector(key_columns=spec.key_columns)
            rows = _check_file(spec, source_commit, path, collector, add_keys=ledger.add, client=client)
            result.rows_checked += rows
            result.failures.extend(_failures_of(path, collector))
        check_keys_across_chunks(spec, ledger, keys)
    result.failures.extend(_failures_of(ALL_FILES, keys))
    return result


def _check_file(
    spec: DatasetSpec,
    commit: str,
    path: str,
    collector: RowCheckCollector,
    *,
    add_keys: Callable[[Any], None],
    client: lakefs.Client,
) -> int:
    """Coerce and row-check one Parquet object at ``commit`` batch by batch; return the rows read."""
    rows = 0
    try:
        with versioning.open_object(spec.repository, ref=commit, path=path, client=client) as handle:
            for batch in pq.ParquetFile(handle).iter_batches(batch_size=READ_BATCH_ROWS):
                chunk = batch.to_pandas()
                chunk.index = pd.RangeIndex(rows, rows + len(chunk))  # examples name the row in the file
                rows += len(chunk)
                typed = coerce(spec, chunk, collector, file=path).typed
                if typed is None:
                    continue
                check_rows(spec, typed, collector, file=path)
                add_keys(unique_keys(typed, spec.key_columns))
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
