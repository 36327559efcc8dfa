"""The licence gate refuses what is not open source and passes on the installed runtime closure."""

from __future__ import annotations

import importlib.metadata as metadata

import pytest
from packaging.requirements import Requirement

from infra import licences


@pytest.mark.parametrize(
    "declared",
    [
        "BUSL-1.1",  # lakefs-sdk 1.87.0 and later
        "Business Source License 1.1",
        "SSPL-1.0",
        "Server Side Public License",
        "Elastic License 2.0",
        "Elastic-2.0 OR SSPL-1.0",
        "Apache-2.0 WITH Commons Clause",
        "source available",
        "LicenseRef-Proprietary",
    ],
)
def test_not_open_licences_are_refused(declared):
    assert licences.judge("anything", declared) == "not open"


@pytest.mark.parametrize(
    "declared",
    [
        "Apache-2.0",
        "Apache 2.0",  # lakefs-sdk 1.86.0
        "BSD-3-Clause AND 0BSD AND MIT AND Zlib AND CC0-1.0",
        "Apache-2.0 AND BSL-1.0 AND MIT",  # torch: BSL-1.0 is the Boost licence, not BUSL
        "MPL-2.0 AND (Apache-2.0 OR MIT)",
        "GPLv2",
        "Python Software Foundation License",
    ],
)
def test_open_licences_pass(declared):
    assert licences.judge("anything", declared) == "open"


def test_a_licence_nobody_declared_needs_a_review():
    assert licences.judge("mystery", "") == "unknown"
    assert licences.judge("mystery", "(none declared)") == "unknown"


def test_the_installed_runtime_closure_is_open_source():
    verdicts, missing = licences.check()
    names = {licence.name for licence in verdicts}
    assert {"lakefs-sdk", "prefect", "torch", "ray"} <= names  # the closure is the real one
    assert not missing
    assert [licence for licence in verdicts if licence.refused] == []
    sdk = next(licence for licence in verdicts if licence.name == "lakefs-sdk")
    assert not sdk.refused and "BUSL" not in sdk.declared


def test_the_closure_follows_extras_and_markers():
    found, missing = licences.closure([Requirement("uvicorn[standard]"), Requirement("nope-not-here")])
    assert "uvicorn" in found and "h11" in found
    assert "httptools" in found  # only through the 'standard' extra
    assert missing == ["nope-not-here"]
    skipped, _ = licences.closure([Requirement('pandas; python_version < "3"')])
    assert skipped == {}


def test_the_gate_exits_non_zero_on_a_refusal(monkeypatch, capsys):
    real = licences.declared_licence

    def busl_sdk(dist: metadata.Distribution) -> str:
        return "BUSL-1.1" if dist.metadata["Name"] == "lakefs-sdk" else real(dist)

    monkeypatch.setattr(licences, "declared_licence", busl_sdk)
    assert licences.main([]) == 1
    assert "lakefs-sdk" in capsys.readouterr().out
