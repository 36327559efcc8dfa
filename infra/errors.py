"""Every exception lockgate raises on purpose, in one tree.

A condition the code anticipates raises one of these, with a message a person can act on (which file,
column, ref or setting, and what to do next); the CLI turns any of them into a one-line error and an
exit code (``flows.cli.errors``), never a traceback. Modules re-export the ones they raise, so
``tasks.ingestion.SourceFormatError`` and ``infra.errors.SourceFormatError`` are the same class.

::

    LockgateError
    ├── ConfigurationError                    settings or an environment that cannot work (exit 2)
    ├── InvalidInputError (ValueError)        an argument or file refused before anything was written (exit 2)
    │   ├── InvalidMetadataError              commit/object metadata is not str -> str
    │   ├── EvaluationError                   labels, probabilities, slices or a metric refused
    │   ├── DriftError                        drift inputs refused
    │   ├── LabelError                        a label batch breaks the outcome contract
    │   ├── GenerationError                   the generator cannot produce what was asked
    │   ├── InvalidDatasetSpecError           a dataset spec whose task or columns cannot be used
    │   ├── UnusableDataError                 training data its task or encoders cannot use (not retried)
    │   ├── ModelFactoryError                 a model factory not installed, or unfit for the task
    │   └── UnsupportedContractError          a contract check has no request equivalent
    ├── UnavailableError (ConnectionError)    a service lockgate needs does not answer
    │   ├── LakeFSUnavailableError            the lakeFS endpoint
    │   ├── DaskUnavailableError              the Dask scheduler
    │   └── RayUnavailableError               the Ray cluster
    ├── NotFoundError (LookupError)
    │   ├── RepositoryNotFoundError, RefNotFoundError, ObjectNotFoundError
    │   ├── ModelNotFoundError                model, version or alias (the message lists what exists)
    │   └── UnknownDatasetError               no dataset declared under a name
    ├── VersioningError                       lakeFS refused an operation
    │   ├── RepositoryConflictError, BranchExistsError, TagExistsError
    │   ├── NoChangesError, MergeConflictError
    │   └── DataFormatError (ValueError)      stored bytes are not the expected format
    ├── ModelIntegrityError                   an artifact is missing or its SHA-256 differs from its card
    ├── ModelRegistrationError                no version could be claimed, or its merge failed
    ├── IngestionError
    │   ├── SourceNotFoundError (FileNotFoundError), SourceAccessError (PermissionError)
    │   ├── SourceFormatError (ValueError)
    │   └── ContractViolationError            the batch broke its contract (``.report`` holds why)
    ├── TrainingError, UncheckedDataError     training could not run, or the data was not checked
    ├── ServingError                          the serving app is not running or a version failed
    │   ├── ModelNotReadyError, InjectedFaultError   (inside a model replica)
    │   └── RolloutError                      an SLO breach, a failed start or a reviewer's "no"
    ├── RequestRejectedError                  the webhook relay refuses a request (``.status``)
    ├── EventDeliveryError                    Prefect's API did not take an event
    ├── LoopError                             the closed loop did not get where it should (demo, bench)
    ├── ServerStartError                      the embedded lakeFS server did not become healthy
    └── StackError                            ``lockgate up/down/status``
        ├── PortInUseError, StackRunningError
        └── ServiceStartError                 a service failed to start (``.log_tail`` shows why)

The embedded lakeFS server's HTTP errors (``infra.lakefs_server.errors.ApiError``) derive from
``LockgateError`` too; they are answered to clients, not raised at users.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


class LockgateError(Exception):
    """Base of every error lockgate raises on purpose."""

    #: Exit code of the CLI for this kind of error (2: the user's input or settings).
    exit_code = 1


class ConfigurationError(LockgateError):
    """Settings (or an environment) that cannot work; the message names the setting to change."""

    exit_code = 2


class InvalidInputError(LockgateError, ValueError):
    """An argument (name, path, metadata, message, DataFrame) was refused before anything was written."""

    exit_code = 2


class InvalidMetadataError(InvalidInputError):
    """Commit or object metadata was not a mapping of non-empty string keys to string values."""


class EvaluationError(InvalidInputError):
    """Labels, probabilities, slices or a metric name given to evaluation were refused."""


class DriftError(InvalidInputError):
    """The reference or current data cannot be compared (missing columns, wrong types, bad config)."""


class LabelError(InvalidInputError):
    """A label batch breaks the outcome contract (the message lists every problem)."""


class GenerationError(InvalidInputError):
    """The generator was asked for something it cannot produce."""


class InvalidDatasetSpecError(InvalidInputError):
    """A dataset spec whose task, target or feature columns cannot be used (refused when loaded)."""


class UnusableDataError(InvalidInputError):
    """Training data its task or encoders cannot use: one class, a constant or all-null feature, a
    category column over its cap. Deterministic: a retry would fail the same way, so none is made."""


class ModelFactoryError(InvalidInputError):
    """A model factory that is not installed, or whose network does not fit the task."""


class UnsupportedContractError(InvalidInputError):
    """A validated model uses a column type or check that has no request equivalent."""


# -- services that do not answer -------------------------------------------------------------------


class UnavailableError(LockgateError, ConnectionError):
    """A service lockgate needs did not answer; the message names the address and the setting."""


class LakeFSUnavailableError(UnavailableError):
    """The lakeFS endpoint did not answer."""


class DaskUnavailableError(UnavailableError):
    """The configured Dask scheduler could not be reached (or dask-cuda is missing)."""


class RayUnavailableError(UnavailableError):
    """The configured Ray cluster could not be reached."""


# -- lookups ---------------------------------------------------------------------------------------


class NotFoundError(LockgateError, LookupError):
    """Something asked for by name does not exist."""


class RepositoryNotFoundError(NotFoundError):
    """The named repository does not exist on the lakeFS server."""


class RefNotFoundError(NotFoundError):
    """A branch, tag, commit ID or ref expression (``main~1``) did not resolve."""


class ObjectNotFoundError(NotFoundError):
    """The ref exists but holds no object at the requested path."""


class ModelNotFoundError(NotFoundError):
    """A model, version or alias asked of the registry does not exist (the message lists what does)."""


class UnknownDatasetError(NotFoundError):
    """No dataset is declared under the requested name."""


# -- versioned storage -----------------------------------------------------------------------------


class VersioningError(LockgateError):
    """lakeFS refused an operation (the message says why and what to do)."""


class RepositoryConflictError(VersioningError):
    """A repository exists under the requested name but with different settings."""


class BranchExistsError(VersioningError):
    """A branch to be created already exists (and ``exist_ok`` was not given)."""


class TagExistsError(VersioningError):
    """A tag to be created already exists (and ``force`` was not given)."""


class NoChangesError(VersioningError):
    """A commit or merge found nothing to record (pass ``allow_empty=True`` to record one anyway)."""


class MergeConflictError(VersioningError):
    """Source and destination changed the same paths differently; nothing was merged."""


class GarbageCollectionError(VersioningError):
    """The embedded server refused or failed a garbage collection (no rules, bad options, ...)."""


class DataFormatError(VersioningError, ValueError):
    """Stored bytes could not be decoded as the expected format (Parquet)."""


# -- models ----------------------------------------------------------------------------------------


class ModelIntegrityError(LockgateError):
    """A stored model artifact is missing, unreadable, or its SHA-256 differs from its model card."""


class ModelRegistrationError(LockgateError):
    """No version number could be claimed (nothing visible), or a claimed version did not merge to main."""


# -- stages ----------------------------------------------------------------------------------------


class IngestionError(LockgateError):
    """Base of ingestion failures."""


class SourceNotFoundError(IngestionError, FileNotFoundError):
    """The source path, glob, bucket or key does not exist."""


class SourceAccessError(IngestionError, PermissionError):
    """The source exists but cannot be read with the given credentials."""


class SourceFormatError(IngestionError, ValueError):
    """A source file is not readable as the format its name says (corrupt, truncated, wrong encoding)."""


class ContractViolationError(IngestionError):
    """The batch broke its dataset's contract; ``main`` is unchanged and the branch kept."""

    def __init__(self, message: str, *, report: Any) -> None:
        super().__init__(message)
        self.report = report  # the tasks.ingestion.IngestReport


class TrainingError(LockgateError):
    """Training could not produce a model (nothing is registered).

    ``retryable`` says whether another attempt could succeed (a worker died: yes; the loss diverged
    with the same seed and data: no).
    """

    retryable = True


class UncheckedDataError(LockgateError):
    """The data at a ref did not pass its contracts (or has no contract report)."""


class ServingError(LockgateError):
    """The serving app is not running, or a version could not be deployed or reached."""


class ModelNotReadyError(ServingError):
    """The model deployment has no verified model loaded (still loading, or loading failed)."""


class InjectedFaultError(ServingError):
    """A failure injected on purpose (``FaultInjection.error_rate``)."""


class RolloutError(ServingError):
    """A rollout stopped: an SLO was breached, the version failed to start, or a reviewer said no."""


class RequestRejectedError(LockgateError):
    """The webhook relay refuses a request with ``status`` and a short ``detail``."""

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers


class EventDeliveryError(LockgateError):
    """Prefect's API did not take an event (unreachable, too slow, or it refused it)."""


class LoopError(LockgateError):
    """The loop did not get where it should (worker died, no run started, run failed)."""


# -- local processes -------------------------------------------------------------------------------


class ServerStartError(LockgateError):
    """The embedded server did not become healthy."""


class StackError(LockgateError):
    """The stack could not be started, inspected or stopped; the message says what to do."""


class PortInUseError(StackError):
    """A port the stack needs is taken (by another program, or chosen twice)."""

    exit_code = 2


class StackRunningError(StackError):
    """Part of a stack started earlier still runs, so a new one would collide with it."""

    def __init__(self, message: str, *, state: Any = None) -> None:
        super().__init__(message)
        self.state = state  # the running stack's StackState, when it fully runs


class ServiceStartError(StackError):
    """A service exited or did not become healthy in time; everything started was stopped again."""

    def __init__(self, message: str, *, service: str, log_path: Path, log_tail: str) -> None:
        super().__init__(message)
        self.service = service
        self.log_path = log_path
        self.log_tail = log_tail
