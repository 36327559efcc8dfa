"""Each task type through the real stages: real data ingested into the embedded lakeFS, trained on two DDP
ranks of a Dask ``LocalCluster``, registered, and loaded back verified to answer in the task's shape.

penguins (multiclass, string categorical columns, missing values) and diabetes (regression), both real
data shipped inside well-kept packages; loans stays the binary case of the other suites.
"""

from __future__ import annotations

import contextlib
import dataclasses
import uuid

import numpy as np
import pandas as pd
import pytest

from infra.errors import ModelFactoryError, UnusableDataError
from tasks import registry, versioning
from tasks.datasets import get_dataset
from tasks.ingestion import IngestParameters, run_ingest
from tasks.predictor import Predictor
from tasks.publishing import RecordingPublisher
from tasks.sample_data import write_sample_data
from tasks.training import TrainingConfig
from tasks.training.run import TrainParameters, run_train

pytestmark = pytest.mark.integration


def no_dataset_expectations():
    import great_expectations as gx

    return gx.ExpectationSuite(name="none")


def ingested(name: str, tmp_path_factory, lakefs_client, *, frame: pd.DataFrame | None = None, suite=None):
    """The dataset's spec in a repository of this test, with its real data merged into ``main``."""
    spec = dataclasses.replace(get_dataset(name), repository=f"learning-{name}-{uuid.uuid4().hex[:6]}")
    if suite is not None:  # let through what the dataset's own suite would stop (to test training)
        spec = dataclasses.replace(spec, expectation_suite=suite)
    folder = tmp_path_factory.mktemp(f"learning-{name}")
    source = folder / f"{name}.csv"
    if frame is None:
        write_sample_data(name, str(source), file_format="csv")
    else:
        frame.to_csv(source, index=False)
    namespace = versioning.default_storage_namespace(spec.repository, client=lakefs_client) or ""
    versioning.ensure_repository(spec.repository, storage_namespace=namespace, client=lakefs_client)
    run_ingest(
        IngestParameters(source=str(source), dataset=name),
        client=lakefs_client,
        s3_client=None,
        publish=RecordingPublisher(),
        spec=spec,
    )
    return spec


SHARED: dict[str, object] = {}


@pytest.fixture(autouse=True)
def shared_cluster(dask_client):
    """The session's two-worker Dask cluster, for every training here (no cluster start per run)."""
    SHARED["dask"] = dask_client


def train(spec, lakefs_client, *, config: TrainingConfig | None = None, name: str | None = None):
    name = name or f"{spec.name}-{uuid.uuid4().hex[:6]}"
    published = RecordingPublisher()
    result = run_train(
        TrainParameters(dataset=spec.name, model_name=name, config=config or TrainingConfig()),
        client=lakefs_client,
        dask_cluster=lambda: contextlib.nullcontext(SHARED["dask"]),
        publish=published,
        run_id=uuid.uuid4().hex,
        spec=spec,
    )
    return result, published


@pytest.fixture(scope="module")
def penguins(tmp_path_factory, lakefs_client):
    return ingested("penguins", tmp_path_factory, lakefs_client)


@pytest.fixture(scope="module")
def diabetes(tmp_path_factory, lakefs_client):
    return ingested("diabetes", tmp_path_factory, lakefs_client)


def test_multiclass_with_strings_and_missing_values_trains_and_answers(penguins, lakefs_client) -> None:
    result, published = train(penguins, lakefs_client)
    assert result.task == "multiclass"
    # The species are separable from the measurements: a working multiclass head gets most right.
    assert result.metrics["accuracy"] > 0.85, result.metrics
    assert result.metrics["log_loss"] < result.metrics["prior_log_loss"]
    assert set(result.metrics["per_class_recall"]) == {"Adelie", "Chinstrap", "Gentoo"}
    assert result.optimizer_steps >= 1000 and not result.warnings, result.warnings  # adaptive defaults

    card = registry.show_model(result.model, result.version, client=lakefs_client)
    assert card.feature_spec["problem"]["classes"] == ["Adelie", "Chinstrap", "Gentoo"]
    encoders = {e["column"]: e for e in card.feature_spec["preprocessing"]["encoders"]}
    assert encoders["island"]["kind"] == "one_hot" and set(encoders["island"]["categories"]) == {
        "Biscoe",
        "Dream",
        "Torgersen",
    }
    assert encoders["bill_length_mm"]["missing"] == "mean"
    assert len(card.feature_spec["preprocessing_sha256"]) == 64
    slices = pd.DataFrame(card.metrics["slices"])
    assert {"sex", "island"} <= set(slices["slice"])  # the groups the spec declares, nothing hard-coded
    assert "confusion.png" in card.artifact_sha256
    assert any(a.key.endswith("-slices") for a in published.artifacts)

    predictor = Predictor.from_registry(result.model, result.version, client=lakefs_client)
    records = [
        {
            "island": "Biscoe",
            "bill_length_mm": 47.5,
            "bill_depth_mm": 15.0,
            "flipper_length_mm": 217.0,
            "body_mass_g": 5200.0,
            "sex": "male",
            "year": 2008,
        },
        # a null measurement is imputed; a never-seen island and a null sex go to the unknown bucket
        {
            "island": "Atlantis",
            "bill_length_mm": None,
            "bill_depth_mm": 18.5,
            "flipper_length_mm": 190.0,
            "body_mass_g": 3700.0,
            "sex": None,
            "year": 2009,
        },
    ]
    answers, scores = predictor.answer(records)
    assert answers[0]["prediction"] == "Gentoo"
    assert set(answers[1]["probabilities"]) == {"Adelie", "Chinstrap", "Gentoo"}
    assert sum(answers[1]["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    assert scores[0] == 2.0  # the class index monitoring compares


def test_regression_trains_and_answers_values(diabetes, lakefs_client) -> None:
    result, _ = train(diabetes, lakefs_client)
    assert result.task == "regression"
    # Linear models reach R² about 0.45 on this data; the MLP must at least beat the mean clearly.
    assert result.metrics["r2"] > 0.25, result.metrics
    assert result.metrics["rmse"] < result.metrics["target_std"]
    card = registry.show_model(result.model, result.version, client=lakefs_client)
    assert "predicted_vs_observed.png" in card.artifact_sha256
    edges = card.feature_spec["score_edges"]
    assert edges == sorted(edges) and len(edges) > 5  # the rollout's histogram bins, from the reference

    predictor = Predictor.from_registry(result.model, result.version, client=lakefs_client)
    record = {
        "age": 50,
        "sex": 2,
        "bmi": 32.0,
        "bp": 100.0,
        "s1": 200.0,
        "s2": 120.0,
        "s3": 40.0,
        "s4": 5.0,
        "s5": 5.0,
        "s6": 95.0,
    }
    answers, scores = predictor.answer([record])
    assert set(answers[0]) == {"prediction"} and 25 <= answers[0]["prediction"] <= 350
    assert scores == [answers[0]["prediction"]]


def test_a_target_with_one_class_is_refused_without_retries(tmp_path_factory, lakefs_client) -> None:
    from tasks.sample_data import penguins_frame

    frame = penguins_frame()
    only = ingested(
        "penguins",
        tmp_path_factory,
        lakefs_client,
        frame=frame[frame["species"] == "Adelie"],
        suite=no_dataset_expectations,
    )
    with pytest.raises(UnusableDataError, match="one class only"):
        train(only, lakefs_client)


def test_a_constant_feature_is_named(tmp_path_factory, lakefs_client) -> None:
    from tasks.sample_data import diabetes_frame

    frame = diabetes_frame().assign(bp=90.0)
    constant = ingested(
        "diabetes", tmp_path_factory, lakefs_client, frame=frame, suite=no_dataset_expectations
    )
    with pytest.raises(UnusableDataError, match="'bp' is constant"):
        train(constant, lakefs_client)


def test_an_uninstalled_model_factory_is_refused_before_training(diabetes, lakefs_client) -> None:
    with pytest.raises(ModelFactoryError, match="'no-such-model' is not installed"):
        train(diabetes, lakefs_client, config=TrainingConfig(model="no-such-model"))


def test_a_model_whose_output_width_does_not_fit_the_task_is_named() -> None:
    # A factory that ignores the output width cannot serve three classes; caught on a batch of two rows
    # before any training step (every rank builds its model the same way).
    from tasks import models

    def one_output(features, outputs=1, **options):
        return models.make_mlp(features, 1, **options)

    models.register_factory("one-output", one_output)
    try:
        with pytest.raises(ModelFactoryError, match=r"'one-output' outputs shape \(2, 1\).*needs \(2, 3\)"):
            models.build_model("one-output", 12, 3, hidden=(4,))
    finally:
        models.MODEL_FACTORIES.pop("one-output", None)


def test_outputs_are_the_same_in_training_and_serving(penguins, lakefs_client) -> None:
    result, _ = train(penguins, lakefs_client, config=TrainingConfig(epochs=3))
    reference = pd.read_parquet(
        __import__("io").BytesIO(
            registry.read_artifact(
                result.model, result.version, registry.REFERENCE_ARTIFACT, client=lakefs_client
            )
        )
    )
    predictor = Predictor.from_registry(result.model, result.version, client=lakefs_client)
    served = predictor.outputs_of_frame(reference)
    stored = predictor.problem.outputs_from_holdout(reference)
    np.testing.assert_allclose(served, stored, rtol=1e-5, atol=1e-6)
