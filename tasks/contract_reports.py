"""Contract reports: where ingestion stores them, and the one reader that decides what they vouch for.

Every ingested batch lands under ``data/batch-<fingerprint>/`` with its contract report at
``_lockgate/reports/<run>/contract_report.json``. Training (``tasks.training``) trains only on data
whose batch folder has a passed report, and the pre-merge gate (``tasks.merge_gate``) refuses a merge
that brings data without one. Both ask ``passed_contract_reports``, so they agree on what counts: a
report vouches for its folder only if it is readable JSON, an object, says ``"passed": true`` and
names its ``data_prefix``; anything else vouches for nothing (it is never an error of its own).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from tasks import versioning

if TYPE_CHECKING:
    import lakefs

DATA_PREFIX = "data/"
REPORTS_PREFIX = "_lockgate/reports/"
REPORT_FILE = "contract_report.json"


def report_path(run_id: str) -> str:
    """Object path of one ingest run's contract report."""
    return f"{REPORTS_PREFIX}{run_id}/{REPORT_FILE}"


def batch_folder(path: str) -> str:
    """The batch folder (``data/batch-.../``) a data object belongs to."""
    return path.rsplit("/", 1)[0] + "/"


def passed_contract_reports(repository: str, ref: str, *, client: lakefs.Client) -> dict[str, str]:
    """The data prefixes that have a passed contract report at ``ref``, each with the report's path.

    Pass a commit ID: the answer then describes exactly the bytes that commit holds.
    """
    passed: dict[str, str] = {}
    paths = versioning.list_objects(
        repository, ref=ref, prefix=REPORTS_PREFIX, suffix=REPORT_FILE, client=client
    )
    for path in paths:
        try:
            with versioning.open_object(repository, ref=ref, path=path, client=client) as handle:
                report = json.loads(handle.read())
        except ValueError:
            continue  # an unreadable report vouches for nothing
        if isinstance(report, dict) and report.get("passed") is True and report.get("data_prefix"):
            passed[str(report["data_prefix"])] = path
    return passed
