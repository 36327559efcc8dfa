"""What a scaffold declares for a data file: its key, its task and positive class, its features and their
missing-value and encoding policies, and what the user should review; each decision with its reason.

Every refusal raises ``InvalidInputError`` naming the column or value and what to do instead.
"""

from __future__ import annotations

import difflib
import keyword
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from infra.errors import InvalidInputError
from tasks.datasets import DEFAULT_MAX_CATEGORIES, TASK_TYPES, TaskType
from tasks.scaffold.profile import MAX_LISTED_VALUES, ColumnProfile, DataProfile

# A dataset name is also a Python package name's stem, an ingest branch's infix (``ingest-<name>-<run>``)
# and, prefixed with ``lockgate-``, a lakeFS repository name (at most 63 characters).
DATASET_NAME_PATTERN = r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$"
DATASET_NAME_MAX_LENGTH = 40
DATASET_NAME_RULE = (
    f"1-{DATASET_NAME_MAX_LENGTH} lower-case letters, digits and single '-' between them, "
    "starting with a letter"
)
# At most this many classes make a target multiclass when --task is not given (above: regression).
MAX_INFERRED_CLASSES = MAX_LISTED_VALUES
# An integer feature with at most this many values is checked with ``isin`` (it may be a code).
MAX_CODE_VALUES = 10
# Class labels that name the outcome a binary model scores ("yes, churned", "true", 1).
POSITIVE_WORDS = frozenset({"1", "1.0", "yes", "y", "true", "t", "positive", "pos"})
_KIND_WORDS = {"bool": "true/false values", "str": "text", "datetime": "dates", "other": "other values"}
_ID_NAME = re.compile(r"(^|[_\W])(id|key|uuid|guid)$", re.IGNORECASE)
_CAMEL_ID_NAME = re.compile(r"[a-z0-9](Id|ID|Key)$")  # customerId, CustomerID (not "valid", "paid")


@dataclass(frozen=True)
class ScaffoldPlan:
    """Everything the rendered package declares, with why.

    Attributes:
        name: Dataset name.
        package: Python package of the scaffold (``lockgate_<name>``).
        source: The data file, for messages and comments.
        profile: The file as read and described.
        key_columns: Columns that identify a row; ``key_reason`` says how they were chosen.
        target: The label column.
        task: ``binary``, ``multiclass`` or ``regression``; ``task_reason`` says how it was chosen.
        positive_class: For a binary task, the class the model scores; ``positive_reason`` says why.
        classes: The target's classes (classification with at most ``MAX_LISTED_VALUES`` classes).
        feature_columns: Model inputs: every column but the key and target, except those in ``excluded``.
        excluded: Columns kept in the contract but not used as features, with the reason.
        missing: Missing-value policy of numeric features that have nulls in the file (``mean``).
        encodings: Encodings written out for review (text and boolean-with-nulls features: ``one_hot``).
        over_max_categories: ``most_frequent`` when a text feature has more than the cap of values.
        notes: What to review, in sentences (printed by the CLI and listed in the README).
    """

    name: str
    package: str
    source: str
    profile: DataProfile
    key_columns: tuple[str, ...]
    key_reason: str
    target: str
    task: TaskType
    task_reason: str
    positive_class: Any
    positive_reason: str
    classes: tuple[Any, ...] | None
    feature_columns: tuple[str, ...]
    excluded: Mapping[str, str]
    missing: Mapping[str, str]
    encodings: Mapping[str, str]
    over_max_categories: str
    notes: tuple[str, ...]

    @property
    def repository(self) -> str:
        return f"lockgate-{self.name}"

    @property
    def distribution(self) -> str:
        return f"lockgate-{self.name}"


def check_new_dataset_name(name: str) -> str:
    """``name`` if it can name a dataset (``DATASET_NAME_RULE``) not built into lockgate.

    Raises:
        InvalidInputError: it cannot.
    """
    from tasks.datasets import builtin_datasets

    if len(name) > DATASET_NAME_MAX_LENGTH or not re.match(DATASET_NAME_PATTERN, name):
        raise InvalidInputError(f"{name!r} is not a valid dataset name: use {DATASET_NAME_RULE}")
    if name in builtin_datasets():
        raise InvalidInputError(f"dataset name {name!r} is built into lockgate: choose another --name")
    return name


def package_name(name: str) -> str:
    """The Python package a scaffold of dataset ``name`` lives in."""
    return "lockgate_" + name.replace("-", "_")


def infer_plan(
    profile: DataProfile,
    *,
    name: str,
    target: str,
    task: str | None = None,
    positive_class: str | None = None,
    key_columns: Sequence[str] = (),
) -> ScaffoldPlan:
    """Decide key, task, features and policies for a profiled file.

    Args:
        profile: The file, read and described (``profile_data``).
        name: Dataset name (checked against ``DATASET_NAME_RULE``).
        target: The label column.
        task: ``binary``, ``multiclass`` or ``regression``; None infers it from the target.
        positive_class: The binary target's positive class, as text (``"yes"``, ``"1"``); None infers it.
        key_columns: Columns that identify a row; empty picks one unique column of the file.

    Raises:
        InvalidInputError: the name, target, task, positive class or key cannot work (the message says
            which and why).
    """
    check_new_dataset_name(name)
    source = profile.source
    if target not in profile.names:
        raise InvalidInputError(
            f"target {target!r} is not a column of {source}{_suggestion(target, profile.names)}; "
            f"its columns are: {', '.join(profile.names)}"
        )
    column = profile.column(target)
    keys, key_reason = choose_key(profile, target=target, requested=tuple(key_columns))
    chosen_task, task_reason = infer_task(column, task=task, source=source)
    classes = column.values if chosen_task != "regression" else None
    positive, positive_reason = (None, "")
    if positive_class is not None and chosen_task != "binary":
        raise InvalidInputError(
            f"--positive-class applies to a binary target; {target!r} is {chosen_task} ({task_reason})"
        )
    if chosen_task == "binary":
        positive, positive_reason = choose_positive_class(column, positive_class)
    features, excluded = _features(profile, exclude=(*keys, target))
    missing = {c: "mean" for c in features if profile.column(c).numeric and profile.column(c).nullable}
    encodings = {
        c: "one_hot"
        for c in features
        if profile.column(c).kind == "str"
        or (profile.column(c).kind == "bool" and profile.column(c).nullable)
    }
    wide = [
        c
        for c in features
        if profile.column(c).kind == "str" and profile.column(c).distinct > DEFAULT_MAX_CATEGORIES
    ]
    notes = _notes(profile, target=target, features=features, excluded=excluded, wide=wide)
    return ScaffoldPlan(
        name=name,
        package=package_name(name),
        source=source,
        profile=profile,
        key_columns=keys,
        key_reason=key_reason,
        target=target,
        task=chosen_task,
        task_reason=task_reason,
        positive_class=positive,
        positive_reason=positive_reason,
        classes=classes,
        feature_columns=features,
        excluded=excluded,
        missing=missing,
        encodings=encodings,
        over_max_categories="most_frequent" if wide else "refuse",
        notes=notes,
    )


def choose_key(
    profile: DataProfile, *, target: str, requested: tuple[str, ...] = ()
) -> tuple[tuple[str, ...], str]:
    """The key columns and how they were chosen: the ones requested (checked), else a unique column.

    Rows are keyed by columns already in the file: ingestion stores files as they are, so a key added
    at scaffolding time would not exist in the next batch. Without ``requested``, the first integer or
    text column with no empty and no repeated value is the key, preferring names like ``id`` or
    ``customer_id``.

    Raises:
        InvalidInputError: a requested column is missing, is the target, is empty somewhere, repeats, or
            no column of the file can be a key.
    """
    source = profile.source
    if requested:
        for column in requested:
            if column not in profile.names:
                raise InvalidInputError(
                    f"--key {column!r} is not a column of {source}{_suggestion(column, profile.names)}; "
                    f"its columns are: {', '.join(profile.names)}"
                )
            if column == target:
                raise InvalidInputError(f"--key {column!r} is the target: a label cannot identify a row")
            found = profile.column(column)
            if found.nulls:
                raise InvalidInputError(
                    f"--key {column!r} is empty in {found.nulls} row(s) of {source}: a key must identify "
                    "every row"
                )
            if found.kind not in ("int", "str", "datetime"):
                raise InvalidInputError(
                    f"--key {column!r} holds {found.kind} values: a key must be integers or text "
                    "(floats do not compare exactly)"
                )
        repeated = profile.typed.duplicated(subset=list(requested), keep="first")
        if repeated.any():
            example = profile.typed.loc[repeated, list(requested)].iloc[0].tolist()
            raise InvalidInputError(
                f"--key {', '.join(requested)} does not identify the rows of {source}: {int(repeated.sum())} "
                f"row(s) repeat an earlier row's key (e.g. {example}); add a column or choose others"
            )
        return requested, "given with --key"
    candidates = [
        c
        for c in profile.columns
        if c.name != target and c.kind in ("int", "str") and not c.nulls and c.distinct == profile.rows
    ]
    if not candidates:
        raise InvalidInputError(
            f"no column of {source} identifies its rows (an integer or text column with no empty and no "
            "repeated value): add an ID column to the file, or pass --key COLUMN (repeat --key for a "
            "compound key)"
        )
    named = [c for c in candidates if _ID_NAME.search(c.name) or _CAMEL_ID_NAME.search(c.name)]
    if named:
        return (named[0].name,), f"{named[0].name!r} is unique in {source} and its name says it is an ID"
    return (
        (candidates[0].name,),
        f"{candidates[0].name!r} is the first column unique in {source}; its name does not say it is an ID, "
        "so check that it really identifies a row (or pass --key)",
    )


def infer_task(column: ColumnProfile, *, task: str | None, source: str) -> tuple[TaskType, str]:
    """The task for a target column and why: the one given (checked against the values), else inferred.

    Two values make a binary task; a number that is not a whole number, or has more than
    ``MAX_INFERRED_CLASSES`` values, a regression; 3 to ``MAX_INFERRED_CLASSES`` values a multiclass one.

    Raises:
        InvalidInputError: the target has fewer than two values, or the given task cannot fit them.
    """
    name, count = column.name, column.distinct
    shown = list(column.values[:10]) if column.values else []
    if task is not None and task not in TASK_TYPES:
        raise InvalidInputError(f"--task {task!r} is not one of {', '.join(TASK_TYPES)}")
    if count == 0:
        raise InvalidInputError(f"target {name!r} is empty in every row of {source}")
    if column.kind in ("datetime", "other"):
        raise InvalidInputError(
            f"target {name!r} holds {column.kind} values: a target must be numbers, text or booleans"
        )
    if count == 1:
        raise InvalidInputError(
            f"target {name!r} has a single value ({shown[0]!r}) in {source}: a model needs at least two "
            "classes (or a varying number) to learn from"
        )
    if task == "regression":
        if not column.numeric:
            raise InvalidInputError(
                f"--task regression needs a numeric target; {name!r} holds {_KIND_WORDS[column.kind]} "
                f"(e.g. {shown[:5]}): use --task binary or multiclass"
            )
        return "regression", "given with --task"
    if task == "binary":
        if count != 2:
            listed = f": {shown}" if shown else ""
            raise InvalidInputError(
                f"--task binary needs a target of two values; {name!r} has {count}{listed} "
                "(use --task multiclass)"
            )
        return "binary", "given with --task"
    if task == "multiclass":
        if count < 3:
            raise InvalidInputError(
                f"--task multiclass needs three or more classes; {name!r} has {shown} (use --task binary)"
            )
        return "multiclass", "given with --task"
    if count == 2:
        return "binary", f"{name!r} has two values ({shown[0]!r}, {shown[1]!r})"
    if column.numeric and (not column.integral or count > MAX_INFERRED_CLASSES):
        detail = "not all whole numbers" if not column.integral else f"{count} distinct values"
        return "regression", f"{name!r} is a number with many values ({detail})"
    if count <= MAX_INFERRED_CLASSES:
        more = ", ..." if count > 5 else ""
        return "multiclass", f"{name!r} has {count} values ({', '.join(repr(v) for v in shown[:5])}{more})"
    raise InvalidInputError(
        f"target {name!r} holds {count} distinct {column.kind} values: too many for inferred classes "
        f"(at most {MAX_INFERRED_CLASSES}); pass --task multiclass if each value is a class"
    )


def choose_positive_class(column: ColumnProfile, given: str | None) -> tuple[Any, str]:
    """The binary target's positive class and why: the value given, else a yes/true/1-like value, else the
    second of the two sorted values.

    Raises:
        InvalidInputError: ``given`` is not one of the target's values.
    """
    values = list(column.values or ())
    if given is not None:
        for value in values:
            if str(value) == given or _same_number(value, given):
                return value, "given with --positive-class"
        raise InvalidInputError(
            f"--positive-class {given!r} is not a value of {column.name!r}; its values are {values}"
        )
    positive = [v for v in values if str(v).strip().lower() in POSITIVE_WORDS]
    if len(positive) == 1:
        return positive[0], f"{positive[0]!r} reads as the positive answer"
    ordered = sorted(values)
    return ordered[1], f"{ordered[1]!r} is the second of the sorted values {ordered}"


def attribute_names(columns: Sequence[str]) -> dict[str, str]:
    """A valid, distinct Python attribute per column (the column itself where it can be one)."""
    import pandera.pandas as pa

    reserved = set(dir(pa.DataFrameModel)) | {"Config"}
    taken: set[str] = set()
    found = {}
    for column in columns:
        base = column
        if not (column.isidentifier() and not keyword.iskeyword(column) and not column.startswith("_")):
            base = re.sub(r"\W+", "_", column).strip("_").lower() or "column"
            base = f"column_{base}" if base[0].isdigit() else base
        if keyword.iskeyword(base) or base in reserved:
            base = f"{base}_"
        attribute, suffix = base, 2
        while attribute in taken:
            attribute, suffix = f"{base}_{suffix}", suffix + 1
        taken.add(attribute)
        found[column] = attribute
    return found


def _same_number(value: Any, text: str) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return float(text) == float(value)
    except ValueError:
        return False


def _suggestion(name: str, names: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, list(names), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _features(profile: DataProfile, *, exclude: Sequence[str]) -> tuple[tuple[str, ...], dict[str, str]]:
    """Every column not in ``exclude`` that an encoder can take and that varies; the rest with why."""
    features, excluded = [], {}
    for column in profile.columns:
        if column.name in exclude:
            continue
        if column.kind in ("datetime", "other"):
            excluded[column.name] = (
                f"{column.kind} values, which no encoder takes: derive a number from them (age, weekday) "
                "in the file, or leave them out"
            )
        elif column.distinct == 0:
            excluded[column.name] = "empty in every row of the file"
        elif column.distinct == 1 and not column.nulls:
            excluded[column.name] = f"constant ({column.values[0]!r}) in the file: it carries no information"
        else:
            features.append(column.name)
    return tuple(features), excluded


def _notes(
    profile: DataProfile,
    *,
    target: str,
    features: Sequence[str],
    excluded: Mapping[str, str],
    wide: list[str],
) -> tuple[str, ...]:
    """Things in the file that the contract or spec handles by a guess the user should check."""
    notes = []
    label = profile.column(target)
    if label.nulls:
        notes.append(
            f"{label.nulls} row(s) of {profile.source} have no {target!r}: the validated model refuses them "
            "(training needs a label); fill or remove them before ingesting"
        )
    notes += [f"{column!r} is not a feature: {reason}" for column, reason in excluded.items()]
    for name in features:
        column = profile.column(name)
        if column.text_booleans:
            notes.append(f"{name!r} holds true/false as text: declared str and one-hot encoded")
        if column.kind == "float" and column.integral and column.nulls:
            notes.append(
                f"{name!r} holds whole numbers with empty values: declared float (NaN marks a missing value)"
            )
        if column.leading_zeros:
            notes.append(f"{name!r} has numbers with leading zeros: kept as text codes")
        if column.kind == "int" and column.values is not None and len(column.values) <= MAX_CODE_VALUES:
            notes.append(
                f"{name!r} has only {len(column.values)} integer values {list(column.values)}: if they are "
                f"codes, not quantities, declare encodings={{{name!r}: 'one_hot'}}"
            )
        if column.kind == "str" and column.distinct > 0.9 * profile.rows and profile.rows >= 20:
            notes.append(f"{name!r} is nearly unique per row: an identifier or free text is a poor feature")
    if wide:
        notes.append(
            f"{wide} have more than {DEFAULT_MAX_CATEGORIES} values: only the most frequent are one-hot "
            "encoded (over_max_categories='most_frequent')"
        )
    return tuple(notes)
