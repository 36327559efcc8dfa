"""Predictor scoring (a tiny network, checked by hand) and the background ModelLoader's states."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from infra.errors import ModelIntegrityError, ModelNotFoundError
from serving.predictor import DEFAULT_THRESHOLD, ModelLoader, Predictor
from tasks.models import make_mlp
from tasks.preprocessing import Preprocessor

MEANS, STDS = (50_000.0, 40.0), (20_000.0, 10.0)
FEATURES = Preprocessor.standardise(("salary", "age"), MEANS, STDS)


def tiny_predictor(seed: int = 0) -> Predictor:
    """A seeded two-feature MLP (hidden width 3) with a made-up model card."""
    torch.manual_seed(seed)
    network = make_mlp(len(FEATURES.columns), hidden=(3,))
    card = SimpleNamespace(
        weights_sha256="ab" * 32,
        data_repository="lockgate-loans",
        data_commit_id="c0ffee",
    )
    return Predictor("tiny", "v1", "commit-1", card, network, FEATURES)


def by_hand(predictor: Predictor, records: list[dict]) -> np.ndarray:
    """Standardise, one ReLU layer, one linear output, sigmoid: the MLP written out in numpy."""
    first, _, last = predictor.network
    values = np.array(
        [[record[column] for column in FEATURES.columns] for record in records], dtype=np.float64
    )
    inputs = (values - np.array(MEANS)) / np.array(STDS)
    hidden = np.maximum(
        inputs @ first.weight.detach().double().numpy().T + first.bias.detach().double().numpy(), 0
    )
    logits = hidden @ last.weight.detach().double().numpy().T + last.bias.detach().double().numpy()
    return 1 / (1 + np.exp(-logits[:, 0]))


@pytest.fixture
def make_loader() -> Iterator[Callable[..., ModelLoader]]:
    """Builds loaders and stops any still retrying when the test ends."""
    made: list[ModelLoader] = []

    def make(load, **options) -> ModelLoader:
        options.setdefault("retry_backoff_s", 0.01)
        made.append(ModelLoader(load, **options))
        return made[-1]

    yield make
    for loader in made:
        loader.stop()


class FlakyLoad:
    """Raises ``error`` for the first ``failures`` calls, then returns ``result``."""

    def __init__(self, result, *, failures: int, error: Exception | None = None) -> None:
        self.result = result
        self.failures = failures
        self.error = error or ConnectionError("registry unreachable")
        self.calls = 0

    def __call__(self):
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return self.result


# --- Predictor ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1])
def test_predict_is_standardise_then_network_then_sigmoid(seed: int) -> None:
    predictor = tiny_predictor(seed)
    rng = np.random.default_rng(seed)
    records = [
        {"age": float(age), "salary": float(salary), "unused": "ignored"}
        for salary, age in zip(rng.uniform(20_000, 150_000, 16), rng.uniform(18, 80, 16), strict=True)
    ]
    probabilities = predictor.predict(records)
    assert probabilities.shape == (16,)
    assert probabilities.dtype == np.float64  # scores: P(positive) for a binary classifier
    np.testing.assert_allclose(probabilities, by_hand(predictor, records), rtol=1e-5, atol=1e-6)


def test_predict_depends_on_each_feature_by_name_not_by_record_order() -> None:
    predictor = tiny_predictor()
    one = predictor.predict([{"salary": 90_000.0, "age": 25.0}])
    swapped = predictor.predict([{"age": 25.0, "salary": 90_000.0}])
    other = predictor.predict([{"salary": 25.0, "age": 90_000.0}])
    assert one[0] == swapped[0]
    assert one[0] != other[0]


def test_predict_of_no_records_is_empty() -> None:
    result = tiny_predictor().predict([])
    assert result.shape == (0,)


def test_describe() -> None:
    assert tiny_predictor().describe() == {
        "model_name": "tiny",
        "version": "v1",
        "commit_id": "commit-1",
        "weights_sha256": "ab" * 32,
        "data_repository": "lockgate-loans",
        "data_commit_id": "c0ffee",
        "task": "binary",
        "classes": [0, 1],
        "threshold": DEFAULT_THRESHOLD,
    }


# --- ModelLoader ------------------------------------------------------------------------------------


def test_loader_retries_transient_errors_until_ready(make_loader) -> None:
    predictor = tiny_predictor()
    load = FlakyLoad(predictor, failures=2)
    loader = make_loader(load)
    assert loader.wait(2.0) == "ready"
    assert loader.attempts == 3
    assert load.calls == 3
    assert loader.predictor is predictor
    status = loader.status()
    assert status == {
        "state": "ready",
        "reason": "tiny v1 loaded and verified",
        "attempts": 3,
        "model": predictor.describe(),
    }


def test_loader_reports_loading_while_the_registry_is_unreachable(make_loader) -> None:
    load = FlakyLoad(tiny_predictor(), failures=10**9)
    loader = make_loader(load, max_backoff_s=0.01)
    deadline = time.monotonic() + 2
    while loader.attempts < 3 and time.monotonic() < deadline:
        time.sleep(0.005)
    status = loader.status()
    assert status["state"] == "loading"
    assert status["attempts"] >= 3
    assert status["reason"] == "registry unreachable (ConnectionError: registry unreachable); retrying"
    assert "model" not in status
    assert loader.predictor is None


def test_loader_wait_times_out_while_loading(make_loader) -> None:
    release = threading.Event()
    predictor = tiny_predictor()

    def slow_load() -> Predictor:
        release.wait(5)
        return predictor

    loader = make_loader(slow_load)
    started = time.monotonic()
    assert loader.wait(0.1) == "loading"
    assert 0.1 <= time.monotonic() - started < 1.0
    assert loader.status() == {"state": "loading", "reason": "loading from the registry", "attempts": 1}
    release.set()
    assert loader.wait(2.0) == "ready"


@pytest.mark.parametrize(
    "error",
    [
        ModelNotFoundError("model 'tiny' has no version v9; known: v1, v2"),
        ModelIntegrityError("weights of 'tiny' v1 differ from the card's SHA-256"),
    ],
    ids=["not-found", "integrity"],
)
def test_loader_gives_up_at_once_on_permanent_errors(make_loader, error: Exception) -> None:
    load = FlakyLoad(tiny_predictor(), failures=10**9, error=error)
    loader = make_loader(load)
    assert loader.wait(2.0) == "failed"
    assert loader.reason == f"{type(error).__name__}: {error}"
    time.sleep(0.05)  # several back-offs of 0.01 s: a retry would show by now
    assert load.calls == 1
    assert loader.status() == {"state": "failed", "reason": loader.reason, "attempts": 1}
    assert loader.predictor is None


def test_stop_ends_the_retries(make_loader) -> None:
    load = FlakyLoad(tiny_predictor(), failures=10**9)
    loader = make_loader(load, max_backoff_s=0.01)
    deadline = time.monotonic() + 2
    while load.calls < 2 and time.monotonic() < deadline:
        time.sleep(0.005)
    loader.stop()
    calls = load.calls
    time.sleep(0.1)  # ten back-offs of 0.01 s: a loader that kept retrying would call again
    assert load.calls <= calls + 1  # at most the attempt already under way when stop() was called
    assert loader.predictor is None
