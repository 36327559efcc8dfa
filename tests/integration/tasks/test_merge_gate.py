"""The pre-merge contract gate: ``tasks.merge_gate.check_merge`` on real lakeFS branches, and the relay's
``pre-merge`` answer deciding real merges on the embedded lakeFS server.

Valid data is ingested the way the ingestion flow does it (stage, Great Expectations, a published
contract report), then merged into ``main`` by hand: the gate lets it through. The same batch with a
few rows edited after its report was written (age 200, a negative salary) is refused: lakeFS answers
412, ``main`` does not move, and the relay's answer names the broken columns.
"""

from __future__ import annotations

import contextlib
import io
import json
import secrets
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import anyio
import httpx
import lakefs
import pandas as pd
import pytest
from lakefs.exceptions import ServerException

from infra.settings import RelaySettings
from serving.webhook_relay import create_app, sign
from tasks import versioning
from tasks.datasets import DatasetSpec, get_dataset
from tasks.generate import GeneratorConfig, write_batch
from tasks.ingestion import (
    DATA_PREFIX,
    check_expectations,
    new_run_id,
    publish_report,
    resolve_sources,
    stage_batch,
)
from tasks.merge_gate import ALL_FILES, FILE_COLUMN, check_merge, find_dataset_for_repository
from tests.support.asgi import serve_on_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

BATCH_ROWS = 400


# -- fixtures and helpers --------------------------------------------------------------------------


@pytest.fixture
def loans(lakefs_client: lakefs.Client) -> DatasetSpec:
    """The loans dataset, in a fresh repository of its own (so tests never share a ``main``)."""
    name = f"loans-gate-{uuid.uuid4().hex[:10]}"
    versioning.ensure_repository(name, storage_namespace=f"local://{name}", client=lakefs_client)
    return replace(get_dataset("loans"), repository=name)


def ingest(spec: DatasetSpec, tmp_path: Path, *, client: lakefs.Client, first_id: int = 0) -> str:
    """Stage, check and report a valid generated batch as the ingestion flow does, without merging it;
    return its branch."""
    source = tmp_path / f"batch-{first_id}.parquet"
    write_batch(GeneratorConfig(rows=BATCH_ROWS, seed=first_id + 1, first_id=first_id), str(source))
    staged = stage_batch(spec, resolve_sources(str(source)), client=client, run_id=new_run_id())
    staged.report.expectations = check_expectations(spec, staged)
    report = publish_report(staged, client=client)
    assert report.passed, report.to_json()
    return report.branch


def data_parts(spec: DatasetSpec, ref: str, *, client: lakefs.Client) -> list[str]:
    reference = lakefs.Reference(spec.repository, ref, client=client)
    return sorted(o.path for o in reference.objects(prefix=DATA_PREFIX) if o.path.endswith(".parquet"))


def break_rows(spec: DatasetSpec, branch: str, *, client: lakefs.Client) -> str:
    """Edit the batch's part on ``branch`` after its report passed: age 200 on row 3, salary -5 on rows
    7 and 8; commit and return the part's path."""
    (part,) = data_parts(spec, branch, client=client)
    frame = versioning.read_dataframe(spec.repository, ref=branch, path=part, client=client)
    frame.loc[3, "age"] = 200
    frame.loc[[7, 8], "salary"] = -5.0
    versioning.write_dataframe(frame, repository=spec.repository, branch=branch, path=part, client=client)
    versioning.commit_changes(spec.repository, branch, message="hand edit", metadata={}, client=client)
    return part


def upload(spec: DatasetSpec, branch: str, path: str, payload: bytes, *, client: lakefs.Client) -> None:
    lakefs.Repository(spec.repository, client=client).branch(branch).object(path).upload(
        payload, pre_sign=False
    )


def parquet_bytes(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


def valid_rows(rows: int, *, first_id: int) -> pd.DataFrame:
    from tasks.generate import generate_frame

    return generate_frame(GeneratorConfig(rows=rows, seed=7, first_id=first_id))


def failure(check, column: str) -> Any:
    """The one failure of ``check`` on ``column``."""
    found = [f for f in check.failures if f.column == column]
    assert len(found) == 1, check.failures
    return found[0]


# -- check_merge ----------------------------------------------------------------------------------


def test_a_valid_ingested_batch_passes(loans, lakefs_client, tmp_path):
    branch = ingest(loans, tmp_path, client=lakefs_client)

    check = check_merge(loans, source_ref=branch, destination_ref="main", client=lakefs_client)

    assert check.passed, check.message()
    assert check.files_checked == data_parts(loans, branch, client=lakefs_client)
    assert check.rows_checked == BATCH_ROWS
    assert (
        check.source_commit
        == lakefs.Reference(loans.repository, branch, client=lakefs_client).get_commit().id
    )


def test_rows_edited_after_their_report_are_refused_with_file_column_and_rows(loans, lakefs_client, tmp_path):
    branch = ingest(loans, tmp_path, client=lakefs_client)
    part = break_rows(loans, branch, client=lakefs_client)

    check = check_merge(loans, source_ref=branch, destination_ref="main", client=lakefs_client)

    assert not check.passed
    age, salary = failure(check, "age"), failure(check, "salary")
    assert (age.file, age.count, age.check) == (part, 1, "less_than_or_equal_to(80)")
    assert (salary.file, salary.count) == (part, 2)
    assert age.examples[0]["row"] == 3 and age.examples[0]["value"] == 200
    assert sorted(example["row"] for example in salary.examples) == [7, 8]
    # A report passed for this batch, but the rows are re-checked: only the row rules fail.
    assert {f.column for f in check.failures} <= {"age", "salary", "(row)"}
    assert "column 'age'" in check.message() and part in check.message()


def test_data_without_a_passed_report_is_refused_unless_reports_are_not_required(loans, lakefs_client):
    branch = f"by-hand-{uuid.uuid4().hex[:8]}"
    versioning.create_branch(loans.repository, branch, source_ref="main", client=lakefs_client)
    path = f"{DATA_PREFIX}by-hand/part-00000.parquet"
    upload(loans, branch, path, parquet_bytes(valid_rows(50, first_id=0)), client=lakefs_client)
    versioning.commit_changes(loans.repository, branch, message="by hand", metadata={}, client=lakefs_client)

    strict = check_merge(loans, source_ref=branch, destination_ref="main", client=lakefs_client)
    lenient = check_merge(
        loans, source_ref=branch, destination_ref="main", client=lakefs_client, require_report=False
    )

    report = failure(strict, FILE_COLUMN)
    assert (report.file, report.check) == (path, "passed contract report")
    assert "data_prefix='data/by-hand/'" in report.examples[0]["expected"]
    assert lenient.passed and lenient.rows_checked == 50


def test_unreadable_and_non_parquet_files_are_refused_by_name(loans, lakefs_client):
    branch = f"junk-{uuid.uuid4().hex[:8]}"
    versioning.create_branch(loans.repository, branch, source_ref="main", client=lakefs_client)
    corrupt, text = f"{DATA_PREFIX}junk/part-00000.parquet", f"{DATA_PREFIX}junk/notes.csv"
    upload(loans, branch, corrupt, b"PAR1 this is not parquet", client=lakefs_client)
    upload(loans, branch, text, b"a,b\n1,2\n", client=lakefs_client)
    versioning.commit_changes(loans.repository, branch, message="junk", metadata={}, client=lakefs_client)

    check = check_merge(
        loans, source_ref=branch, destination_ref="main", client=lakefs_client, require_report=False
    )

    by_file = {f.file: f for f in check.failures}
    assert set(by_file) == {corrupt, text}
    assert by_file[corrupt].check == "readable Parquet"
    assert corrupt in by_file[corrupt].examples[0]["file"]
    assert "not a readable Parquet file" in by_file[corrupt].examples[0]["error"]
    assert by_file[text].check == "Parquet data part"


def test_keys_repeated_across_files_of_the_merge_are_refused(loans, lakefs_client):
    branch = f"dupes-{uuid.uuid4().hex[:8]}"
    versioning.create_branch(loans.repository, branch, source_ref="main", client=lakefs_client)
    rows = valid_rows(20, first_id=1000)
    upload(loans, branch, f"{DATA_PREFIX}a/part-00000.parquet", parquet_bytes(rows), client=lakefs_client)
    upload(loans, branch, f"{DATA_PREFIX}b/part-00000.parquet", parquet_bytes(rows), client=lakefs_client)
    versioning.commit_changes(loans.repository, branch, message="twice", metadata={}, client=lakefs_client)

    check = check_merge(
        loans, source_ref=branch, destination_ref="main", client=lakefs_client, require_report=False
    )

    (repeated,) = check.failures
    assert (repeated.file, repeated.column, repeated.check) == (
        ALL_FILES,
        "application_id",
        "unique across chunks",
    )
    assert repeated.count == 20


def test_only_what_the_merge_brings_is_checked(loans, lakefs_client, tmp_path):
    # main already holds a batch; a branch that changes nothing under data/ brings nothing to check.
    branch = ingest(loans, tmp_path, client=lakefs_client)
    lakefs.Reference(loans.repository, branch, client=lakefs_client).merge_into("main")
    other = f"docs-{uuid.uuid4().hex[:8]}"
    versioning.create_branch(loans.repository, other, source_ref="main", client=lakefs_client)
    upload(loans, other, "README.md", b"# loans\n", client=lakefs_client)
    versioning.commit_changes(loans.repository, other, message="docs", metadata={}, client=lakefs_client)

    check = check_merge(loans, source_ref=other, destination_ref="main", client=lakefs_client)

    assert check.passed and check.files_checked == [] and check.rows_checked == 0


def test_find_dataset_for_repository(loans):
    assert find_dataset_for_repository(loans.repository, datasets={"loans": loans}) is loans
    assert find_dataset_for_repository("not-a-dataset", datasets={"loans": loans}) is None
    assert find_dataset_for_repository("lockgate-loans").name == "loans"


# -- the relay, called in-process -----------------------------------------------------------------


# The session lakeFS server's action token and a private replay window, for every relay built here.
RELAY: dict[str, Any] = {}


@pytest.fixture(autouse=True)
def _relay_auth(relay_token: str, tmp_path: Path) -> None:
    RELAY.update(token=relay_token, state_dir=tmp_path / "relay")


def call_relay(app: Any, body: Any) -> httpx.Response:
    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        headers = {"Authorization": f"Bearer {RELAY['token']}"}
        async with httpx.AsyncClient(transport=transport, base_url="http://relay") as client:
            if isinstance(body, bytes):
                headers["Content-Type"] = "application/json"
                return await client.post("/hooks/lakefs", content=body, headers=headers)
            return await client.post("/hooks/lakefs", json=body, headers=headers)

    return anyio.run(call)


def relay_settings(**settings: Any) -> RelaySettings:
    values = {"lakefs_token": RELAY["token"], "state_dir": RELAY["state_dir"], **settings}
    return RelaySettings(secret=secrets.token_hex(16), **values)


def no_emit(**arguments: Any) -> None:
    raise AssertionError(f"a pre-merge must emit nothing, got {arguments}")


def gate_app(spec: DatasetSpec, client: lakefs.Client, **settings: Any) -> Any:
    return create_app(
        relay_settings(**settings),
        emit=no_emit,
        lakefs_client_factory=lambda: client,
        datasets=lambda: {spec.name: spec},
    )


def pre_merge(repository: str, *, branch: str = "main", source_ref: str = "ingest-1") -> dict[str, Any]:
    return {
        "event_type": "pre-merge",
        "event_time": "2026-11-27T06:00:00Z",
        "action_name": "contract gate",
        "hook_id": "contract-gate",
        "repository_id": repository,
        "branch_id": branch,
        "source_ref": source_ref,
        "commit_message": "by hand",
        "committer": "admin",
        "commit_metadata": {},
    }


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b"{broken", "not valid JSON"),
        (b'["pre-merge"]', "must be a JSON object"),
        ({"event_type": "pre-merge", "branch_id": "main", "source_ref": "b"}, "'repository_id'"),
        ({"event_type": "pre-merge", "repository_id": "r", "source_ref": "b"}, "'branch_id'"),
        ({"event_type": "pre-merge", "repository_id": "r", "branch_id": "main"}, "'source_ref'"),
        ({"event_type": "pre-merge", "repository_id": "r", "branch_id": 7, "source_ref": "b"}, "'branch_id'"),
        (
            {"event_type": "pre-merge", "repository_id": "", "branch_id": "main", "source_ref": "b"},
            "'repository_id'",
        ),
    ],
)
def test_malformed_pre_merge_bodies_get_400(loans, lakefs_client, body, detail):
    response = call_relay(gate_app(loans, lakefs_client), body)
    assert response.status_code == 400, response.text
    assert detail in response.json()["detail"]


def test_unprotected_branches_and_other_repositories_are_allowed_unchecked(loans, lakefs_client):
    def factory() -> lakefs.Client:
        raise AssertionError("lakeFS must not be read for a merge the gate does not check")

    app = create_app(
        relay_settings(),
        emit=no_emit,
        lakefs_client_factory=factory,
        datasets=lambda: {loans.name: loans},
    )

    other_branch = call_relay(app, pre_merge(loans.repository, branch="staging"))
    other_repository = call_relay(app, pre_merge("not-a-dataset"))

    assert other_branch.status_code == 200 and other_repository.status_code == 200
    assert other_branch.json()["checked"] is False and other_branch.json()["passed"] is True
    assert "'staging' is not protected" in other_branch.json()["reason"]
    assert "'not-a-dataset' holds no declared dataset" in other_repository.json()["reason"]


def test_pre_merge_webhooks_must_be_signed_when_lakefs_secret_is_set(loans, lakefs_client):
    lakefs_secret = secrets.token_hex(16)
    app = gate_app(loans, lakefs_client, lakefs_secret=lakefs_secret, lakefs_token=None)
    body = json.dumps(pre_merge(loans.repository, branch="staging")).encode()

    async def post(headers: dict[str, str]) -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://relay") as client:
            return await client.post(
                "/hooks/lakefs", content=body, headers={"Content-Type": "application/json", **headers}
            )

    unsigned = anyio.run(post, {})
    signed = anyio.run(post, sign(lakefs_secret, body, path="/hooks/lakefs"))

    assert unsigned.status_code == 401, unsigned.text
    assert signed.status_code == 200 and signed.json()["passed"] is True, signed.text


def test_a_check_that_cannot_run_fails_closed_with_503(loans, lakefs_client):
    response = call_relay(
        gate_app(loans, lakefs_client), pre_merge(loans.repository, source_ref="no-such-branch")
    )

    assert response.status_code == 503, response.text
    assert response.json()["passed"] is False
    assert "no-such-branch" in response.json()["detail"]


def test_protected_branches_come_from_the_environment(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("LOCKGATE_WEBHOOK_SECRET", secrets.token_hex(16))
    monkeypatch.setenv("LOCKGATE_WEBHOOK_PROTECTED_BRANCHES", '["main", "production"]')
    assert RelaySettings().protected_branches == ["main", "production"]
    monkeypatch.delenv("LOCKGATE_WEBHOOK_PROTECTED_BRANCHES")
    assert RelaySettings().protected_branches == ["main"] and RelaySettings().require_contract_report
    with pytest.raises(ValueError, match="must not be empty"):
        RelaySettings(protected_branches=["main", " "])


# -- end to end: real merges on the embedded lakeFS server, decided by the relay -------------------


@dataclass
class Answer:
    path: str
    status: int
    body: Any


class AnswerRecorder:
    """ASGI middleware keeping every answer the relay gives (what lakeFS received)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.answers: list[Answer] = []

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status, chunks = 0, []

        async def record(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
            await send(message)

        await self.app(scope, receive, record)
        payload = b"".join(chunks)
        self.answers.append(Answer(scope["path"], status, json.loads(payload) if payload else None))


@pytest.fixture
def serve_gate(lakefs_client) -> Iterator[Callable[[DatasetSpec], tuple[str, AnswerRecorder]]]:
    """Start the relay (gating ``spec``) with uvicorn on a real local port; returns its URL and recorder."""
    with contextlib.ExitStack() as stack:

        def start(spec: DatasetSpec) -> tuple[str, AnswerRecorder]:
            recorder = AnswerRecorder(gate_app(spec, lakefs_client))
            return stack.enter_context(serve_on_port(recorder, name="merge-gate")), recorder

        yield start


def install_gate(spec: DatasetSpec, url: str, *, client: lakefs.Client) -> str:
    """Commit a pre-merge action (every branch: the relay decides which are protected) on main."""
    action = "\n".join(
        [
            "name: contract gate",
            "on:",
            "  pre-merge:",
            "hooks:",
            "  - id: contract-gate",
            "    type: webhook",
            "    properties:",
            f"      url: {url}/hooks/lakefs",
            "      timeout: 60s",
            "      headers:",
            '        Authorization: "Bearer {{ ENV.LAKEFSACTION_LOCKGATE_TOKEN }}"',
            "",
        ]
    )
    upload(spec, "main", "_lakefs_actions/contract-gate.yaml", action.encode(), client=client)
    return versioning.commit_changes(
        spec.repository, "main", message="install the contract gate", metadata={}, client=client
    )


def head(spec: DatasetSpec, branch: str, *, client: lakefs.Client) -> str:
    return lakefs.Reference(spec.repository, branch, client=client).get_commit().id


def test_a_hand_merge_of_rows_that_break_the_contract_is_refused(loans, lakefs_client, serve_gate, tmp_path):
    url, recorder = serve_gate(loans)
    main_before = install_gate(loans, url, client=lakefs_client)
    branch = ingest(loans, tmp_path, client=lakefs_client)
    part = break_rows(loans, branch, client=lakefs_client)

    with pytest.raises(ServerException) as raised:
        lakefs.Reference(loans.repository, branch, client=lakefs_client).merge_into("main")

    assert raised.value.status_code == 412
    assert "HTTP 412" in str(raised.value)
    assert head(loans, "main", client=lakefs_client) == main_before
    assert data_parts(loans, "main", client=lakefs_client) == []
    (answer,) = recorder.answers
    assert answer.status == 412 and answer.body["passed"] is False
    failures = {(f["file"], f["column"]) for f in answer.body["failures"]}
    assert {(part, "age"), (part, "salary")} <= failures
    assert "column 'age'" in answer.body["detail"]


def test_a_hand_merge_of_valid_data_goes_through(loans, lakefs_client, serve_gate, tmp_path):
    url, recorder = serve_gate(loans)
    install_gate(loans, url, client=lakefs_client)
    branch = ingest(loans, tmp_path, client=lakefs_client)

    merge_id = lakefs.Reference(loans.repository, branch, client=lakefs_client).merge_into("main")

    assert head(loans, "main", client=lakefs_client) == merge_id
    assert data_parts(loans, "main", client=lakefs_client) == data_parts(loans, branch, client=lakefs_client)
    (answer,) = recorder.answers
    assert (answer.status, answer.body["passed"], answer.body["checked"]) == (200, True, True)
    assert answer.body["rows_checked"] == BATCH_ROWS


def test_a_merge_into_an_unprotected_branch_is_not_gated(loans, lakefs_client, serve_gate, tmp_path):
    url, recorder = serve_gate(loans)
    install_gate(loans, url, client=lakefs_client)
    branch = ingest(loans, tmp_path, client=lakefs_client)
    break_rows(loans, branch, client=lakefs_client)
    versioning.create_branch(loans.repository, "staging", source_ref="main", client=lakefs_client)

    merge_id = lakefs.Reference(loans.repository, branch, client=lakefs_client).merge_into("staging")

    assert head(loans, "staging", client=lakefs_client) == merge_id
    (answer,) = recorder.answers
    assert answer.status == 200 and answer.body["checked"] is False
