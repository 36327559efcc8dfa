"""``tasks.scaffold``: what ``lockgate init`` infers from a data file, what it refuses (and says why), and
that the package it renders accepts the very file it was inferred from and gives a sound DatasetSpec."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pandera.errors
import pytest

from infra.errors import InvalidInputError
from tasks.scaffold import (
    check_scaffold,
    infer_plan,
    loaded_scaffold,
    profile_data,
    read_data_file,
    render_scaffold,
    run_init,
)


def write(frame: pd.DataFrame, path: Path) -> Path:
    """``frame`` saved as ``path`` (CSV or Parquet by suffix), without the index."""
    if path.suffix == ".parquet":
        frame.to_parquet(path, index=False)
    elif path.suffix == ".jsonl":
        frame.to_json(path, orient="records", lines=True)
    else:
        frame.to_csv(path, index=False)
    return path


def plan_for(frame: pd.DataFrame, tmp_path: Path, *, suffix: str = ".csv", **options):
    """The plan for ``frame`` as ingestion would read it from a file (a CSV's values arrive as text)."""
    path = write(frame, tmp_path / f"sample{suffix}")
    profile = profile_data(read_data_file(path), source=path.name)
    return infer_plan(profile, **{"name": "sample", **options})


def customers(rows: int = 120, *, seed: int = 0) -> pd.DataFrame:
    """A small churn-like table: an ID, numbers with nulls, text categories, a yes/no label."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "customer_id": [f"C{i:04d}" for i in range(rows)],
            "tenure": rng.integers(0, 72, rows),
            "monthly_charges": rng.uniform(18, 120, rows).round(2),
            "plan": rng.choice(["basic", "plus", "premium"], rows),
            "churned": rng.choice(["no", "yes"], rows, p=[0.7, 0.3]),
        }
    )
    frame.loc[rng.choice(rows, 7, replace=False), "monthly_charges"] = np.nan
    frame.loc[rng.choice(rows, 4, replace=False), "plan"] = None
    return frame


# -- refusals: each bad input is named in the message ------------------------------------------


def test_a_target_that_is_not_a_column_is_refused_with_the_columns_listed(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match=r"target 'churn' is not a column .*did you mean 'churned'"):
        plan_for(customers(), tmp_path, target="churn")


def test_a_target_with_one_class_is_refused(tmp_path: Path) -> None:
    frame = customers().assign(churned="no")
    with pytest.raises(InvalidInputError, match=r"target 'churned' has a single value \('no'\)"):
        plan_for(frame, tmp_path, target="churned")


def test_regression_on_a_text_target_is_refused(tmp_path: Path) -> None:
    with pytest.raises(
        InvalidInputError, match=r"--task regression needs a numeric target; 'churned' holds text"
    ):
        plan_for(customers(), tmp_path, target="churned", task="regression")


def test_binary_on_a_target_of_five_values_is_refused(tmp_path: Path) -> None:
    frame = customers().assign(grade=lambda f: np.arange(len(f)) % 5)
    with pytest.raises(InvalidInputError, match=r"--task binary needs a target of two values; 'grade' has 5"):
        plan_for(frame, tmp_path, target="grade", task="binary")


def test_multiclass_on_a_target_of_two_values_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match=r"--task multiclass needs three or more classes"):
        plan_for(customers(), tmp_path, target="churned", task="multiclass")


@pytest.mark.parametrize(
    "name",
    ["Churn", "customer_churn", "9lives", "-churn", "churn-", "churn--data", "a" * 41, "", "loans"],
)
def test_a_name_that_cannot_name_a_dataset_is_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(InvalidInputError, match=repr(name)):
        plan_for(customers(), tmp_path, target="churned", name=name)


def test_a_positive_class_that_is_not_a_target_value_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match=r"--positive-class 'maybe' is not a value of 'churned'"):
        plan_for(customers(), tmp_path, target="churned", positive_class="maybe")


def test_a_positive_class_for_a_multiclass_target_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match=r"--positive-class applies to a binary target"):
        plan_for(customers(), tmp_path, target="plan", positive_class="basic")


def test_a_file_without_a_unique_column_is_refused_unless_a_key_is_given(tmp_path: Path) -> None:
    frame = customers().drop(columns="customer_id")
    frame["monthly_charges"] = frame["monthly_charges"].fillna(50.0)
    with pytest.raises(InvalidInputError, match=r"no column of sample.csv identifies its rows.*--key COLUMN"):
        plan_for(frame, tmp_path, target="churned")


@pytest.mark.parametrize(
    ("key", "message"),
    [
        (["plan"], r"--key 'plan' is empty in 4 row\(s\)"),
        (["tenure"], r"--key tenure does not identify the rows of sample.csv: \d+ row\(s\) repeat"),
        (["customer"], r"--key 'customer' is not a column of sample.csv \(did you mean 'customer_id'\?\)"),
        (["churned"], r"--key 'churned' is the target"),
    ],
)
def test_a_key_that_cannot_identify_rows_is_refused(tmp_path: Path, key: list[str], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        plan_for(customers(), tmp_path, target="churned", key_columns=key)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.csv", None, r"data file '.*missing.csv' does not exist"),
        ("empty.csv", b"", r"the file is empty"),
        ("header.csv", b"a,b\n", r"has no rows"),
        ("latin1.csv", "nom,prix\ncafé,1\n".encode("latin-1"), r"not UTF-8"),
        ("semicolons.csv", b"a;b\n1;2\n", r"semicolon-separated"),
        ("broken.parquet", b"PAR1 not really parquet", r"not a readable Parquet file"),
        ("data.xlsx", b"PK", r"suffix '.xlsx' is none of"),
    ],
)
def test_an_unreadable_file_is_refused_with_its_name(
    tmp_path: Path, name: str, content: bytes | None, message: str
) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(InvalidInputError, match=message):
        read_data_file(path)


def test_an_existing_output_directory_is_refused_without_force_and_overwritten_with_it(
    tmp_path: Path,
) -> None:
    source = write(customers(), tmp_path / "customers.csv")
    out = tmp_path / "package"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(InvalidInputError, match=r"exists and is not empty.*--force"):
        run_init(source, name="customers", target="churned", out=out)
    assert [p.name for p in out.iterdir()] == ["notes.txt"], "a refused init wrote into the directory"

    result = run_init(source, name="customers", target="churned", out=out, force=True)
    assert (out / "lockgate_customers" / "contracts.py").is_file()
    assert (out / "notes.txt").read_text() == "mine", "--force removed a file the scaffold does not write"
    assert set(result.files) <= {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}


def test_a_refused_input_leaves_no_directory_behind(tmp_path: Path) -> None:
    source = write(customers(), tmp_path / "customers.csv")
    with pytest.raises(InvalidInputError):
        run_init(source, name="customers", target="nope", out=tmp_path / "package")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["customers.csv"]


# -- inference -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("labels", "task", "positive"),
    [
        (["no", "yes"], "binary", "yes"),
        (["Yes", "No"], "binary", "Yes"),
        (["false", "true"], "binary", "true"),
        ([0, 1], "binary", 1),
        (["cat", "dog"], "binary", "dog"),  # no yes-like value: the second of the sorted values
        (["bronze", "gold", "silver"], "multiclass", None),
    ],
)
def test_the_task_and_positive_class_are_inferred_from_the_target(
    tmp_path: Path, labels: list, task: str, positive: object
) -> None:
    frame = customers().assign(label=[labels[i % len(labels)] for i in range(120)]).drop(columns="churned")
    plan = plan_for(frame, tmp_path, target="label")
    assert (plan.task, plan.positive_class) == (task, positive)
    assert plan.task_reason


def test_a_number_with_many_values_is_a_regression_target(tmp_path: Path) -> None:
    frame = customers().drop(columns="churned")
    plan = plan_for(frame, tmp_path, target="tenure")
    assert plan.task == "regression" and "many values" in plan.task_reason
    integers = plan_for(frame.assign(tenure=np.arange(120)), tmp_path, target="tenure")
    assert integers.task == "regression"  # 120 whole numbers: more than 50 classes


def test_a_given_positive_class_wins_and_keeps_its_type(tmp_path: Path) -> None:
    frame = customers().assign(churned=np.arange(120) % 2)
    plan = plan_for(frame, tmp_path, target="churned", positive_class="0")
    assert plan.positive_class == 0 and isinstance(plan.positive_class, int)


def test_features_policies_and_key_follow_the_data(tmp_path: Path) -> None:
    frame = customers().assign(region="north", signup=pd.Timestamp("2024-01-01"))
    plan = plan_for(frame, tmp_path, suffix=".parquet", target="churned")
    assert plan.key_columns == ("customer_id",) and "ID" in plan.key_reason
    assert plan.feature_columns == ("tenure", "monthly_charges", "plan")
    assert set(plan.excluded) == {"region", "signup"}  # constant; a date no encoder takes
    assert dict(plan.missing) == {"monthly_charges": "mean"}
    assert dict(plan.encodings) == {"plan": "one_hot"}


def test_parquet_nullable_types_get_policies_the_encoders_take(tmp_path: Path) -> None:
    plan = plan_for(nullable_types(), tmp_path, suffix=".parquet", target="value")
    kinds = {c.name: c.kind for c in plan.profile.columns}
    assert kinds == {
        "order_id": "int",
        "items": "float",  # whole numbers with nulls: NaN marks the missing value
        "gift": "bool",
        "channel": "str",
        "placed_at": "other",  # zoned timestamps: kept in the contract, not a feature
        "value": "float",
    }
    assert plan.task == "regression" and plan.key_columns == ("order_id",)
    assert dict(plan.missing) == {"items": "mean"}
    assert dict(plan.encodings) == {"gift": "one_hot", "channel": "one_hot"}  # a boolean with nulls too
    assert set(plan.excluded) == {"placed_at"}
    assert any("'items' holds whole numbers with empty values" in note for note in plan.notes)


def test_without_an_id_like_name_the_first_unique_column_is_the_key_with_a_warning(tmp_path: Path) -> None:
    frame = customers().rename(columns={"customer_id": "handle"})
    plan = plan_for(frame, tmp_path, target="churned")
    assert plan.key_columns == ("handle",) and "check that it really identifies a row" in plan.key_reason


@pytest.mark.parametrize(
    ("column", "id_like"),
    [
        ("id", True),
        ("ID", True),
        ("order_id", True),
        ("customerId", True),
        ("CustomerID", True),
        ("valid", False),
    ],
)
def test_id_like_names_are_preferred_as_the_key(tmp_path: Path, column: str, id_like: bool) -> None:
    frame = customers().rename(columns={"customer_id": "handle"}).assign(**{column: np.arange(120) + 5})
    plan = plan_for(frame, tmp_path, target="churned")
    assert plan.key_columns == ((column,) if id_like else ("handle",))


def test_text_codes_with_leading_zeros_stay_text(tmp_path: Path) -> None:
    frame = customers().assign(zip_code=[f"0{2100 + i % 9}" for i in range(120)])
    plan = plan_for(frame, tmp_path, target="churned")
    assert plan.profile.column("zip_code").kind == "str"
    assert any("leading zeros" in note for note in plan.notes)


# -- the rendered package ------------------------------------------------------------------------


def varied(rows: int = 150, *, seed: int = 1) -> pd.DataFrame:
    """Columns that test the rendering: names that are not identifiers, text booleans, integer codes."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "id": np.arange(1000, 1000 + rows),
            "Monthly Charges": rng.normal(70, 20, rows).round(3),
            "class": rng.choice(["a", "b", "c", "d"], rows),
            "2nd_line": rng.choice([True, False], rows),
            "visits": rng.integers(1, 4, rows),
            "score": rng.uniform(-1, 1, rows),
            "tier": rng.choice(["gold", "silver", "bronze"], rows),
            "amount": rng.gamma(2.0, 300.0, rows).round(2),
        }
    )
    frame.loc[rng.choice(rows, 10, replace=False), "Monthly Charges"] = np.nan
    frame.loc[rng.choice(rows, 6, replace=False), "visits"] = np.nan
    return frame


def nullable_types(rows: int = 90, *, seed: int = 2) -> pd.DataFrame:
    """Parquet's own types: pandas' nullable integers and booleans, categories, zoned timestamps."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "order_id": np.arange(rows) * 7,
            "items": pd.array([None if i % 8 == 0 else int(i % 5) + 1 for i in range(rows)], dtype="Int64"),
            "gift": pd.array([None if i % 9 == 0 else bool(i % 2) for i in range(rows)], dtype="boolean"),
            "channel": pd.Categorical(rng.choice(["web", "store", "phone"], rows)),
            "placed_at": pd.date_range("2024-01-01", periods=rows, freq="h", tz="UTC"),
            "value": rng.gamma(2.0, 40.0, rows).round(2),
        }
    )


CASES = {
    "binary": dict(frame=customers(300), target="churned"),
    "multiclass": dict(frame=varied(), target="tier"),
    "regression": dict(frame=varied(), target="amount"),
    "parquet-booleans": dict(frame=varied(), target="2nd_line", suffix=".parquet"),
    "parquet-nullable-types": dict(frame=nullable_types(), target="value", suffix=".parquet"),
    "json-lines": dict(frame=customers(), target="churned", suffix=".jsonl"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_rendered_package_accepts_its_source_and_gives_a_sound_spec(tmp_path: Path, case: str) -> None:
    from tasks.gx_validation import validate_expectations

    options = dict(CASES[case])
    frame, suffix = options.pop("frame"), options.pop("suffix", ".csv")
    plan = plan_for(frame, tmp_path, suffix=suffix, **options)
    files = render_scaffold(plan)
    for path, text in files.items():
        if path.endswith(".py"):
            compile(text, path, "exec")
    with loaded_scaffold(files, plan.package) as package:
        spec = importlib.import_module(f"{package.__name__}.dataset").DATASET
        assert spec.problems() == []
        assert spec.task == plan.task and spec.name == "sample"
        assert set(spec.columns) == set(frame.columns)
        typed = spec.raw_model.validate(plan.profile.frame)  # the file as ingestion reads it
        spec.validated_model.validate(typed)
        report = validate_expectations(typed, spec.expectation_suite, row_count=len(typed))
        assert report.success, report.failures()
    assert check_scaffold(files, plan)[1] == 0


def test_the_validated_model_holds_the_inferred_rules(tmp_path: Path) -> None:
    plan = plan_for(customers(), tmp_path, target="churned")
    files = render_scaffold(plan)
    contracts = files["lockgate_sample/contracts.py"]
    assert contracts.count("# review:") >= len(plan.profile.columns)
    with loaded_scaffold(files, plan.package) as package:
        spec = importlib.import_module(f"{package.__name__}.dataset").DATASET
        typed = spec.raw_model.validate(plan.profile.frame)
        broken = typed.copy()
        broken.loc[0, "tenure"] = 500  # above the inferred le
        broken.loc[1, "plan"] = "platinum"  # not in the inferred isin
        broken.loc[2, "customer_id"] = broken.loc[3, "customer_id"]  # a repeated key
        broken.loc[4, "tenure"] = np.nan  # never empty in the file
        with pytest.raises(pandera.errors.SchemaErrors) as caught:
            spec.validated_model.validate(broken, lazy=True)
        failed = set(caught.value.failure_cases["column"])
        assert {"tenure", "plan", "customer_id"} <= failed
        assert spec.positive_class == "yes" and spec.missing == {"monthly_charges": "mean"}


def test_a_compound_key_is_declared_unique_together(tmp_path: Path) -> None:
    frame = customers().assign(store=np.arange(120) % 3, order=np.arange(120) // 3)
    frame = frame.drop(columns="customer_id")
    plan = plan_for(frame, tmp_path, target="churned", key_columns=["store", "order"])
    files = render_scaffold(plan)
    assert 'unique = ["store", "order"]' in files["lockgate_sample/contracts.py"]
    with loaded_scaffold(files, plan.package) as package:
        spec = importlib.import_module(f"{package.__name__}.dataset").DATASET
        typed = spec.raw_model.validate(plan.profile.frame)
        spec.validated_model.validate(typed)
        repeated = pd.concat([typed, typed.iloc[:1]], ignore_index=True)
        with pytest.raises(pandera.errors.SchemaError):
            spec.validated_model.validate(repeated)


def test_rows_without_a_label_are_counted_as_refused(tmp_path: Path) -> None:
    frame = customers()
    frame.loc[:2, "churned"] = None
    path = write(frame, tmp_path / "customers.csv")
    result = run_init(path, name="customers", target="churned", out=tmp_path / "package")
    assert result.refused_rows == 3
    assert any("have no 'churned'" in note for note in result.plan.notes)


def test_the_rendered_code_passes_the_linter(tmp_path: Path) -> None:
    path = write(varied(), tmp_path / "varied.csv")
    result = run_init(path, name="varied-data", target="tier", out=tmp_path / "package")
    linted = subprocess.run(
        [
            sys.executable,
            "-m",
            "ruff",
            "check",
            "--isolated",
            "--line-length",
            "100",
            "--select",
            "E,F,I,B,UP",
        ]
        + [str(result.directory)],
        capture_output=True,
        text=True,
    )
    assert linted.returncode == 0, linted.stdout + linted.stderr
    readme = (result.directory / "README.md").read_text()
    assert "## What to review" in readme and "`tier`" in readme
