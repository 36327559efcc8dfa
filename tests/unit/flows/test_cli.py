"""The lockgate CLI: every command documents its options; bad values fail with a clear message."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows.cli import app
from infra import errors
from infra.settings import EmbeddedLakeFSSettings

# Wide, colourless output so option names are neither truncated nor split by escape codes.
runner = CliRunner(env={"COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"})


def plain(text: str) -> str:
    """Output without ANSI escapes and box-drawing, whitespace collapsed."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", text)
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", text).split())


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's LOCKGATE_* variables must not change what these tests see."""
    for prefix in (
        "LOCKGATE_LAKEFS_",
        "LOCKGATE_EMBEDDED_LAKEFS_",
        "LOCKGATE_DATASET",
        "LOCKGATE_MODEL_NAME",
    ):
        for name in list(os.environ):
            if name.startswith(prefix):
                monkeypatch.delenv(name)


@pytest.fixture
def served_settings(monkeypatch: pytest.MonkeyPatch) -> list[EmbeddedLakeFSSettings]:
    """Capture the settings ``lakefs serve`` would run the server with, instead of serving."""
    captured: list[EmbeddedLakeFSSettings] = []
    monkeypatch.setattr("infra.lakefs_server.server.run_server", captured.append)
    return captured


def test_top_level_help_lists_the_commands() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0, result.output
    output = plain(result.output)
    for command in ("demo", "version", "lakefs"):
        assert command in output


def test_serve_help_documents_every_option() -> None:
    result = runner.invoke(app, ["lakefs", "serve", "--help"])
    assert result.exit_code == 0, result.output
    output = plain(result.output)
    for option in (
        "--host",
        "--port",
        "--data-dir",
        "--access-key-id",
        "--secret-access-key",
        "--block-store",
        "--s3-bucket",
        "--s3-prefix",
        "--s3-endpoint-url",
        "--no-presign",
    ):
        assert option in output, f"{option} missing from lakefs serve --help"
    assert "credentials.json" in output
    assert "LOCKGATE_EMBEDDED_LAKEFS_PORT" in output


def test_demo_help_documents_every_option() -> None:
    result = runner.invoke(app, ["demo", "--help"])
    assert result.exit_code == 0, result.output
    output = plain(result.output)
    for option in ("--data-dir", "--keep-running", "--storage-namespace", "--seed", "--rows"):
        assert option in output, f"{option} missing from demo --help"
    assert "lockgate-demo" in output


def test_version_prints_package_versions() -> None:
    result = runner.invoke(app, ["version"])
    assert result.exit_code == 0, result.output
    assert "lockgate 0.1.0" in result.output
    assert "lakefs-sdk 1.86.0" in result.output


def test_serve_options_override_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, served_settings: list[EmbeddedLakeFSSettings]
) -> None:
    monkeypatch.setenv("LOCKGATE_EMBEDDED_LAKEFS_PORT", "9100")
    monkeypatch.setenv("LOCKGATE_EMBEDDED_LAKEFS_HOST", "0.0.0.0")
    result = runner.invoke(
        app, ["lakefs", "serve", "--port", "9200", "--data-dir", str(tmp_path), "--no-presign"]
    )
    assert result.exit_code == 0, result.output
    [settings] = served_settings
    assert settings.port == 9200  # the option wins over the environment
    assert settings.host == "0.0.0.0"  # the environment fills what the options leave out
    assert settings.data_dir == tmp_path
    assert settings.presign is False
    assert settings.block_store == "local"


def test_serve_s3_options_reach_the_settings(served_settings: list[EmbeddedLakeFSSettings]) -> None:
    result = runner.invoke(
        app,
        [
            "lakefs",
            "serve",
            "--block-store",
            "S3",
            "--s3-bucket",
            "data",
            "--s3-prefix",
            "versions",
            "--s3-endpoint-url",
            "http://127.0.0.1:9000",
            "--access-key-id",
            "AKIALGTESTKEY0000001",
            "--secret-access-key",
            "a-long-enough-secret",
        ],
    )
    assert result.exit_code == 0, result.output
    [settings] = served_settings
    assert (settings.block_store, settings.s3_bucket, settings.s3_prefix) == ("s3", "data", "versions")
    assert settings.s3_endpoint_url == "http://127.0.0.1:9000"
    assert (settings.access_key_id, settings.secret_access_key) == (
        "AKIALGTESTKEY0000001",
        "a-long-enough-secret",
    )


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--port", "70000"], "Invalid value for '--port'"),
        (["--port", "eighty"], "Invalid value for '--port'"),
        (["--block-store", "ftp"], "Invalid value for '--block-store'"),
        (["--block-store", "s3"], "block_store='s3' needs s3_bucket"),
        (["--access-key-id", "AKIALGTESTKEY0000001"], "give both access_key_id and secret_access_key"),
    ],
)
def test_serve_refuses_bad_values_without_starting(
    arguments: list[str], message: str, served_settings: list[EmbeddedLakeFSSettings]
) -> None:
    result = runner.invoke(app, ["lakefs", "serve", *arguments])
    assert result.exit_code == 2, result.output
    assert message in plain(result.output)
    assert served_settings == []


def test_serve_settings_error_does_not_echo_the_secret(served_settings: list[EmbeddedLakeFSSettings]) -> None:
    result = runner.invoke(
        app, ["lakefs", "serve", "--access-key-id", "AKIALGX", "--secret-access-key", "tiny7"]
    )
    assert result.exit_code == 2
    assert "secret_access_key must be at least 8 characters" in plain(result.output)
    assert "tiny7" not in result.output


def test_demo_refuses_placeholder_credentials_for_a_real_lakefs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOCKGATE_LAKEFS_ENDPOINT", "https://lakefs.example.org")
    monkeypatch.setenv("LOCKGATE_LAKEFS_ACCESS_KEY_ID", "AKIAJLG7Q2ZP4XKW3NDA")
    monkeypatch.setenv("LOCKGATE_LAKEFS_SECRET_ACCESS_KEY", "changeme-secret-value")
    result = runner.invoke(app, ["demo"])
    assert result.exit_code == 2
    output = plain(result.output)
    assert "invalid lakeFS settings" in output
    assert "secret_access_key looks like a placeholder" in output
    assert "changeme-secret-value" not in result.output


@pytest.mark.parametrize(("arguments", "option"), [(["--rows", "0"], "--rows"), (["--seed", "x"], "--seed")])
def test_demo_refuses_bad_values(arguments: list[str], option: str) -> None:
    result = runner.invoke(app, ["demo", *arguments])
    assert result.exit_code == 2
    assert f"Invalid value for '{option}'" in plain(result.output)


def test_data_dir_must_not_be_a_file(tmp_path: Path) -> None:
    a_file = tmp_path / "notes.txt"
    a_file.write_text("not a directory")
    result = runner.invoke(app, ["demo", "--data-dir", str(a_file)])
    assert result.exit_code == 2
    assert "is a file" in plain(result.output)


@pytest.mark.parametrize("command", ["generate", "ingest", "datasets"])
def test_stage_commands_document_themselves(command: str) -> None:
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0, result.output
    text = plain(result.output)
    expected = {
        "generate": ["--rows", "--covariate-shift", "--defect-rate", "--format"],
        "ingest": ["--dataset", "--chunk-rows", "SOURCE"],
        "datasets": ["datasets"],
    }[command]
    assert all(word in text for word in expected), text


def test_generate_into_a_folder_names_the_file(tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        ["generate", f"{tmp_path}/", "--dataset", "loans", "--rows", "50", "--seed", "4", "--format", "csv"],
    )
    assert result.exit_code == 0, result.output
    written = tmp_path / "loans-seed4.csv"
    assert written.exists() and len(written.read_text().splitlines()) == 51


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--function", "12"], "function"),
        (["--defect-rate", "1.5"], "defect-rate"),
        (["--dataset", "weather"], "no generator for dataset 'weather'"),
    ],
)
def test_generate_refuses_bad_options(tmp_path: Path, arguments: list[str], message: str) -> None:
    result = runner.invoke(app, ["generate", str(tmp_path / "x.parquet"), "--dataset", "loans", *arguments])
    assert result.exit_code == 2
    assert message in plain(result.output)


def test_ingest_refuses_an_unknown_dataset_before_starting_anything(tmp_path: Path) -> None:
    result = runner.invoke(app, ["ingest", str(tmp_path / "x.csv"), "--dataset", "weather"])
    assert result.exit_code == 2
    assert "unknown dataset 'weather'" in plain(result.output) and "loans" in plain(result.output)


# -- options beat the environment; settings shown with their source ------------------------------


def test_train_workers_option_beats_the_inherited_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # Regression: `lockgate train --workers 4` exported LOCKGATE_DASK_N_WORKERS with setdefault, so an
    # inherited LOCKGATE_DASK_N_WORKERS=2 won. The command now builds the settings from its options.
    import contextlib

    import flows.cli.context
    import tasks.training

    captured = {}

    @contextlib.contextmanager
    def no_lakefs(data_dir, quiet=False):
        yield flows.cli.context.Connection(client=None, settings=None)

    def fake_run_train(parameters, *, dask_cluster, **_):
        captured["dask"] = dask_cluster.args[0]
        raise RuntimeError("stop here")  # a real bug, not an anticipated error: it propagates

    monkeypatch.setenv("LOCKGATE_DASK_N_WORKERS", "2")
    monkeypatch.setenv("LOCKGATE_DASK_THREADS_PER_WORKER", "3")
    monkeypatch.setattr("flows.cli.models.lakefs_connection", no_lakefs)
    monkeypatch.setattr(tasks.training, "run_train", fake_run_train)
    result = runner.invoke(app, ["train", "--dataset", "loans", "--workers", "4"])
    assert isinstance(result.exception, RuntimeError), result.output
    assert captured["dask"].n_workers == 4  # the option
    assert captured["dask"].threads_per_worker == 3  # the environment fills what no option gives

    result = runner.invoke(app, ["train", "--dataset", "loans"])
    assert captured["dask"].n_workers == 2  # no option: the environment applies


def test_settings_show_values_sources_and_mask_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOCKGATE_DASK_N_WORKERS", "6")
    monkeypatch.setenv("LOCKGATE_S3_ACCESS_KEY_ID", "AKIALGTESTKEY0000001")
    monkeypatch.setenv("LOCKGATE_S3_SECRET_ACCESS_KEY", "a-very-secret-value-123")
    result = runner.invoke(app, ["settings", "--json", "--set", "dask.threads_per_worker=2"])
    assert result.exit_code == 0, result.output
    import json

    report = json.loads(result.output)
    assert set(report) == {
        "workload",
        "lakefs",
        "embedded-lakefs",
        "s3",
        "dask",
        "serving",
        "relay",
        "automation",
        "stack",
    }
    dask = report["dask"]["settings"]
    assert dask["n_workers"] == {
        "value": "6",
        "source": "environment",
        "variables": ["LOCKGATE_DASK_N_WORKERS"],
    }
    assert dask["threads_per_worker"]["source"] == "option" and dask["threads_per_worker"]["value"] == "2"
    assert dask["connect_attempts"]["source"] == "default"
    assert report["s3"]["settings"]["secret_access_key"]["value"] == "********"
    assert "a-very-secret-value-123" not in result.output
    # A setting that cannot work is named, not echoed (the relay needs a secret).
    assert report["relay"]["problem"] and "secret" in report["relay"]["problem"]


def test_settings_refuse_unknown_groups_and_fields() -> None:
    assert runner.invoke(app, ["settings", "weather"]).exit_code == 2
    result = runner.invoke(app, ["settings", "--set", "dask.nworkers=2"])
    assert result.exit_code == 2 and "dask has no setting 'nworkers'" in plain(result.output)


# -- services that do not answer: one line, never a traceback --------------------------------------


def test_an_unreachable_lakefs_endpoint_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    from infra.processes import free_port

    monkeypatch.setenv("LOCKGATE_LAKEFS_ENDPOINT", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("LOCKGATE_LAKEFS_ACCESS_KEY_ID", "AKIALGTESTKEY0000001")
    monkeypatch.setenv("LOCKGATE_LAKEFS_SECRET_ACCESS_KEY", "a-long-enough-secret")
    for command in (
        ["models", "list"],
        ["train", "--dataset", "loans"],
        ["monitor", "--model-name", "loans-mlp"],
        ["demo"],
        ["ingest", "x.csv", "--dataset", "loans"],
    ):
        result = runner.invoke(app, command)
        assert result.exit_code == 1, (command, result.output)
        assert "does not answer" in plain(result.output), (command, result.output)
        assert (
            "Traceback" not in result.output
            and result.exception is None
            or isinstance(result.exception, SystemExit)
        )


def test_an_unreachable_dask_scheduler_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    import contextlib

    import flows.cli.context
    import tasks.training
    from infra.processes import free_port

    @contextlib.contextmanager
    def no_lakefs(data_dir, quiet=False):
        yield flows.cli.context.Connection(client=None, settings=None)

    def run_train(parameters, *, dask_cluster, **_):
        with dask_cluster():
            raise AssertionError("connected to a scheduler that does not exist")

    monkeypatch.setenv("LOCKGATE_DASK_CONNECT_ATTEMPTS", "1")
    monkeypatch.setenv("LOCKGATE_DASK_CONNECT_TIMEOUT_S", "1")
    monkeypatch.setattr("flows.cli.models.lakefs_connection", no_lakefs)
    monkeypatch.setattr(tasks.training, "run_train", run_train)
    address = f"tcp://127.0.0.1:{free_port()}"
    result = runner.invoke(app, ["train", "--dataset", "loans", "--scheduler", address])
    assert result.exit_code == 1, result.output
    text = plain(result.output)
    assert f"Dask scheduler at {address} unreachable" in text and "LOCKGATE_DASK_SCHEDULER_ADDRESS" in text
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_an_unreachable_ray_address_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    from infra.processes import free_port
    from serving.operations import check_ray_address

    started = time.monotonic()
    for address in (f"127.0.0.1:{free_port()}", f"ray://127.0.0.1:{free_port()}"):
        with pytest.raises(errors.RayUnavailableError, match="no Ray cluster at") as raised:
            check_ray_address(address)  # what connect_ray asks before Ray's own minutes of retries
        assert "LOCKGATE_SERVING_RAY_ADDRESS" in str(raised.value)
    check_ray_address("auto")  # Ray resolves that one itself
    assert time.monotonic() - started < 30
