"""Datasets lockgate knows: each declared once, in a typed spec, and found by name.

Built-in: ``loans`` (generated credit-risk applications) and ``breast-cancer`` (the Wisconsin
diagnostic data set that ships with scikit-learn). Your own dataset needs no change to any flow:
publish a ``DatasetSpec`` under the ``lockgate.datasets`` entry-point group of your package::

    [project.entry-points."lockgate.datasets"]
    my-dataset = "my_package.datasets:MY_DATASET"
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, Literal

from infra.errors import ConfigurationError, InvalidDatasetSpecError, UnknownDatasetError

if TYPE_CHECKING:
    import great_expectations as gx
    import pandas as pd
    import pandera.pandas as pa

ENTRY_POINT_GROUP = "lockgate.datasets"
logger = logging.getLogger(__name__)
TaskType = Literal["binary", "multiclass", "regression"]
Encoding = Literal["numeric", "one_hot", "boolean"]
MissingPolicy = Literal["refuse", "mean", "zero"]
TASK_TYPES: tuple[str, ...] = ("binary", "multiclass", "regression")
DEFAULT_MAX_CATEGORIES = 100


@dataclass(frozen=True)
class Slice:
    """A group the model is measured by: a column's values, or a numeric column cut into bands.

    Attributes:
        column: The column (a feature, or any other column of the dataset, e.g. a protected attribute
            that is not a model input).
        bins: Band edges for a numeric column, left-closed (``(20, 30, 40)`` gives 20-29 and 30-40,
            the last edge included); None groups by the column's values.
        name: Name of the slice in reports (default: the column, with ``_band`` when binned).
    """

    column: str
    bins: tuple[float, ...] | None = None
    name: str | None = None

    @property
    def label(self) -> str:
        return self.name or (f"{self.column}_band" if self.bins else self.column)

    def groups(self, frame: pd.DataFrame) -> pd.Series:
        """Group label per row of ``frame`` (NaN where the value is missing or outside the bands)."""
        import numpy as np
        import pandas as pd

        values = frame[self.column]
        if not self.bins:
            return pd.Series(values.to_numpy(), index=frame.index, name=self.label)
        edges = [float(b) for b in self.bins]
        labels = [_band(low, high) for low, high in zip(edges[:-2], edges[1:-1], strict=True)]
        labels.append(f"{_number(edges[-2])}-{_number(edges[-1])}")
        cut_edges = [*edges[:-1], float(np.nextafter(edges[-1], math.inf))]
        bands = pd.cut(
            pd.to_numeric(values, errors="coerce"), bins=cut_edges, right=False, labels=labels, ordered=True
        )
        return pd.Series(bands, index=frame.index, name=self.label)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _band(low: float, high: float) -> str:
    """``20-29`` for integer edges (the upper edge excluded), ``0.5-1`` otherwise."""
    if float(low).is_integer() and float(high).is_integer():
        return f"{int(low)}-{int(high) - 1}"
    return f"{_number(low)}-{_number(high)}"


@dataclass(frozen=True)
class DatasetSpec:
    """Everything lockgate needs to ingest, validate and train on one dataset.

    Attributes:
        name: Dataset name (lower case, digits and '-'); also names its ingest branches.
        description: One line for people.
        raw_model: pandera model a source must satisfy to be read (columns present, types coercible).
        validated_model: pandera model every row must satisfy to reach ``main``.
        expectation_suite: Builds the Great Expectations suite of dataset-level checks.
        key_columns: Columns that identify a row (must be unique).
        target: The label column.
        feature_columns: Model inputs; the inference request contract is derived from them.
        repository: lakeFS repository that holds the dataset.
        extra_columns: Policy for columns the contract does not declare (``reject``: the raw model is
            strict; a new column is a schema change to declare first).
        categorical_columns: Feature columns whose values are codes, not quantities (drift monitoring
            tests them with chi-squared instead of Kolmogorov-Smirnov). String and boolean features
            are always categorical and are added here.
        task: ``binary`` (a target of two values, ``positive_class`` one of them), ``multiclass``
            (three or more values, learnt from the training data) or ``regression`` (a numeric target).
        positive_class: The target value a binary model gives the probability of.
        encodings: How a feature enters the model, per column, where the dtype's default does not
            fit: ``numeric`` (standardised; the default for numbers), ``one_hot`` (a vocabulary learnt
            from the training data with an unknown bucket; the default for strings and categories) or
            ``boolean`` (0/1; the default for booleans). A coded integer (a zip-code area) may be
            declared ``one_hot``.
        missing: Policy for nulls in a numeric feature, per column: ``refuse`` (the default: a null is
            a contract violation, at training and at inference), ``mean`` or ``zero`` (imputed with the
            training mean or 0). Nulls in one-hot features fall into the unknown bucket.
        unknown_categories: At inference, a value not in a one-hot feature's vocabulary goes to the
            unknown bucket (``bucket``) or is refused with a 422 naming the allowed values (``refuse``).
        max_categories: Cardinality cap of a one-hot feature.
        over_max_categories: ``refuse`` (training stops, naming the column) or ``most_frequent``
            (keep the ``max_categories`` most frequent values; the rest fall into the unknown bucket).
        slices: The groups the model is also evaluated and monitored by (protected attributes,
            binned columns); the framework names no column itself.
    """

    name: str
    description: str
    raw_model: type[pa.DataFrameModel]
    validated_model: type[pa.DataFrameModel]
    expectation_suite: Callable[[], gx.ExpectationSuite]
    key_columns: tuple[str, ...]
    target: str
    feature_columns: tuple[str, ...]
    repository: str
    extra_columns: Literal["reject"] = "reject"
    categorical_columns: tuple[str, ...] = ()
    task: TaskType = "binary"
    positive_class: Any = 1
    encodings: Mapping[str, Encoding] = field(default_factory=dict)
    missing: Mapping[str, MissingPolicy] = field(default_factory=dict)
    unknown_categories: Literal["bucket", "refuse"] = "bucket"
    max_categories: int = DEFAULT_MAX_CATEGORIES
    over_max_categories: Literal["refuse", "most_frequent"] = "refuse"
    slices: tuple[Slice, ...] = ()
    columns: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        declared = tuple(self.raw_model.to_schema().columns)
        object.__setattr__(self, "columns", declared)
        missing = [c for c in (*self.key_columns, self.target, *self.feature_columns) if c not in declared]
        if missing:
            raise ValueError(
                f"dataset {self.name!r}: columns {missing} are not declared in {self.raw_model.__name__}"
            )
        stray = [c for c in self.categorical_columns if c not in self.feature_columns]
        if stray:
            raise ValueError(f"dataset {self.name!r}: categorical columns {stray} are not feature columns")
        kinds = self.feature_encodings
        implied = tuple(c for c in self.feature_columns if kinds.get(c) in ("one_hot", "boolean"))
        merged = tuple(dict.fromkeys((*self.categorical_columns, *implied)))
        object.__setattr__(self, "categorical_columns", merged)

    @property
    def numeric_columns(self) -> tuple[str, ...]:
        """Feature columns that are quantities (every feature not declared categorical)."""
        return tuple(c for c in self.feature_columns if c not in self.categorical_columns)

    @property
    def slice_columns(self) -> tuple[str, ...]:
        """Columns the slices read; those that are not features are kept in the reference sample too."""
        return tuple(dict.fromkeys(s.column for s in self.slices))

    @property
    def feature_encodings(self) -> dict[str, str]:
        """How each feature enters the model: declared in ``encodings``, else by its dtype."""
        schema = self.validated_model.to_schema().columns
        found = {}
        for column in self.feature_columns:
            if column in self.encodings:
                found[column] = self.encodings[column]
            elif column in schema:
                found[column] = _default_encoding(str(schema[column].dtype))
        return found

    def problems(self) -> list[str]:
        """What makes this spec unusable for its task or encoders, in words (empty when it is sound).

        Checked when the spec is loaded, so a bad spec is refused before any ingest or training run.
        """
        schema = self.validated_model.to_schema().columns
        found: list[str] = []
        if self.task not in TASK_TYPES:
            found.append(f"task {self.task!r} is not one of {', '.join(TASK_TYPES)}")
        target = schema.get(self.target)
        target_dtype = str(target.dtype).lower() if target is not None else ""
        allowed = _allowed_values(target) if target is not None else None
        if self.task == "regression" and target is not None and _default_encoding(target_dtype) != "numeric":
            found.append(
                f"target {self.target!r} has dtype {target.dtype}: a regression target must be a number"
            )
        if self.task == "binary" and allowed is not None:
            if len(allowed) != 2:
                found.append(
                    f"task 'binary' needs a target of two values; {self.target!r} allows {len(allowed)}: "
                    f"{allowed[:10]} (declare task='multiclass')"
                )
            elif self.positive_class not in allowed:
                found.append(
                    f"positive_class {self.positive_class!r} is not one of the target's values {allowed}"
                )
        if self.task == "multiclass" and allowed is not None and len(allowed) < 3:
            found.append(
                f"task 'multiclass' needs three or more classes; {self.target!r} allows {allowed} "
                "(declare task='binary')"
            )
        if self.target in self.feature_columns:
            found.append(f"the target {self.target!r} is also a feature column")
        for column in self.feature_columns:
            dtype = str(schema[column].dtype) if column in schema else "undeclared"
            if column not in schema:
                found.append(f"feature {column!r} is not declared in {self.validated_model.__name__}")
                continue
            if _default_encoding(dtype) == "unsupported" and column not in self.encodings:
                found.append(
                    f"feature {column!r} has dtype {dtype}, which no encoder takes (numbers, booleans, "
                    "strings and categories are supported; derive a number from it or drop it)"
                )
        for column, encoding in self.encodings.items():
            if column not in self.feature_columns:
                found.append(f"encodings names {column!r}, which is not a feature column")
            elif encoding not in ("numeric", "one_hot", "boolean"):
                found.append(f"encoding {encoding!r} of {column!r} is not numeric, one_hot or boolean")
            elif encoding == "numeric" and _default_encoding(str(schema[column].dtype)) != "numeric":
                found.append(f"feature {column!r} of dtype {schema[column].dtype} cannot be encoded numeric")
        encodings = self.feature_encodings
        for column, policy in self.missing.items():
            if column not in self.feature_columns:
                found.append(f"missing names {column!r}, which is not a feature column")
            elif policy not in ("refuse", "mean", "zero"):
                found.append(f"missing policy {policy!r} of {column!r} is not refuse, mean or zero")
            elif encodings.get(column) != "numeric":
                found.append(f"missing policy of {column!r}: only numeric features take one")
        if self.max_categories < 1:
            found.append(f"max_categories must be at least 1, got {self.max_categories}")
        for item in self.slices:
            if item.column not in self.columns:
                found.append(
                    f"slice {item.label!r} reads {item.column!r}, which the dataset does not declare"
                )
            elif item.bins is not None and (len(item.bins) < 2 or list(item.bins) != sorted(set(item.bins))):
                found.append(f"slice {item.label!r}: bins must be two or more increasing edges")
        return found

    def check(self) -> DatasetSpec:
        """This spec, or ``InvalidDatasetSpecError`` listing every problem."""
        found = self.problems()
        if found:
            raise InvalidDatasetSpecError(f"dataset {self.name!r} cannot be used: " + "; ".join(found))
        return self


def _default_encoding(dtype: str) -> str:
    """The encoding a pandera dtype gets when the spec declares none."""
    dtype = dtype.lower()
    if dtype.startswith("bool"):
        return "boolean"
    if "int" in dtype and "interval" not in dtype or "float" in dtype:
        return "numeric"
    if "str" in dtype or dtype in ("object", "category"):
        return "one_hot"
    return "unsupported"


def _allowed_values(column: Any) -> list[Any] | None:
    """The values an ``isin`` check allows, if the column has one."""
    for check in column.checks:
        if check.name == "isin":
            return list((check.statistics or {}).get("allowed_values", []))
    return None


def builtin_datasets() -> dict[str, DatasetSpec]:
    """The datasets that ship with lockgate."""
    from contracts import breast_cancer, diabetes, loans, penguins

    specs = [
        DatasetSpec(
            name="loans",
            description="Loan applications (credit risk), Agrawal et al. 1993 schema, generated.",
            raw_model=loans.LoanApplicationRaw,
            validated_model=loans.LoanApplication,
            expectation_suite=loans.loan_expectation_suite,
            key_columns=(loans.KEY_COLUMN,),
            target=loans.TARGET_COLUMN,
            feature_columns=loans.FEATURE_COLUMNS,
            repository="lockgate-loans",
            categorical_columns=loans.CATEGORICAL_COLUMNS,
            slices=(Slice("age", bins=(20, 30, 40, 50, 60, 70, 80), name="age_band"),),
        ),
        DatasetSpec(
            name="breast-cancer",
            description="Breast cancer Wisconsin (diagnostic), as shipped with scikit-learn.",
            raw_model=breast_cancer.BreastCancerRaw,
            validated_model=breast_cancer.BreastCancerSample,
            expectation_suite=breast_cancer.breast_cancer_expectation_suite,
            key_columns=(breast_cancer.KEY_COLUMN,),
            target=breast_cancer.TARGET_COLUMN,
            feature_columns=breast_cancer.FEATURE_COLUMNS,
            repository="lockgate-breast-cancer",
            slices=(Slice("mean_radius", bins=(0, 12, 15, 30), name="radius_band"),),
        ),
        DatasetSpec(
            name="penguins",
            description="Palmer Archipelago penguin species (Gorman et al. 2014), from palmerpenguins.",
            raw_model=penguins.PenguinRaw,
            validated_model=penguins.Penguin,
            expectation_suite=penguins.penguin_expectation_suite,
            key_columns=(penguins.KEY_COLUMN,),
            target=penguins.TARGET_COLUMN,
            feature_columns=penguins.FEATURE_COLUMNS,
            repository="lockgate-penguins",
            categorical_columns=("island", "sex"),
            task="multiclass",
            # Two birds were never measured: their measurements are imputed with the training mean
            # (the GX suite refuses a batch missing more than 5% of one). A null sex is one-hot's
            # unknown bucket.
            missing={column: "mean" for column in penguins.MEASUREMENT_COLUMNS},
            slices=(Slice("sex"), Slice("island")),
        ),
        DatasetSpec(
            name="diabetes",
            description="Diabetes progression after one year (Efron et al. 2004), from scikit-learn.",
            raw_model=diabetes.DiabetesRaw,
            validated_model=diabetes.DiabetesPatient,
            expectation_suite=diabetes.diabetes_expectation_suite,
            key_columns=(diabetes.KEY_COLUMN,),
            target=diabetes.TARGET_COLUMN,
            feature_columns=diabetes.FEATURE_COLUMNS,
            repository="lockgate-diabetes",
            categorical_columns=diabetes.CATEGORICAL_COLUMNS,
            task="regression",
            encodings={"sex": "one_hot"},  # a 1/2 code, not a quantity
            # The contract admits ages 18-120; the reference's run 19-79.
            slices=(Slice("sex"), Slice("age", bins=(18, 40, 60, 120), name="age_band")),
        ),
    ]
    return {spec.name: spec for spec in specs}


def available_datasets() -> dict[str, DatasetSpec]:
    """Built-in datasets plus those published by installed packages (entry points)."""
    found = builtin_datasets()
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        try:
            spec = entry.load()
        except Exception as error:  # one broken package must not hide every other dataset
            logger.warning(
                "entry point %r (%s) of %r cannot be loaded: %s: %s",
                entry.name,
                entry.value,
                ENTRY_POINT_GROUP,
                type(error).__name__,
                error,
            )
            continue
        if not isinstance(spec, DatasetSpec):
            raise ConfigurationError(
                f"entry point {entry.name!r} ({entry.value}) of group {ENTRY_POINT_GROUP!r} is not a "
                "DatasetSpec: publish a tasks.datasets.DatasetSpec there"
            )
        found[spec.name] = spec
    return found


def check_dataset_name(name: str) -> str:
    """``name`` if a dataset is declared under it (a pydantic validator for flow parameters)."""
    known = available_datasets()
    if name not in known:
        raise ValueError(f"unknown dataset {name!r}; known datasets: {', '.join(sorted(known))}")
    return name


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


def dataset_for_repository(repository: str) -> DatasetSpec:
    """The declared dataset stored in lakeFS repository ``repository`` (e.g. from a model card).

    Raises:
        UnknownDatasetError: no declared dataset lives there.
    """
    spec = find_dataset_for_repository(repository)
    if spec is None:
        raise UnknownDatasetError(f"no declared dataset lives in lakeFS repository {repository!r}")
    return spec


def get_dataset(name: str) -> DatasetSpec:
    """The dataset declared as ``name``, checked; the error lists the known names.

    Raises:
        UnknownDatasetError: nothing is declared as ``name``.
        InvalidDatasetSpecError: the spec's task or columns cannot be used (``DatasetSpec.problems``).
    """
    datasets = available_datasets()
    if name not in datasets:
        raise UnknownDatasetError(f"unknown dataset {name!r}; known datasets: {', '.join(sorted(datasets))}")
    return datasets[name].check()


def dataset_of_card(card: Any) -> DatasetSpec:
    """The declared dataset a model version was trained on: the one its card names, or (older cards)
    the one stored in its data repository. Serving, monitoring and the commands follow the model this
    way, so a second dataset needs no setting.

    Raises:
        UnknownDatasetError: that dataset is not declared here (install the package that declares it).
    """
    name = card.feature_spec.get("dataset")
    if name:
        return get_dataset(name)
    spec = find_dataset_for_repository(card.data_repository)
    if spec is None:
        raise UnknownDatasetError(
            f"{card.model_name} {card.version} was trained on lakeFS repository {card.data_repository!r}, "
            "where no declared dataset lives (see `lockgate datasets`)"
        )
    return spec
