"""Datasets lockgate knows: each declared once, in a typed spec, and found by name.

Built-in: ``loans`` (generated credit-risk applications) and ``breast-cancer`` (the Wisconsin
diagnostic data set that ships with scikit-learn). Your own dataset needs no change to any flow:
publish a ``DatasetSpec`` under the ``lockgate.datasets`` entry-point group of your package::

    [project.entry-points."lockgate.datasets"]
    my-dataset = "my_package.datasets:MY_DATASET"
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Literal

from infra.errors import ConfigurationError, UnknownDatasetError

if TYPE_CHECKING:
    import great_expectations as gx
    import pandera.pandas as pa

ENTRY_POINT_GROUP = "lockgate.datasets"


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
            tests them with chi-squared instead of Kolmogorov-Smirnov).
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

    @property
    def numeric_columns(self) -> tuple[str, ...]:
        """Feature columns that are quantities (every feature not declared categorical)."""
        return tuple(c for c in self.feature_columns if c not in self.categorical_columns)


def builtin_datasets() -> dict[str, DatasetSpec]:
    """The datasets that ship with lockgate."""
    from contracts import breast_cancer, loans

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
        ),
    ]
    return {spec.name: spec for spec in specs}


def available_datasets() -> dict[str, DatasetSpec]:
    """Built-in datasets plus those published by installed packages (entry points)."""
    found = builtin_datasets()
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        spec = entry.load()
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
    """The dataset declared as ``name``; the error lists the known names."""
    datasets = available_datasets()
    if name not in datasets:
        raise UnknownDatasetError(f"unknown dataset {name!r}; known datasets: {', '.join(sorted(datasets))}")
    return datasets[name]
