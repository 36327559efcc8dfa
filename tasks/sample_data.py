"""Real public data sets, on lockgate's contracts, written as source files for ``lockgate ingest``.

No network: each ships inside an installed wheel. scikit-learn bundles the breast cancer Wisconsin
(diagnostic) samples and the diabetes data of Efron et al. (2004); ``palmerpenguins`` (MIT, data CC0)
bundles the Palmer Archipelago penguins. ``<name>_frame`` loads one with its contract's column names,
types and key; ``write_sample_data`` writes it to a local path or ``s3://bucket/key``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import pandas as pd

from contracts import breast_cancer, diabetes, penguins
from infra.errors import InvalidInputError, UnknownDatasetError
from tasks.generate import write_chunks, write_destination


def breast_cancer_frame() -> pd.DataFrame:
    """The 569 samples, columns in contract order: ``sample_id``, the 30 features, the diagnosis.

    Returns:
        A frame with ``sample_id`` 0..568 and ``diagnosis_benign`` (1 benign, 0 malignant, as in
        scikit-learn's ``target``).
    """
    from sklearn.datasets import load_breast_cancer  # ~1 s import; only this function needs it

    bunch = load_breast_cancer(as_frame=True)
    features = bunch.data
    features.columns = [str(name).replace(" ", "_") for name in features.columns]
    if tuple(features.columns) != breast_cancer.FEATURE_COLUMNS:
        # Guards against a scikit-learn release renaming or reordering its features.
        raise InvalidInputError(
            f"scikit-learn's breast cancer features {list(features.columns)} no longer match the "
            f"contract's {list(breast_cancer.FEATURE_COLUMNS)}"
        )
    frame = features.astype("float64")
    frame.insert(0, breast_cancer.KEY_COLUMN, range(len(frame)))
    frame[breast_cancer.KEY_COLUMN] = frame[breast_cancer.KEY_COLUMN].astype("int64")
    frame[breast_cancer.TARGET_COLUMN] = bunch.target.astype("int64").to_numpy()
    return frame.reset_index(drop=True)


def penguins_frame() -> pd.DataFrame:
    """The 344 penguins, columns in contract order: ``penguin_id``, the 7 features, the species.

    Returns:
        A frame with ``penguin_id`` 0..343 in the file's order and the package's values unchanged:
        nulls where a bird was not measured (2 rows) or its sex not determined (11 rows).
    """
    from palmerpenguins import load_penguins  # reads the CSV the package bundles

    source = load_penguins()
    expected = {penguins.TARGET_COLUMN, *penguins.FEATURE_COLUMNS}
    if set(source.columns) != expected:
        # Guards against a palmerpenguins release renaming, adding or dropping columns.
        raise InvalidInputError(
            f"palmerpenguins' columns {sorted(source.columns)} no longer match the contract's "
            f"{sorted(expected)}"
        )
    frame = source[[*penguins.FEATURE_COLUMNS, penguins.TARGET_COLUMN]].copy()
    for column in ("island", "sex", penguins.TARGET_COLUMN):
        frame[column] = frame[column].astype("str")
    for column in penguins.MEASUREMENT_COLUMNS:
        frame[column] = frame[column].astype("float64")
    frame["year"] = frame["year"].astype("int64")
    frame.insert(0, penguins.KEY_COLUMN, pd.Series(range(len(frame)), dtype="int64", index=frame.index))
    return frame.reset_index(drop=True)


def diabetes_frame() -> pd.DataFrame:
    """The 442 patients in original units, columns in contract order: ``patient_id``, the 10 features,
    ``disease_progression``.

    Returns:
        A frame with ``patient_id`` 0..441, ``age`` and ``sex`` as integers and the rest as floats, as
        in scikit-learn's ``load_diabetes(scaled=False)``.
    """
    from sklearn.datasets import load_diabetes  # ~1 s import; only this function needs it

    bunch = load_diabetes(as_frame=True, scaled=False)
    features = bunch.data
    if tuple(features.columns) != diabetes.FEATURE_COLUMNS:
        raise InvalidInputError(
            f"scikit-learn's diabetes features {list(features.columns)} no longer match the "
            f"contract's {list(diabetes.FEATURE_COLUMNS)}"
        )
    frame = features.astype("float64")
    for column in ("age", "sex"):
        whole = frame[column].round()
        if not (whole == frame[column]).all():
            raise InvalidInputError(f"scikit-learn's diabetes {column!r} is no longer a whole number")
        frame[column] = whole.astype("int64")
    frame.insert(0, diabetes.KEY_COLUMN, pd.Series(range(len(frame)), dtype="int64", index=frame.index))
    frame[diabetes.TARGET_COLUMN] = bunch.target.astype("float64").to_numpy()
    return frame.reset_index(drop=True)


# Data set name (as in ``tasks.datasets``) -> its loader.
_FRAMES: dict[str, Callable[[], pd.DataFrame]] = {
    "breast-cancer": breast_cancer_frame,
    "penguins": penguins_frame,
    "diabetes": diabetes_frame,
}
SAMPLE_DATASETS: tuple[str, ...] = tuple(_FRAMES)


def write_sample_data(
    dataset: str, destination: str, *, file_format: Literal["csv", "parquet"], s3_client=None
) -> str:
    """Write one of the ``SAMPLE_DATASETS`` to a local file or an ``s3://bucket/key`` URI.

    Args:
        dataset: ``breast-cancer``, ``penguins`` or ``diabetes``.
        destination: A file path (parent folders are created), or ``s3://bucket/key``.
        file_format: ``csv`` or ``parquet``.
        s3_client: A boto3 S3 client, required for ``s3://`` destinations.

    Returns:
        The destination written.

    Raises:
        UnknownDatasetError: ``dataset`` is not one of ``SAMPLE_DATASETS``.
        InvalidInputError: Unknown format, malformed S3 URI, or an S3 destination without a client.
    """
    if dataset not in _FRAMES:
        raise UnknownDatasetError(
            f"no sample data for dataset {dataset!r}; these ship real data: {', '.join(SAMPLE_DATASETS)}"
        )
    if file_format not in ("csv", "parquet"):
        raise InvalidInputError(f"unknown format {file_format!r}: use 'csv' or 'parquet'")
    frame = _FRAMES[dataset]()
    return write_destination(
        destination,
        lambda handle: write_chunks(iter([frame]), handle, file_format),
        file_format=file_format,
        s3_client=s3_client,
    )


def write_breast_cancer(destination: str, *, file_format: Literal["csv", "parquet"], s3_client=None) -> str:
    """``write_sample_data("breast-cancer", ...)``, under the name earlier callers use."""
    return write_sample_data("breast-cancer", destination, file_format=file_format, s3_client=s3_client)
