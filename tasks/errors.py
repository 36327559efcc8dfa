"""The project's exception types: bad input and missing data raise these, with messages a user can act on."""

from __future__ import annotations


class LockgateError(Exception):
    """Base of every error lockgate raises on purpose."""


class InvalidInputError(LockgateError, ValueError):
    """An argument (name, path, metadata, message, DataFrame) was refused before anything was written."""


class InvalidMetadataError(InvalidInputError):
    """Commit or object metadata was not a mapping of non-empty string keys to string values."""


class RepositoryNotFoundError(LockgateError, LookupError):
    """The named repository does not exist on the lakeFS server."""


class RepositoryConflictError(LockgateError):
    """A repository exists under the requested name but with different settings."""


class BranchExistsError(LockgateError):
    """A branch to be created already exists (and ``exist_ok`` was not given)."""


class RefNotFoundError(LockgateError, LookupError):
    """A branch, tag, commit ID or ref expression (``main~1``) did not resolve."""


class ObjectNotFoundError(LockgateError, LookupError):
    """The ref exists but holds no object at the requested path."""


class NoChangesError(LockgateError):
    """A commit or merge found nothing to record (pass ``allow_empty=True`` to record one anyway)."""


class MergeConflictError(LockgateError):
    """Source and destination changed the same paths differently; nothing was merged."""


class DataFormatError(LockgateError, ValueError):
    """Stored bytes could not be decoded as the expected format (Parquet)."""


class EvaluationError(InvalidInputError):
    """Labels, probabilities, slices or a metric name given to evaluation were refused."""


class ModelNotFoundError(LockgateError, LookupError):
    """A model, version or alias asked of the registry does not exist (the message lists what does)."""


class ModelIntegrityError(LockgateError):
    """A stored model artifact is missing, unreadable, or its SHA-256 differs from its model card."""


class ModelRegistrationError(LockgateError):
    """No version number could be claimed (nothing visible), or a claimed version did not merge to main."""
