"""Task types and fitted preprocessing: what each task learns, answers and refuses."""

from __future__ import annotations

import dataclasses
from collections import Counter

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pytest
import torch
from pandera.typing import Series

from infra.errors import InvalidDatasetSpecError, InvalidInputError, UnusableDataError
from tasks.datasets import DatasetSpec, Slice, get_dataset
from tasks.preprocessing import Preprocessor, column_statistics, fit_preprocessor, merge_statistics
from tasks.problems import Problem, fit_problem
from tasks.retraining import decide_retrain


class Raw(pa.DataFrameModel):
    key: Series[int]
    colour: Series[str] = pa.Field(nullable=True)
    size: Series[float] = pa.Field(nullable=True)
    flag: Series[bool]
    answer: Series[str] = pa.Field(isin=["yes", "no"])
    grade: Series[str] = pa.Field(isin=["a", "b", "c", "d", "e"])
    price: Series[float]


def spec(**changes) -> DatasetSpec:
    base = DatasetSpec(
        name="toy",
        description="toy",
        raw_model=Raw,
        validated_model=Raw,
        expectation_suite=lambda: None,
        key_columns=("key",),
        target="answer",
        feature_columns=("colour", "size", "flag"),
        repository="toy",
        task="binary",
        positive_class="yes",
        missing={"size": "mean"},
    )
    return dataclasses.replace(base, **changes)


def frame(rows: int = 40) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "key": range(rows),
            "colour": rng.choice(["red", "green", "blue"], rows).astype(object),
            "size": rng.normal(10, 2, rows),
            "flag": rng.random(rows) > 0.5,
            "answer": rng.choice(["yes", "no"], rows),
            "grade": rng.choice(list("abcde"), rows),
            "price": rng.normal(100, 10, rows),
        }
    )


def test_string_and_boolean_features_are_categorical_and_encoded_by_dtype() -> None:
    toy = spec()
    assert toy.feature_encodings == {"colour": "one_hot", "size": "numeric", "flag": "boolean"}
    assert set(toy.categorical_columns) == {"colour", "flag"}
    assert toy.problems() == []


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"task": "regression"}, "a regression target must be a number"),
        ({"target": "grade", "positive_class": "a"}, "task 'binary' needs a target of two values"),
        ({"task": "multiclass"}, "needs three or more classes"),
        ({"positive_class": "maybe"}, "positive_class 'maybe' is not one of"),
        ({"missing": {"colour": "mean"}}, "only numeric features take one"),
        ({"slices": (Slice("nowhere"),)}, "reads 'nowhere'"),
    ],
)
def test_a_spec_its_task_or_encoders_cannot_use_is_refused_when_loaded(changes, message) -> None:
    with pytest.raises(InvalidDatasetSpecError, match=message):
        spec(**changes).check()


def test_built_in_specs_are_sound() -> None:
    for name in ("loans", "breast-cancer", "penguins", "diabetes"):
        assert get_dataset(name).problems() == []


def fitted(data: pd.DataFrame, toy: DatasetSpec | None = None) -> tuple[DatasetSpec, Preprocessor, Problem]:
    toy = toy or spec()
    halves = [column_statistics(part, toy) for part in (data.iloc[::2], data.iloc[1::2])]
    stats = merge_statistics(halves)
    problem = fit_problem(toy.task, toy.target, positive_class=toy.positive_class, **_target(stats))
    return toy, fit_preprocessor(toy, stats), problem


def _target(stats) -> dict:
    target = stats["target"]
    return {
        "counts": target.get("counts"),
        "moments": tuple(target["moments"]) if "moments" in target else None,
    }


def test_statistics_merged_across_ranks_fit_what_the_whole_data_would() -> None:
    data = frame()
    toy = spec()
    whole = fit_preprocessor(toy, column_statistics(data, toy))
    _, merged, problem = fitted(data)
    assert merged.to_dict() == whole.to_dict() or np.allclose(
        [e.mean for e in merged.encoders], [e.mean for e in whole.encoders]
    )
    assert problem.classes == ("no", "yes")  # the declared positive class last
    encoded = merged.transform(data)
    assert encoded.shape == (len(data), 3 + 1 + 1 + 1)  # three colours + unknown, size, flag


def test_unseen_and_null_categories_go_to_the_unknown_bucket_or_are_refused() -> None:
    toy, pre, _ = fitted(frame())
    rows = pre.transform_records(
        [{"colour": "purple", "size": None, "flag": True}, {"colour": None, "size": 1.0, "flag": False}]
    )
    unknown = pre.input_names.index("colour=__unknown__")
    assert rows[:, unknown].tolist() == [1.0, 1.0]
    strict = fit_preprocessor(
        dataclasses.replace(toy, unknown_categories="refuse"), column_statistics(frame(), toy)
    )
    with pytest.raises(InvalidInputError, match="'purple' was not seen in training; allowed values"):
        strict.transform_records([{"colour": "purple", "size": 1.0, "flag": True}])


def test_preprocessing_is_json_with_a_stable_hash() -> None:
    _, pre, _ = fitted(frame())
    again = Preprocessor.from_dict(pre.to_dict())
    assert again == pre and again.sha256() == pre.sha256() and len(pre.sha256()) == 64
    legacy = Preprocessor.from_dict({"columns": ["a"], "means": [1.0], "stds": [2.0]})
    assert legacy.transform(pd.DataFrame({"a": [3.0]})).tolist() == [[1.0]]


def test_bad_features_are_named_before_training() -> None:
    data = frame()
    with pytest.raises(UnusableDataError, match="'size' is constant"):
        fitted(data.assign(size=5.0))
    with pytest.raises(UnusableDataError, match="'size' is null in every training row"):
        fitted(data.assign(size=np.nan))
    with pytest.raises(UnusableDataError, match="'size' has 1 null.*policy is 'refuse'"):
        fitted(data.assign(size=[np.nan] + [1.0 + i for i in range(len(data) - 1)]), spec(missing={}))
    capped = spec(max_categories=2)
    with pytest.raises(UnusableDataError, match="'colour' has 3 distinct values, over the cap of 2"):
        fitted(data, capped)
    _, pre, _ = fitted(data, spec(max_categories=2, over_max_categories="most_frequent"))
    assert len(pre.allowed_values()["colour"]) == 2


@pytest.mark.parametrize(
    ("task", "counts", "message"),
    [
        ("binary", {"yes": 10}, "one class only"),
        ("binary", {v: 3 for v in "abcde"}, "needs a target of two values; 'answer' has 5"),
        ("multiclass", {"a": 3, "b": 4}, "declare task='binary'"),
        ("binary", {"0": 3, "1": 4}, "positive_class 'yes' is not a value"),
    ],
)
def test_targets_that_do_not_fit_the_task_are_refused(task, counts, message) -> None:
    with pytest.raises(UnusableDataError, match=message):
        fit_problem(task, "answer", positive_class="yes", counts=Counter(counts))
    with pytest.raises(UnusableDataError, match="constant"):
        fit_problem("regression", "price", moments=(4.0, 8.0, 16.0))


def test_each_task_answers_in_its_shape() -> None:
    binary = Problem("binary", "answer", ("no", "yes"))
    assert binary.answers(np.array([0.2, 0.8])) == [
        {"prediction": "no", "probability": 0.2},
        {"prediction": "yes", "probability": 0.8},
    ]
    multi = Problem("multiclass", "species", ("a", "b", "c"))
    outputs = multi.outputs(torch.tensor([[0.0, 3.0, 0.0]]))
    (answer,) = multi.answers(outputs)
    assert answer["prediction"] == "b" and set(answer["probabilities"]) == {"a", "b", "c"}
    assert multi.scores(outputs).tolist() == [1.0]
    regression = Problem("regression", "price", (), target_mean=100.0, target_std=10.0)
    values = regression.outputs(torch.tensor([[1.5]]))
    assert regression.answers(values) == [{"prediction": pytest.approx(115.0)}]
    assert regression.encode_target(pd.Series([110.0])).tolist() == [pytest.approx(1.0)]
    assert Problem.from_dict(multi.to_dict()) == multi
    assert Problem.from_dict(None, target="label") == Problem("binary", "label", (0, 1))  # old cards


def test_metrics_and_warnings_per_task() -> None:
    multi = Problem("multiclass", "species", ("a", "b", "c"))
    truth = pd.Series(["a", "b", "c", "a"])
    uniform = np.full((4, 3), 1 / 3)
    metrics = multi.evaluate(truth, uniform)
    assert set(metrics["per_class_recall"]) == {"a", "b", "c"}
    assert multi.warnings(metrics)  # no better than the class frequencies
    regression = Problem("regression", "price", (), 0.0, 1.0)
    metrics = regression.evaluate(pd.Series([1.0, 2.0, 3.0]), np.array([2.0, 2.0, 2.0]))
    assert metrics["r2"] == pytest.approx(0.0) and regression.warnings(metrics)
    assert "optimizer steps" in regression.warnings({"r2": 0.9}, optimizer_steps=10)[0]


def test_a_challenger_with_warnings_is_never_promoted() -> None:
    decision = decide_retrain(
        {"rmse": 1.0},
        {"rmse": 9.0},
        metric="rmse",
        margin=0.0,
        deploy=True,
        on_cluster=True,
        comparable={"rmse": False},
        warnings=["holdout R² -0.1: no better than always answering the mean"],
    )
    assert decision.action == "keep" and "R²" in decision.reason
    better = decide_retrain(
        {"rmse": 1.0},
        {"rmse": 9.0},
        metric="rmse",
        margin=0.0,
        deploy=True,
        on_cluster=True,
        comparable={"rmse": False},
    )
    assert better.action == "roll-out"


def test_records_encode_exactly_as_their_frame() -> None:
    # transform_records (serving's hot path, plain lists) and transform (training, a frame) agree.
    data = frame()
    data.loc[3, "size"] = np.nan
    data.loc[5, "colour"] = None
    _, pre, _ = fitted(data)
    records = data[list(pre.columns)].astype(object).where(data.notna(), None).to_dict("records")
    records[7]["colour"] = "purple"  # unseen: the unknown bucket in both
    expected = pre.transform(pd.DataFrame(records))
    np.testing.assert_array_equal(pre.transform_records(records), expected)


def test_a_version_whose_factory_is_not_installed_is_refused_naming_it() -> None:
    from types import SimpleNamespace

    from infra.errors import ModelFactoryError
    from tasks.predictor import rebuild

    pre = Preprocessor.standardise(["a"], [0.0], [1.0])
    card = SimpleNamespace(
        model_name="m",
        version="v3",
        feature_spec={
            "preprocessing": pre.to_dict(),
            "preprocessing_sha256": pre.sha256(),
            "model": "gradient-forest",
            "model_options": {},
            "model_source": "forest-models==1.2",
        },
    )
    with pytest.raises(
        ModelFactoryError, match=r"'gradient-forest' \(forest-models==1.2\), which is not installed"
    ):
        rebuild(card, {})


def test_altered_preprocessing_is_refused() -> None:
    from types import SimpleNamespace

    from infra.errors import ModelIntegrityError
    from tasks.predictor import rebuild

    pre = Preprocessor.standardise(["a"], [0.0], [1.0])
    altered = Preprocessor.standardise(["a"], [5.0], [1.0])
    card = SimpleNamespace(
        model_name="m",
        version="v1",
        feature_spec={"preprocessing": altered.to_dict(), "preprocessing_sha256": pre.sha256()},
    )
    with pytest.raises(ModelIntegrityError, match="does not match the recorded SHA-256"):
        rebuild(card, {})
