"""Run a Great Expectations suite over a pandas DataFrame and, on request, render GX Data Docs.

The ingestion engine validates a uniform sample of a large batch with GX (memory bounded by the
sample) while counting the batch's rows exactly. ``validate_expectations(..., row_count=N)``
therefore judges ``expect_table_row_count_to_be_between`` against ``N``, not against the sample's
length; every other expectation runs on the frame it is given.

GX is imported on first use (about 2 s), with its usage analytics and progress bars off and its
import-time deprecation warnings (``sre_constants``/``sre_parse``) silenced, so that callers that
turn warnings into errors keep working.
"""

from __future__ import annotations

import math
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse
from urllib.request import url2pathname

import numpy as np
import pandas as pd

from infra.errors import InvalidInputError

if TYPE_CHECKING:
    import great_expectations as gx

ROW_COUNT_EXPECTATION = "expect_table_row_count_to_be_between"
EXACT_ROW_COUNT = "exact row count"
GIVEN_FRAME = "given frame"
# Failure examples kept per expectation: enough to recognise the problem in a report, bounded so a
# report stays small however many rows fail.
PARTIAL_UNEXPECTED_LIMIT = 5
_DATASOURCE = "lockgate"


@dataclass(frozen=True)
class ExpectationReport:
    """The outcome of one suite over one frame, JSON-able except for the Data Docs path.

    Attributes:
        success: True when every expectation passed.
        results: One dict per expectation, in suite order: ``expectation`` (type), ``column``
            (or None), ``kwargs``, ``success``, ``observed_value``, ``evaluated_on``
            (``"given frame"`` or ``"exact row count"``) and, for failures, ``unexpected_count``,
            ``unexpected_percent``, ``partial_unexpected_list`` (at most five values) and
            ``exception`` (GX's message when the expectation could not be evaluated, e.g. a
            missing column) where GX reports them.
        data_docs_index: ``index.html`` of the rendered Data Docs, or None when not requested.
        statistics: ``evaluated_expectations``, ``successful_expectations``,
            ``unsuccessful_expectations``, ``success_percent``, ``frame_rows``, ``row_count``
            (exact when given, else the frame's), ``suite_name`` and ``seconds`` (wall time).
    """

    success: bool
    results: list[dict[str, Any]]
    data_docs_index: Path | None
    statistics: dict[str, Any] = field(default_factory=dict)

    def failures(self) -> list[dict[str, Any]]:
        """The results of the expectations that failed."""
        return [result for result in self.results if not result["success"]]


def validate_expectations(
    frame: pd.DataFrame,
    suite_factory: Callable[[], gx.ExpectationSuite],
    *,
    data_docs_dir: Path | None = None,
    row_count: int | None = None,
) -> ExpectationReport:
    """Validate ``frame`` against the suite ``suite_factory`` builds.

    Args:
        frame: The rows to check (the whole batch, or a uniform sample of it).
        suite_factory: Builds a fresh ``gx.ExpectationSuite`` (e.g. ``loan_expectation_suite``).
        data_docs_dir: Where to put the rendered Data Docs site (created or refreshed); None skips
            rendering, which is about ten times faster.
        row_count: The batch's exact row count when ``frame`` is a sample of it: row-count
            expectations are judged on this number and marked ``"exact row count"``.

    Returns:
        The report; it never raises for failed expectations, only for bad arguments.

    Raises:
        InvalidInputError: ``frame`` is not a DataFrame, ``row_count`` is negative or smaller than
            the frame, or a row-count expectation's bounds are not plain numbers.
    """
    if not isinstance(frame, pd.DataFrame):
        raise InvalidInputError(f"expected a pandas DataFrame to validate, got {type(frame).__name__}")
    if row_count is not None and (row_count < 0 or row_count < len(frame)):
        raise InvalidInputError(
            f"row_count {row_count} cannot be the exact size of a batch sampled as {len(frame)} rows"
        )
    started = time.perf_counter()
    gx = _import_gx()
    suite = suite_factory()
    exact: list[tuple[int, dict[str, Any]]] = []
    if row_count is not None:
        suite, exact = _split_row_count(gx, suite, row_count)
    if data_docs_dir is None:
        gx_results, docs_index = _run_in_memory(gx, frame, suite), None
    else:
        gx_results, docs_index = _run_with_data_docs(gx, frame, suite, Path(data_docs_dir))
    results = [_summarise(result) for result in gx_results]
    for position, result in exact:
        results.insert(position, result)
    passed = sum(result["success"] for result in results)
    statistics = {
        "suite_name": suite.name,
        "evaluated_expectations": len(results),
        "successful_expectations": passed,
        "unsuccessful_expectations": len(results) - passed,
        "success_percent": 100.0 * passed / len(results) if results else 100.0,
        "frame_rows": len(frame),
        "row_count": len(frame) if row_count is None else row_count,
        "seconds": round(time.perf_counter() - started, 3),
    }
    return ExpectationReport(
        success=passed == len(results), results=results, data_docs_index=docs_index, statistics=statistics
    )


def _import_gx():
    """Import GX quietly: analytics off (unless the environment says otherwise), no import warnings."""
    from infra.processes import set_environment_defaults

    set_environment_defaults({"GX_ANALYTICS_ENABLED": "false"})
    # GX 1.24 imports the stdlib's deprecated sre_* modules; the warning is theirs to fix. A narrow,
    # permanent filter rather than catch_warnings(), which is not thread-safe.
    warnings.filterwarnings(
        "ignore", message=r"module 'sre_(constants|parse)' is deprecated", category=DeprecationWarning
    )
    # GX probes optional Google Cloud support; google-api-core (installed with Ray) then asks for
    # grpcio-status, which lockgate does not need.
    warnings.filterwarnings("ignore", message=r"Please install grpcio-status", category=ImportWarning)
    import great_expectations as gx

    return gx


def _quiet(context) -> None:
    """No progress bars on stdout (GX draws them with tqdm per metric batch), no analytics."""
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    context.variables.analytics_enabled = False


def _batch_definition(context, frame_name: str):
    """A pandas datasource with one dataframe asset, read as one whole-frame batch."""
    asset = context.data_sources.add_pandas(_DATASOURCE).add_dataframe_asset(frame_name)
    return asset.add_batch_definition_whole_dataframe("whole frame")


def _run_in_memory(gx, frame: pd.DataFrame, suite: gx.ExpectationSuite) -> list:
    """Validate in an ephemeral context (a few milliseconds to create; nothing written)."""
    context = gx.get_context(mode="ephemeral")
    _quiet(context)
    batch = _batch_definition(context, suite.name).get_batch(batch_parameters={"dataframe": frame})
    return list(batch.validate(suite, result_format="SUMMARY").results)


def _run_with_data_docs(gx, frame: pd.DataFrame, suite: gx.ExpectationSuite, data_docs_dir: Path):
    """Validate through a checkpoint in a throw-away file context and copy out its Data Docs site."""
    with tempfile.TemporaryDirectory(prefix="lockgate-gx-") as root:
        context = gx.get_context(mode="file", project_root_dir=root)
        _quiet(context)
        batch_definition = _batch_definition(context, suite.name)
        suite = context.suites.add(suite)
        validation = context.validation_definitions.add(
            gx.ValidationDefinition(name=f"{suite.name} batch", data=batch_definition, suite=suite)
        )
        checkpoint = context.checkpoints.add(
            gx.Checkpoint(
                name=f"{suite.name} checkpoint",
                validation_definitions=[validation],
                actions=[gx.checkpoint.UpdateDataDocsAction(name="update data docs")],
                result_format="SUMMARY",
            )
        )
        outcome = checkpoint.run(batch_parameters={"dataframe": frame})
        (suite_result,) = outcome.run_results.values()
        site = _local_site(context)
        data_docs_dir.mkdir(parents=True, exist_ok=True)
        shutil.copytree(site, data_docs_dir, dirs_exist_ok=True)
    return list(suite_result.results), data_docs_dir / "index.html"


def _local_site(context) -> Path:
    """Folder of the file context's local Data Docs site."""
    for site in context.get_docs_sites_urls():
        url = urlparse(site["site_url"])
        if url.scheme == "file":
            return Path(url2pathname(url.path)).parent
    raise RuntimeError("GX built no local Data Docs site")  # the default file context always has one


def _split_row_count(gx, suite: gx.ExpectationSuite, row_count: int):
    """Take row-count expectations out of ``suite`` and judge them on ``row_count`` here.

    Returns:
        The suite GX runs on the frame, and (position in the original suite, result) pairs.
    """
    kept, exact = [], []
    for position, expectation in enumerate(suite.expectations):
        if expectation.expectation_type != ROW_COUNT_EXPECTATION or getattr(
            expectation, "row_condition", None
        ):
            kept.append(expectation)
            continue
        exact.append((position, _judge_row_count(expectation, row_count)))
    if not exact:
        return suite, []
    outcome = ", ".join("passed" if result["success"] else "failed" for _, result in exact)
    notes = [f"Row count: judged by lockgate on the exact count of {row_count:,} rows ({outcome})."]
    return gx.ExpectationSuite(name=suite.name, expectations=kept, meta=dict(suite.meta), notes=notes), exact


def _judge_row_count(expectation, row_count: int) -> dict[str, Any]:
    """The result of one ``expect_table_row_count_to_be_between`` for an exact ``row_count``."""
    low, high = expectation.min_value, expectation.max_value
    for bound in (low, high):
        if bound is not None and not isinstance(bound, int | float):
            raise InvalidInputError(
                f"{ROW_COUNT_EXPECTATION}: bounds must be numbers to judge an exact row count, got {bound!r}"
            )
    too_low = low is not None and (row_count <= low if expectation.strict_min else row_count < low)
    too_high = high is not None and (row_count >= high if expectation.strict_max else row_count > high)
    return {
        "expectation": ROW_COUNT_EXPECTATION,
        "column": None,
        "kwargs": _json_safe(expectation.configuration.kwargs),
        "success": not (too_low or too_high),
        "observed_value": row_count,
        "evaluated_on": EXACT_ROW_COUNT,
    }


def _summarise(result) -> dict[str, Any]:
    """One GX expectation result as a small JSON-able dict."""
    configuration = result.expectation_config
    kwargs = {key: value for key, value in configuration.kwargs.items() if key != "batch_id"}
    details = result.result or {}
    summary: dict[str, Any] = {
        "expectation": configuration.type,
        "column": kwargs.get("column"),
        "kwargs": _json_safe(kwargs),
        "success": bool(result.success),
        "observed_value": _json_safe(details.get("observed_value")),
        "evaluated_on": GIVEN_FRAME,
    }
    if not result.success:
        for key in ("unexpected_count", "unexpected_percent"):
            if key in details:
                summary[key] = _json_safe(details[key])
        if "partial_unexpected_list" in details:
            summary["partial_unexpected_list"] = _json_safe(
                list(details["partial_unexpected_list"])[:PARTIAL_UNEXPECTED_LIMIT]
            )
        messages = _exception_messages(result.exception_info or {})
        if messages:
            summary["exception"] = "; ".join(messages)
    return summary


def _exception_messages(info: Mapping[str, Any]) -> list[str]:
    """GX's error messages for an expectation it could not evaluate.

    GX reports either one flat ``{raised_exception, exception_message, ...}`` dict or, when a
    metric failed (a missing column), one such dict per metric, keyed by the metric's ID.
    """
    if "raised_exception" in info:
        infos = [info]
    else:
        infos = [item for item in info.values() if isinstance(item, Mapping)]
    messages = [str(item.get("exception_message")) for item in infos if item.get("raised_exception")]
    return list(dict.fromkeys(messages))


def _json_safe(value: Any) -> Any:
    """``value`` with numpy/pandas scalars made plain and NaN/inf made None (strict JSON)."""
    if isinstance(value, Mapping):
        return {str(key): _json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | np.ndarray | pd.Series):
        return [_json_safe(item) for item in value]
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, bool | str):
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, datetime | date | pd.Timestamp):
        return value.isoformat()
    return str(value)
