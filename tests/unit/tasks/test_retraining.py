"""``decide_retrain`` (pure) and ``run_retrain`` without Prefect: training and rollout are fakes that
register real versions in the embedded lakeFS, the cool-down lives in memory, time is a fake clock."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path

import pytest

from contracts.loans import TARGET_COLUMN
from contracts.rollout import DeployParameters, RolloutResult
from infra.errors import RolloutError
from tasks import registry
from tasks.evaluation import Metrics
from tasks.generate import GeneratorConfig, generate_frame
from tasks.publishing import RecordingPublisher
from tasks.retraining import MemoryCooldowns, RetrainParameters, decide_retrain, run_retrain
from tasks.training import TrainParameters, TrainResult
from tests.support.fakes import FakeClock
from tests.support.serving import register_loans_model, register_monitored_model


def metrics(roc_auc: float | None) -> Metrics:
    return Metrics(
        count=100,
        roc_auc=roc_auc,
        accuracy=0.7,
        log_loss=0.5,
        expected_calibration_error=0.05,
        brier_score=0.2,
        positive_rate=0.5,
        base_rate=0.5,
        threshold=0.5,
        bins=10,
    )


@pytest.mark.parametrize(
    ("champion", "deploy", "on_cluster", "action"),
    [
        (None, True, True, "first-deployment"),
        (None, True, False, "first-champion"),
        (None, False, True, "first-champion"),
        (0.70, True, True, "roll-out"),
        (0.70, False, True, "not-deployed"),
        (0.80, True, True, "keep"),
        (0.79, True, True, "keep"),  # better by less than the margin
    ],
)
def test_decide_retrain(champion, deploy, on_cluster, action) -> None:
    decision = decide_retrain(
        metrics(0.80),
        None if champion is None else metrics(champion),
        metric="roc_auc",
        margin=0.02,
        deploy=deploy,
        on_cluster=on_cluster,
    )
    assert decision.action == action
    assert decision.better == (action != "keep")
    assert "roc_auc" in decision.reason


class FakeTraining:
    """``train``: registers a real version (a seeded, untrained loans MLP with its reference sample).

    With ``perfect`` the reference sample's probabilities are the labels themselves: the challenger's
    holdout metrics (read from that sample) beat any champion's.
    """

    def __init__(self, client, tmp_path: Path, *, seed: int, perfect: bool = False) -> None:
        self.client, self.tmp_path, self.seed, self.perfect, self.calls = client, tmp_path, seed, perfect, []

    def __call__(self, parameters: TrainParameters) -> TrainResult:
        self.calls.append(parameters)
        if self.perfect:
            registered = _register_perfect(self.client, self.tmp_path, parameters.model_name, self.seed)
        else:
            registered = register_monitored_model(
                self.client, self.tmp_path, model_name=parameters.model_name, seed=self.seed
            )
        registry.set_alias(parameters.model_name, parameters.alias, registered.version, client=self.client)
        return TrainResult(
            model=parameters.model_name,
            version=registered.version,
            commit=registered.commit_id,
            data_repository="lockgate-loans",
            data_commit="0" * 64,
            metrics={},
            epochs=1,
            resumed_from_epoch=None,
            alias=parameters.alias,
        )


def _register_perfect(client, tmp_path: Path, model_name: str, seed: int):
    frame = generate_frame(GeneratorConfig(rows=3_000, seed=10_000 + seed))
    frame["probability"] = frame[TARGET_COLUMN] * 0.98 + 0.01
    path = tmp_path / f"{model_name}-perfect-reference.parquet"
    frame.to_parquet(path, index=False)
    return register_loans_model(
        client, seed=seed, model_name=model_name, artifacts={"reference.parquet": path}
    )


class FakeRollout:
    def __init__(self, *, fail: bool = False) -> None:
        self.calls: list[DeployParameters] = []
        self.fail = fail

    def __call__(self, parameters: DeployParameters) -> RolloutResult:
        self.calls.append(parameters)
        if self.fail:
            raise RolloutError("step 25% breached its SLOs: p99 latency 900.0 ms > 250 ms")
        return RolloutResult(model=parameters.model_name, version=parameters.version, outcome="promoted")


def retrain(client, parameters, *, train, deploy, clock=None, cooldowns=None, on_cluster=False):
    published = RecordingPublisher()
    outcome = run_retrain(
        parameters,
        client=client,
        cooldowns=cooldowns or MemoryCooldowns(),
        train=train,
        deploy=deploy,
        on_cluster=on_cluster,
        clock=clock or FakeClock(),
        publish=published,
        run_id="run-1",
    )
    return outcome, published


@pytest.fixture
def name() -> str:
    return f"re-{uuid.uuid4().hex[:8]}"


def test_the_first_model_becomes_champion_without_a_rollout(lakefs_client, tmp_path, name) -> None:
    train, deploy = FakeTraining(lakefs_client, tmp_path, seed=3), FakeRollout()
    outcome, published = retrain(
        lakefs_client, RetrainParameters(dataset="loans", model_name=name), train=train, deploy=deploy
    )
    assert outcome.decision == "promoted (first champion)" and outcome.champion is None
    assert registry.get_alias(name, "champion", client=lakefs_client).version == outcome.challenger
    assert deploy.calls == [] and train.calls[0].alias == "challenger"
    table = published.artifact_named(f"retrain-{name}-decision").table
    assert {row["item"]: row["value"] for row in table}["decision"] == "promoted (first champion)"


def test_on_a_cluster_the_first_model_is_deployed(lakefs_client, tmp_path, name) -> None:
    deploy = FakeRollout()
    outcome, _ = retrain(
        lakefs_client,
        RetrainParameters(dataset="loans", model_name=name),
        train=FakeTraining(lakefs_client, tmp_path, seed=3),
        deploy=deploy,
        on_cluster=True,
    )
    assert outcome.decision == "promoted (first champion, now serving)"
    assert [call.version for call in deploy.calls] == [outcome.challenger]


def test_champion_and_challenger_are_scored_on_the_same_holdout(lakefs_client, tmp_path, name) -> None:
    champion = register_monitored_model(lakefs_client, tmp_path, model_name=name, seed=3)
    registry.set_alias(name, "champion", champion.version, client=lakefs_client)
    # The same weights again: equal scores, so no margin is beaten and the champion stays.
    deploy = FakeRollout()
    outcome, _ = retrain(
        lakefs_client,
        RetrainParameters(dataset="loans", model_name=name, margin=0.0),
        train=FakeTraining(lakefs_client, tmp_path, seed=3),
        deploy=deploy,
    )
    assert outcome.decision == "keep champion" and outcome.champion == champion.version
    assert outcome.challenger_metric == pytest.approx(outcome.champion_metric)
    assert outcome.holdout_rows == 3_000 and deploy.calls == []
    assert registry.get_alias(name, "champion", client=lakefs_client).version == champion.version


def test_a_better_challenger_is_rolled_out_and_a_failed_rollout_keeps_the_champion(
    lakefs_client, tmp_path, name
) -> None:
    champion = register_monitored_model(lakefs_client, tmp_path, model_name=name, seed=3)
    registry.set_alias(name, "champion", champion.version, client=lakefs_client)
    parameters = RetrainParameters(dataset="loans", model_name=name, margin=0.05)
    train = FakeTraining(lakefs_client, tmp_path, seed=4, perfect=True)
    deploy = FakeRollout()
    outcome, published = retrain(lakefs_client, parameters, train=train, deploy=deploy)
    assert outcome.challenger_metric == pytest.approx(1.0) and outcome.champion_metric < 0.95
    assert outcome.decision == "promoted" and outcome.rollout is not None
    assert [(call.version, call.plan, call.slo) for call in deploy.calls] == [
        (outcome.challenger, parameters.plan, parameters.slo)
    ]
    decisions = [a.markdown for a in published.artifacts if a.kind == "markdown"]
    assert any("promote: rolling out" in text for text in decisions)

    failing = FakeRollout(fail=True)
    with pytest.raises(RolloutError, match="breached"):
        retrain(lakefs_client, parameters, train=train, deploy=failing)
    assert len(failing.calls) == 1


def test_a_retrain_within_the_cooldown_is_skipped(lakefs_client, tmp_path, name) -> None:
    clock, cooldowns = FakeClock(), MemoryCooldowns()
    train = FakeTraining(lakefs_client, tmp_path, seed=3)
    parameters = RetrainParameters(dataset="loans", model_name=name, cooldown_s=600, trigger="drift")
    retrain(lakefs_client, parameters, train=train, deploy=FakeRollout(), clock=clock, cooldowns=cooldowns)

    clock.advance(timedelta(minutes=5).total_seconds())
    skipped, published = retrain(
        lakefs_client, parameters, train=train, deploy=FakeRollout(), clock=clock, cooldowns=cooldowns
    )
    assert skipped.decision == "skipped" and skipped.defers_to == "run-1"
    assert "within the 600 s cool-down" in skipped.reason and len(train.calls) == 1
    assert published.artifact_named(f"retrain-{name}-decision").table[0] == {
        "item": "decision",
        "value": "skipped",
    }

    clock.advance(timedelta(minutes=6).total_seconds())
    again, _ = retrain(
        lakefs_client, parameters, train=train, deploy=FakeRollout(), clock=clock, cooldowns=cooldowns
    )
    assert again.decision != "skipped" and len(train.calls) == 2


def test_the_file_cooldown_store_survives_the_process(tmp_path) -> None:
    from tasks.retraining import FileCooldowns

    path = tmp_path / "state" / "cooldowns.json"
    FileCooldowns(path).record_start("a", {"started_at": "2026-12-01T12:00:00+00:00", "flow_run_id": "r1"})
    FileCooldowns(path).record_start("b", {"started_at": "2026-12-01T12:01:00+00:00", "flow_run_id": "r2"})
    again = FileCooldowns(path)
    assert again.last_start("a")["flow_run_id"] == "r1" and again.last_start("b")["flow_run_id"] == "r2"
    assert again.last_start("c") is None
    path.write_text("not json")
    assert FileCooldowns(path).last_start("a") is None  # an unreadable file holds no cool-down
