"""The breast cancer Wisconsin (diagnostic) data set that ships inside scikit-learn, on lockgate's contract.

No network: scikit-learn bundles the 569 samples in its wheel. ``breast_cancer_frame`` renames the
columns to ``contracts.breast_cancer``'s names and adds the ``sample_id`` key; ``write_breast_cancer``
writes it as a source file for ``lockgate ingest``, to a local path or ``s3://bucket/key``.
"""

from __future__ import annotations

from typing import Literal

import pandas as pd

from contracts.breast_cancer import FEATURE_COLUMNS, KEY_COLUMN, TARGET_COLUMN
from infra.errors import InvalidInputError
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
    if tuple(features.columns) != FEATURE_COLUMNS:
        # Guards against a scikit-learn release renaming or reordering its features.
        raise InvalidInputError(
            f"scikit-learn's breast cancer features {list(features.columns)} no longer match the "
            f"contract's {list(FEATURE_COLUMNS)}"
        )
    frame = features.astype("float64")
    frame.insert(0, KEY_COLUMN, range(len(frame)))
    frame[KEY_COLUMN] = frame[KEY_COLUMN].astype("int64")
    frame[TARGET_COLUMN] = bunch.target.astype("int64").to_numpy()
    return frame.reset_index(drop=True)


def write_breast_cancer(destination: str, *, file_format: Literal["csv", "parquet"], s3_client=None) -> str:
    """Write the data set to a local file or an ``s3://bucket/key`` URI.

    Args:
        destination: A file path (parent folders are created), or ``s3://bucket/key``.
        file_format: ``csv`` or ``parquet``.
        s3_client: A boto3 S3 client, required for ``s3://`` destinations.

    Returns:
        The destination written.

    Raises:
        InvalidInputError: Unknown format, malformed S3 URI, or an S3 destination without a client.
    """
    if file_format not in ("csv", "parquet"):
        raise InvalidInputError(f"unknown format {file_format!r}: use 'csv' or 'parquet'")
    frame = breast_cancer_frame()
    return write_destination(
        destination,
        lambda handle: write_chunks(iter([frame]), handle, file_format),
        file_format=file_format,
        s3_client=s3_client,
    )
