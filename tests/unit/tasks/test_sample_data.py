"""``write_sample_data`` writes each real data set so that its dataset spec accepts it."""

from __future__ import annotations

import pandas as pd
import pytest

from infra.errors import InvalidInputError, UnknownDatasetError
from tasks.datasets import get_dataset
from tasks.sample_data import SAMPLE_DATASETS, write_sample_data


def test_every_sample_data_set_is_a_declared_dataset_with_its_contract_columns(tmp_path) -> None:
    assert SAMPLE_DATASETS == ("breast-cancer", "penguins", "diabetes")
    for name in SAMPLE_DATASETS:
        spec = get_dataset(name)
        destination = tmp_path / f"{name}.parquet"
        write_sample_data(name, str(destination), file_format="parquet")

        written = pd.read_parquet(destination)

        assert tuple(written.columns) == (*spec.key_columns, *spec.feature_columns, spec.target), name
        spec.validated_model.validate(spec.raw_model.validate(written))


def test_write_to_s3_uploads_through_the_given_client(tmp_path) -> None:
    uploads: dict[tuple[str, str], bytes] = {}

    class RecordingS3:
        def upload_file(self, filename: str, bucket: str, key: str) -> None:
            with open(filename, "rb") as handle:
                uploads[(bucket, key)] = handle.read()

    write_sample_data("penguins", "s3://sources/penguins/all.csv", file_format="csv", s3_client=RecordingS3())

    (target,) = uploads
    assert target == ("sources", "penguins/all.csv")
    lines = uploads[target].decode().splitlines()
    assert (
        lines[0]
        == "penguin_id,island,bill_length_mm,bill_depth_mm,flipper_length_mm,body_mass_g,sex,year,species"
    )
    assert len(lines) == 1 + 344
    assert lines[4] == "3,Torgersen,,,,,,2007,Adelie"  # an unmeasured bird: empty fields, read back as nulls


@pytest.mark.parametrize(
    ("dataset", "destination", "options", "error", "message"),
    [
        ("iris", "out.csv", {"file_format": "csv"}, UnknownDatasetError, "no sample data for dataset 'iris'"),
        (
            "loans",
            "out.csv",
            {"file_format": "csv"},
            UnknownDatasetError,
            "breast-cancer, penguins, diabetes",
        ),
        ("penguins", "out.json", {"file_format": "json"}, InvalidInputError, "unknown format 'json'"),
        ("diabetes", "s3://bucket/key.csv", {"file_format": "csv"}, InvalidInputError, "needs an S3 client"),
    ],
)
def test_write_refuses_bad_arguments(
    tmp_path, dataset: str, destination: str, options: dict, error: type, message: str
) -> None:
    target = destination if destination.startswith("s3") else str(tmp_path / destination)

    with pytest.raises(error, match=message):
        write_sample_data(dataset, target, **options)

    assert list(tmp_path.iterdir()) == []
