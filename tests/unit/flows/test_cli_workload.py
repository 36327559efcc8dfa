"""Which dataset and model the commands work on: an option, else LOCKGATE_DATASET / LOCKGATE_MODEL_NAME,
else the model's own card (``predict --sample``, ``retrain``); the framework names none of its own."""

from __future__ import annotations

import contextlib
import io
import os
from types import SimpleNamespace
from typing import Any

import httpx
import pandas as pd
import pytest
from typer.testing import CliRunner

import flows.cli.context
from flows.cli import app
from tasks import registry
from tasks.datasets import get_dataset

runner = CliRunner(env={"COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"})


def plain(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture(autouse=True)
def no_workload(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing configured: a developer's shell must not name a dataset or model for these tests."""
    for name in list(os.environ):
        if name in ("LOCKGATE_DATASET", "LOCKGATE_MODEL_NAME") or name.startswith(
            ("LOCKGATE_SERVING_", "LOCKGATE_AUTOMATION_", "LOCKGATE_LAKEFS_")
        ):
            monkeypatch.delenv(name)


@contextlib.contextmanager
def no_lakefs(data_dir=None, quiet=False):
    yield flows.cli.context.Connection(client=None, settings=None)


@pytest.fixture
def trained(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The parameters ``lockgate train`` hands ``run_train`` (which then stops the command)."""
    import tasks.training

    captured: list[Any] = []

    def fake_run_train(parameters, **_):
        captured.append(parameters)
        raise RuntimeError("stop here")

    monkeypatch.setattr("flows.cli.models.lakefs_connection", no_lakefs)
    monkeypatch.setattr(tasks.training, "run_train", fake_run_train)
    return captured


def card(model_name: str, version: str, dataset: str | None, *, repository: str = "") -> SimpleNamespace:
    """The parts of a model card the commands read."""
    feature_spec = {"dataset": dataset} if dataset else {}
    return SimpleNamespace(
        model_name=model_name, version=version, feature_spec=feature_spec, data_repository=repository
    )


def test_without_a_dataset_anywhere_train_asks_for_one(trained: list[Any]) -> None:
    result = runner.invoke(app, ["train"])
    assert result.exit_code == 2, result.output
    assert "no dataset named" in plain(result.output) and "LOCKGATE_DATASET" in plain(result.output)
    assert trained == []  # refused before any lakeFS or cluster is touched


def test_train_takes_the_dataset_setting_and_names_the_model_after_it(
    trained: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOCKGATE_DATASET", "penguins")
    runner.invoke(app, ["train"])
    assert (trained[-1].dataset, trained[-1].model_name) == ("penguins", "penguins-mlp")

    monkeypatch.setenv("LOCKGATE_MODEL_NAME", "penguin-net")
    runner.invoke(app, ["train"])
    assert (trained[-1].dataset, trained[-1].model_name) == ("penguins", "penguin-net")
    # Another dataset is never trained into the model configured for the first one.
    runner.invoke(app, ["train", "--dataset", "diabetes"])
    assert (trained[-1].dataset, trained[-1].model_name) == ("diabetes", "diabetes-mlp")
    runner.invoke(app, ["train", "--dataset", "diabetes", "--model-name", "sugar"])
    assert trained[-1].model_name == "sugar"


def test_a_refused_dataset_is_named_once(trained: list[Any]) -> None:
    result = runner.invoke(app, ["train", "--dataset", "weather"])
    assert result.exit_code == 2
    assert "unknown dataset 'weather'" in plain(result.output)
    assert "default factory" not in plain(result.output)  # the model name waits on it: not a second error


@pytest.mark.parametrize("command", [["monitor"], ["deploy"]])
def test_model_commands_without_a_model_ask_for_one(command: list[str]) -> None:
    result = runner.invoke(app, command)
    assert result.exit_code == 2, result.output
    assert "no model named" in plain(result.output) and "LOCKGATE_MODEL_NAME" in plain(result.output)


@pytest.fixture
def serving_app(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A serving app with champion v2 and challenger v3 of penguins-mlp (``GET /models``), answering every
    ``POST /predict``; the registry holds their cards and holdout references. Returns what was asked."""
    asked: dict[str, Any] = {"cards": [], "artifacts": []}
    penguins = get_dataset("penguins")
    reference = pd.DataFrame(
        {
            "penguin_id": [1, 2, 3],
            "island": ["Biscoe", "Dream", "Torgersen"],
            "bill_length_mm": [39.1, 46.5, 50.0],
            "bill_depth_mm": [18.7, 17.9, 15.2],
            "flipper_length_mm": [181.0, 192.0, 218.0],
            "body_mass_g": [3750.0, 3500.0, 5700.0],
            "sex": ["male", "female", "male"],
            "year": [2007, 2008, 2009],
            "species": ["Adelie", "Chinstrap", "Gentoo"],
            "score": [0, 1, 2],
        }
    )
    assert set(penguins.feature_columns) < set(reference.columns)
    buffer = io.BytesIO()
    reference.to_parquet(buffer, index=False)
    live = [
        {"model_name": "penguins-mlp", "version": "v3", "role": "challenger", "shadow": True},
        {"model_name": "penguins-mlp", "version": "v2", "role": "champion"},
    ]

    def get(url, **_):
        assert url.endswith("/models")
        return httpx.Response(200, json={"live": live}, request=httpx.Request("GET", url))

    def post(url, *, json, **_):
        asked["records"] = json
        predictions = [{"prediction": "Adelie", "probability": 0.9, "model_version": "v2"} for _ in json]
        body = {
            "model_name": "penguins-mlp",
            "model_version": "v2",
            "request_id": "r1",
            "predictions": predictions,
        }
        return httpx.Response(200, json=body, request=httpx.Request("POST", url))

    def show_model(name, ref, *, client):
        asked["cards"].append((name, ref))
        return card(name, ref, asked.get("dataset", "penguins"), repository=penguins.repository)

    def read_artifact(name, ref, artifact, *, client):
        asked["artifacts"].append((name, ref, artifact))
        return buffer.getvalue()

    monkeypatch.setattr(httpx, "get", get)
    monkeypatch.setattr(httpx, "post", post)
    monkeypatch.setattr("flows.cli.serving.lakefs_connection", no_lakefs)
    monkeypatch.setattr(registry, "show_model", show_model)
    monkeypatch.setattr(registry, "read_artifact", read_artifact)
    asked["reference"] = reference
    return asked


def test_predict_samples_the_served_champions_own_holdout_rows(serving_app: dict[str, Any]) -> None:
    result = runner.invoke(app, ["predict", "--sample", "5", "--url", "http://serving"])
    assert result.exit_code == 0, result.output
    assert serving_app["cards"] == [("penguins-mlp", "v2")]  # the champion, not the shadow challenger
    assert serving_app["artifacts"] == [("penguins-mlp", "v2", registry.REFERENCE_ARTIFACT)]
    records = serving_app["records"]
    features = list(get_dataset("penguins").feature_columns)
    assert len(records) == 5 and all(list(record) == features for record in records)
    reference = serving_app["reference"][features].to_dict("records")
    assert all(record in reference for record in records)  # rows of the reference, features only


def test_predict_samples_a_pinned_version_and_reads_older_cards_by_repository(
    serving_app: dict[str, Any],
) -> None:
    serving_app["dataset"] = None  # a card from before cards named their dataset
    result = runner.invoke(app, ["predict", "--sample", "2", "--url", "http://serving", "--version", "v3"])
    assert result.exit_code == 0, result.output
    assert serving_app["cards"] == [("penguins-mlp", "v3")]
    assert all(
        set(record) == set(get_dataset("penguins").feature_columns) for record in serving_app["records"]
    )

    missing = runner.invoke(app, ["predict", "--sample", "2", "--url", "http://serving", "--version", "v9"])
    assert missing.exit_code == 2 and "live versions: v3, v2" in plain(missing.output)


def test_predict_prints_a_regressors_answers_without_probabilities(monkeypatch: pytest.MonkeyPatch) -> None:
    def post(url, *, json, **_):
        body = {
            "model_name": "diabetes-mlp",
            "model_version": "v1",
            "request_id": "r2",
            "predictions": [{"prediction": 151.25, "model_version": "v1"}],
        }
        return httpx.Response(200, json=body, request=httpx.Request("POST", url))

    monkeypatch.setattr(httpx, "post", post)
    result = runner.invoke(app, ["predict", '{"age": 50}', "--url", "http://serving"])
    assert result.exit_code == 0, result.output
    assert "151.25" in result.output and "diabetes-mlp v1" in result.output


def test_retrain_trains_on_the_models_own_dataset(monkeypatch: pytest.MonkeyPatch) -> None:
    import tasks.retraining

    asked: list[Any] = []

    def fake_run_retrain(parameters, **_):
        asked.append(parameters)
        raise RuntimeError("stop here")

    monkeypatch.setattr("flows.cli.loop.lakefs_connection", no_lakefs)
    monkeypatch.setattr(registry, "show_model", lambda name, ref, *, client: card(name, "v4", "diabetes"))
    monkeypatch.setattr(tasks.retraining, "run_retrain", fake_run_retrain)
    monkeypatch.setenv("LOCKGATE_DATASET", "penguins")  # configured for another model
    runner.invoke(app, ["retrain", "--model-name", "sugar", "--no-deploy"])
    assert (asked[-1].model_name, asked[-1].dataset) == ("sugar", "diabetes")
    runner.invoke(app, ["retrain", "--model-name", "sugar", "--dataset", "penguins", "--no-deploy"])
    assert asked[-1].dataset == "penguins"  # an option wins over the card


def test_up_runs_the_configured_dataset_else_the_demos(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    from infra import stack

    started: list[Any] = []

    def start_stack(config, *, start_serving, on_event):
        started.append(config)
        raise stack.StackError("stop here")

    monkeypatch.setattr(stack, "start_stack", start_stack)
    runner.invoke(app, ["up", "--data-dir", str(tmp_path)])
    assert (started[-1].dataset, started[-1].model_name) == ("loans", "loans-mlp")  # the demo, by name
    monkeypatch.setenv("LOCKGATE_DATASET", "penguins")
    runner.invoke(app, ["up", "--data-dir", str(tmp_path)])
    assert (started[-1].dataset, started[-1].model_name) == ("penguins", "penguins-mlp")
    runner.invoke(app, ["up", "--data-dir", str(tmp_path), "--dataset", "diabetes", "--model-name", "sugar"])
    assert (started[-1].dataset, started[-1].model_name) == ("diabetes", "sugar")
    refused = runner.invoke(app, ["up", "--data-dir", str(tmp_path), "--dataset", "weather"])
    assert refused.exit_code == 1 and "unknown dataset 'weather'" in plain(refused.output)
    assert len(started) == 3


@pytest.mark.parametrize("dataset", ["loans", "penguins"])
def test_a_version_without_a_reference_is_sampled_from_its_datasets_built_in_rows(
    serving_app: dict[str, Any], monkeypatch: pytest.MonkeyPatch, dataset: str
) -> None:
    from infra.errors import ModelNotFoundError

    def no_reference(name, ref, artifact, *, client):
        raise ModelNotFoundError(f"{name} {ref} has no artifact {artifact!r}")

    serving_app["dataset"] = dataset
    monkeypatch.setattr(registry, "read_artifact", no_reference)
    result = runner.invoke(app, ["predict", "--sample", "3", "--url", "http://serving"])
    assert result.exit_code == 0, result.output
    features = set(get_dataset(dataset).feature_columns)
    assert len(serving_app["records"]) == 3 and all(set(r) == features for r in serving_app["records"])
