"""``lockgate predict --sample N`` against the running app: rows of the served version's own holdout
reference (read from the registry), which the app's contract accepts and its champion answers."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from flows.cli import app

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_sample_records_come_from_the_served_models_reference_and_are_answered(
    serving, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tasks.registry import get_alias

    for name in ("LOCKGATE_DATASET", "LOCKGATE_MODEL_NAME"):
        monkeypatch.delenv(name, raising=False)  # the served model says which dataset, nothing else
    champion = get_alias(serving.model_name, "champion", client=serving.client).version
    result = CliRunner(env={"COLUMNS": "200", "NO_COLOR": "1"}).invoke(
        app, ["predict", "--sample", "4", "--url", serving.url]
    )
    assert result.exit_code == 0, result.output
    assert f"{serving.model_name} {champion}" in result.output
    rows = [line for line in result.output.splitlines() if re.match(r"^\W*[0-3]\W", line)]
    assert len(rows) == 4, result.output
