"""``lockgate demo``: the whole loop on one machine, as the README's first command runs it.

``run_demo`` is the orchestration: a versioning round trip, a good and a defective batch through the
contract gate, training with DDP on a local Dask cluster, serving on local Ray with live traffic and a
rollout of a new challenger, and (with ``close_loop``) drift injected into live traffic until
monitoring, a Prefect automation, retraining and the SLO-gated rollout replace the model. It calls the
same stages as the flows; what people see goes through a ``DemoReporter`` (the CLI's is rich output).

=================================  ==============================================================
``flows.demo.versioning``          the round trip and the gate batches
``flows.demo.serving``             the trained model served under live traffic, a rollout
``flows.demo.loop``                drift -> monitor -> automation -> retrain -> rollout -> lineage
=================================  ==============================================================
"""

from __future__ import annotations

import contextlib
import tempfile
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from flows.demo.serving import DEMO_DATASET, DEMO_MODEL
from flows.demo.versioning import (
    DEMO_DATA_PATH,
    DEMO_REPOSITORY,
    DEMO_STEPS,
    INGEST_DEMO_STEPS,
    DemoResult,
    IngestOutcome,
    make_demo_branch_name,
    make_demo_readings,
    run_ingestion_demo,
    run_versioning_demo,
)
from infra.errors import InvalidInputError

if TYPE_CHECKING:
    import lakefs

    from contracts.rollout import RolloutResult
    from infra.settings import LakeFSSettings
    from serving.traffic import TrafficReport
    from tasks.lineage import LineageChain
    from tasks.monitoring import MonitorSummary
    from tasks.publishing import Publisher
    from tasks.registry import ModelCard
    from tasks.training import TrainResult

__all__ = [
    "DEMO_DATASET",
    "DEMO_DATA_PATH",
    "DEMO_MODEL",
    "DEMO_REPOSITORY",
    "DemoOptions",
    "DemoReporter",
    "DemoResult",
    "make_demo_readings",
    "run_demo",
]


class DemoReporter(Protocol):
    """What the demo shows, and how it shows progress."""

    def section(self, title: str) -> None: ...

    def info(self, text: str) -> None: ...

    def panel(self, text: str, *, title: str, style: str) -> None: ...

    def busy(self, text: str) -> contextlib.AbstractContextManager[Callable[[str], None]]:
        """A spinner while something runs; the callable changes its text."""
        ...

    def steps(
        self, title: str, steps: Sequence[str]
    ) -> contextlib.AbstractContextManager[Callable[[str], None]]:
        """A progress bar over ``steps``; the callable marks one done."""
        ...

    def versioning_round_trip(self, result: DemoResult) -> None: ...

    def gate(self, outcomes: Sequence[IngestOutcome]) -> None: ...

    def lineage(self, card: ModelCard) -> None: ...

    def rollout(self, result: RolloutResult) -> None: ...

    def traffic(self, report: TrafficReport, *, title: str = ...) -> None: ...

    def monitor_line(self, summary: MonitorSummary) -> None: ...

    def items(self, title: str, rows: Sequence[tuple[str, Any]]) -> None: ...

    def lineage_tree(self, chain: LineageChain, decision: dict[str, Any]) -> None: ...


@dataclass(frozen=True)
class DemoOptions:
    """How much of the loop to show."""

    storage_namespace: str | None = None
    seed: int = 42
    rows: int = 300
    gate: bool = True
    train: bool = True
    serve: bool = True
    close_loop: bool = True


def run_demo(
    options: DemoOptions,
    *,
    client: lakefs.Client,
    lakefs_settings: LakeFSSettings,
    publish: Publisher,
    reporter: DemoReporter,
) -> DemoResult:
    """Run the demo's parts in order; return the versioning round trip (its check is the exit code).

    Raises:
        InvalidInputError: the lakeFS server suggests no storage namespace and none was given.
    """
    from tasks.versioning import default_storage_namespace

    namespace = options.storage_namespace or default_storage_namespace(DEMO_REPOSITORY, client=client)
    if namespace is None:
        raise InvalidInputError(
            "the lakeFS server suggests no storage namespace: pass --storage-namespace s3://bucket/prefix"
        )
    with reporter.steps("versioning round trip", DEMO_STEPS) as advance:
        result = run_versioning_demo(
            client=client,
            storage_namespace=namespace,
            branch=make_demo_branch_name(),
            seed=options.seed,
            rows=options.rows,
            on_step=advance,
        )
    reporter.versioning_round_trip(result)
    if not options.gate:
        return result
    reporter.section("The contract gate: ingest_flow")
    with (
        tempfile.TemporaryDirectory(prefix="lockgate-demo-") as work,
        reporter.steps("contract gate", INGEST_DEMO_STEPS) as advance,
    ):
        outcomes = run_ingestion_demo(Path(work), client=client, publish=publish, on_step=advance)
    reporter.gate(outcomes)
    if not options.train:
        return result
    trained = train_demo_model(client=client, publish=publish, reporter=reporter)
    if options.serve:
        from flows.demo.serving import run_serving_demo

        run_serving_demo(
            client=client,
            lakefs_settings=lakefs_settings,
            trained=trained.version,
            close_loop=options.close_loop,
            publish=publish,
            reporter=reporter,
        )
    return result


def train_demo_model(*, client: lakefs.Client, publish: Publisher, reporter: DemoReporter) -> TrainResult:
    """Train on the contract-checked loans data with DDP on a local Dask cluster, register, show lineage."""
    from infra.clients import dask_client
    from infra.settings import DaskSettings
    from tasks import registry
    from tasks.training import TrainingConfig, TrainParameters, run_train

    reporter.section("Training: train_flow (PyTorch DDP on a local Dask cluster)")
    settings = DaskSettings()
    parameters = TrainParameters(dataset=DEMO_DATASET, model_name=DEMO_MODEL, config=TrainingConfig())
    with reporter.busy(f"Training {DEMO_MODEL} with {settings.n_workers} ranks ..."):
        trained = run_train(
            parameters,
            client=client,
            dask_cluster=partial(dask_client, settings),
            publish=publish,
            run_id=uuid.uuid4().hex,
        )
    reporter.info(
        f"[green]registered[/] {DEMO_MODEL} {trained.version} (alias challenger), holdout ROC AUC "
        f"{trained.metrics['roc_auc']:.3f}, {trained.epochs} epoch(s)"
    )
    reporter.lineage(registry.show_model(DEMO_MODEL, trained.version, client=client))
    return trained


@contextlib.contextmanager
def quiet_steps() -> Iterator[Callable[[str], None]]:
    """A ``steps``/``busy`` context that shows nothing (for reporters that need none)."""
    yield lambda _text: None
