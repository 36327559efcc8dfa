"""Where the serving app runs and how it batches, logs and routes (``LOCKGATE_SERVING_*``)."""

from __future__ import annotations

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import BaseSettings

from infra.naming import INFERENCE_REPOSITORY, MODEL_NAME_PATTERN
from infra.settings.base import settings_config
from infra.settings.workload import DATASET_VARIABLE, MODEL_NAME_VARIABLE, default_model_name


class ServingSettings(BaseSettings):
    """Where the serving app runs and how it batches, logs and routes."""

    model_config = settings_config("LOCKGATE_SERVING_", "serving settings")

    ray_address: str | None = Field(
        None,
        description="Ray cluster to use: 'auto' (a cluster started on this machine with `ray start` or "
        "`lockgate serve`), 'ray://head:10001', or unset to start a local Ray for the process.",
    )
    host: str = Field("127.0.0.1", description="Host the Serve HTTP proxy binds (0.0.0.0 in a cluster).")
    port: int = Field(
        8100,
        ge=1,
        le=65535,
        description="Port of the Serve HTTP proxy (8000 is the embedded lakeFS default).",
    )
    url: str | None = Field(
        None,
        description="URL clients reach the serving app at (`lockgate predict`); unset: http://HOST:PORT "
        "with the route prefix.",
    )
    app_name: str = Field(
        "lockgate", pattern=r"^[a-z][a-z0-9-]{0,30}$", description="Serve application name of the ingress."
    )
    route_prefix: str = Field(
        "/", pattern=r"^/[A-Za-z0-9/_-]*$", description="HTTP route of the ingress on the Serve proxy."
    )
    dataset: str | None = Field(
        None,
        validation_alias=AliasChoices("LOCKGATE_SERVING_DATASET", DATASET_VARIABLE),
        description="Dataset whose inference contract requests must meet when the served model's card "
        "cannot be read (the card names it otherwise); LOCKGATE_DATASET is read too.",
    )
    model_name: str | None = Field(
        None,
        pattern=MODEL_NAME_PATTERN,
        validation_alias=AliasChoices("LOCKGATE_SERVING_MODEL_NAME", MODEL_NAME_VARIABLE),
        description="Registered model the app serves; LOCKGATE_MODEL_NAME is read too; unset: "
        "'<dataset>-mlp' of the dataset setting.",
    )
    initial_ref: str = Field("champion", description="Version or alias served when the app starts.")
    max_body_bytes: int = Field(1_048_576, ge=1024, description="Largest request body (413 beyond it).")
    max_records: int = Field(1_000, ge=1, description="Most records in one request (413 beyond it).")
    max_batch_size: int = Field(64, ge=1, le=4096, description="Requests batched into one model call.")
    batch_wait_timeout_s: float = Field(
        0.002, ge=0, le=1, description="How long a batch waits to fill up before the model runs."
    )
    model_replicas: int = Field(
        1, ge=1, le=256, description="Replicas of each model deployment (the minimum when autoscaling)."
    )
    autoscaling_max_replicas: int | None = Field(
        None,
        ge=1,
        le=1024,
        description="Autoscale each model deployment between model_replicas and this; unset: fixed replicas.",
    )
    autoscaling_target_ongoing_requests: float = Field(
        32.0, gt=0, description="Requests in flight per replica the autoscaler aims for."
    )
    ingress_replicas: int = Field(1, ge=1, le=256, description="Replicas of the ingress deployment.")
    replica_num_cpus: float = Field(0.5, gt=0, le=64, description="Ray CPUs reserved by each replica.")
    model_num_gpus: float = Field(0.0, ge=0, le=8, description="GPUs per model replica (0: CPU).")
    model_load_wait_s: float = Field(
        30.0,
        ge=0,
        le=600,
        description="A new model replica waits this long for its model before Serve routes to it; a registry "
        "still unreachable by then leaves it up but not ready (no restart loop).",
    )
    request_timeout_s: float = Field(10.0, gt=0, description="A model call slower than this fails (504).")
    inference_logging: bool = Field(True, description="Append every prediction to the inference repo.")
    inference_repository: str = Field(
        INFERENCE_REPOSITORY,
        description="lakeFS repository of the inference log and labels: the serving app writes it, "
        "monitoring and `lockgate labels` use the same one.",
    )
    log_flush_rows: int = Field(2_000, ge=1, description="Commit the log when this many rows wait.")
    log_flush_interval_s: float = Field(2.0, gt=0, description="Commit the log at least this often.")
    log_capacity_rows: int = Field(
        200_000,
        ge=1,
        description="Rows buffered while the store is slow; beyond, rows are dropped and counted.",
    )
    control_poll_s: float = Field(
        0.5, gt=0, le=10, description="How often ingress replicas refresh routes and report statistics."
    )
    throughput_tuning: bool = Field(
        True,
        description="Start a local Ray with Ray Serve's throughput settings (user code and router on the "
        "replica's event loop, buffered access logs, gRPC between deployments, GC frozen after start-up); "
        "on a cluster, set the same RAY_SERVE_* variables on its nodes (infra/ray/rayservice.yaml does).",
    )
    metrics_export_port: int | None = Field(
        None, description="Port of Ray's Prometheus metrics endpoint on a locally started Ray."
    )
    ray_log_to_driver: bool = Field(
        False,
        validation_alias=AliasChoices("LOCKGATE_SERVING_RAY_LOG_TO_DRIVER", "LOCKGATE_RAY_LOG_TO_DRIVER"),
        description="Show the Ray workers' log lines in this process's output (LOCKGATE_RAY_LOG_TO_DRIVER "
        "is read too).",
    )

    @model_validator(mode="after")
    def _model_of_the_dataset(self) -> ServingSettings:
        if self.model_name is None and self.dataset:
            self.model_name = default_model_name(self.dataset)
        return self

    @model_validator(mode="after")
    def _autoscaling_range(self) -> ServingSettings:
        if self.autoscaling_max_replicas is not None and self.autoscaling_max_replicas < self.model_replicas:
            raise ValueError("autoscaling_max_replicas must be at least model_replicas")
        return self


# Ray Serve's own knobs (ray/serve/_private/constants.py), the subset of RAY_SERVE_THROUGHPUT_OPTIMIZED that
# keeps the HTTP proxy: measured in bench/bench_serving.py.
THROUGHPUT_ENVIRONMENT = {
    "RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD": "0",
    "RAY_SERVE_RUN_ROUTER_IN_SEPARATE_LOOP": "0",
    "RAY_SERVE_REQUEST_PATH_LOG_BUFFER_SIZE": "1000",
    "RAY_SERVE_USE_GRPC_BY_DEFAULT": "1",
    "RAY_SERVE_FREEZE_GC_ON_STARTUP": "1",
}
