"""The licence gate: every runtime dependency of lockgate must be open source.

Walks the installed closure of the runtime dependencies declared in ``pyproject.toml`` (markers and
extras evaluated, test extras left out), reads each distribution's licence from its package metadata
(``License-Expression``, then the ``License ::`` classifiers, then the free-text ``License`` field) and
fails on licences that are not open source: the Business Source License, the SSPL, the Elastic
License, the Commons Clause and anything else "source available". A distribution whose licence cannot
be read must be reviewed by a person and put on ``REVIEWED`` with the reason.

Run it as ``python -m infra.licences`` (the README's test command does); ``--all`` prints the table.
"""

from __future__ import annotations

import argparse
import importlib.metadata as metadata
import re
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"

# Not open source: refused wherever they appear in a distribution's licence metadata. ``BSL-1.0`` is
# the (open) Boost licence and does not match; ``BUSL`` is the Business Source License.
NOT_OPEN = re.compile(
    r"\bBUSL\b|business\s+source|\bSSPL\b|server\s+side\s+public|elastic\s+license|\bELv2\b"
    r"|commons\s+clause|source[\s-]+available|polyform|confluent\s+community|proprietary",
    re.IGNORECASE,
)
# Open-source licence names as they appear in SPDX expressions, classifiers and free-text fields.
OPEN = re.compile(
    r"\b(MIT|MIT-0|MIT-CMU|BSD|0BSD|Apache|PSF|Python\s+Software\s+Foundation|MPL|Mozilla\s+Public"
    r"|ISC|LGPL|GPL|AGPL|Artistic|Unlicense|CC0|Zlib|BSL-1\.0|Boost|CNRI-Python|EPL|HPND"
    r"|Historical\s+Permission)",
    re.IGNORECASE,
)

# Distributions whose metadata does not say their licence, each checked by hand. Keep it short.
REVIEWED: dict[str, str] = {}


@dataclass(frozen=True)
class Licence:
    """What one installed distribution declares, and the gate's verdict."""

    name: str
    version: str
    declared: str
    verdict: str  # "open", "not open", "unknown" or "reviewed"

    @property
    def refused(self) -> bool:
        return self.verdict in ("not open", "unknown")


def declared_licence(dist: metadata.Distribution) -> str:
    """The licence a distribution declares: SPDX expression, else classifiers, else the text field."""
    meta = dist.metadata
    expression = (meta.get("License-Expression") or "").strip()
    classifiers = [
        c.split("::")[-1].strip() for c in meta.get_all("Classifier") or [] if c.startswith("License ::")
    ]
    text = " ".join((meta.get("License") or "").split())
    if expression:
        return expression
    if classifiers:
        return "; ".join(classifiers) + (f" ({text[:60]})" if text and len(text) <= 60 else "")
    return text[:120]


def judge(name: str, declared: str) -> str:
    """The verdict for one distribution's declared licence."""
    if NOT_OPEN.search(declared):
        return "not open"
    if canonicalize_name(name) in REVIEWED:
        return "reviewed"
    return "open" if OPEN.search(declared) else "unknown"


def runtime_requirements(pyproject: Path = PYPROJECT) -> list[Requirement]:
    """The runtime dependencies lockgate declares (no optional extras)."""
    project = tomllib.loads(pyproject.read_text())["project"]
    return [Requirement(raw) for raw in project["dependencies"]]


def closure(requirements: list[Requirement]) -> tuple[dict[str, metadata.Distribution], list[str]]:
    """Installed distributions reachable from ``requirements``; also the required ones not installed."""
    found: dict[str, metadata.Distribution] = {}
    visited: set[tuple[str, frozenset[str]]] = set()
    missing: list[str] = []
    environment = default_environment()
    pending = [(requirement, "") for requirement in requirements]
    while pending:
        requirement, extra = pending.pop()
        if requirement.marker and not requirement.marker.evaluate({**environment, "extra": extra}):
            continue
        key = canonicalize_name(requirement.name)
        extras = frozenset(requirement.extras)
        if (key, extras) in visited:
            continue
        visited.add((key, extras))
        try:
            dist = found.get(key) or metadata.distribution(requirement.name)
        except metadata.PackageNotFoundError:
            missing.append(str(requirement))
            continue
        found[key] = dist
        for raw in dist.requires or []:
            child = Requirement(raw)
            if child.marker is None:
                pending.append((child, ""))
            else:  # the child applies for the plain install or for one of the extras asked for
                pending.extend((child, wanted) for wanted in ("", *sorted(extras)))
    return found, sorted(set(missing))


def check(requirements: list[Requirement] | None = None) -> tuple[list[Licence], list[str]]:
    """Judge every distribution of the runtime closure; return the verdicts and missing requirements."""
    found, missing = closure(requirements if requirements is not None else runtime_requirements())
    verdicts = []
    for key, dist in sorted(found.items()):
        declared = declared_licence(dist)
        verdicts.append(Licence(key, dist.version, declared or "(none declared)", judge(key, declared)))
    return verdicts, missing


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m infra.licences",
        description="Fail when a runtime dependency of lockgate is not open source (BUSL, SSPL, Elastic, "
        "Commons Clause, source-available) or declares no licence that is not on the reviewed list.",
    )
    parser.add_argument("--all", action="store_true", help="print every dependency, not only refusals")
    args = parser.parse_args(argv)
    verdicts, missing = check()
    refused = [licence for licence in verdicts if licence.refused]
    for licence in verdicts if args.all else refused:
        print(f"{licence.verdict:9} {licence.name}=={licence.version}: {licence.declared}")
    for requirement in missing:
        print(f"missing   {requirement}: declared by lockgate but not installed")
    if refused or missing:
        print(
            f"licence gate: {len(refused)} dependency(ies) refused, {len(missing)} missing. Replace or pin "
            "an open-source release, or, for a licence the metadata does not state, review it and add it "
            "to infra/licences.py REVIEWED with the reason.",
            file=sys.stderr,
        )
        return 1
    print(f"licence gate: {len(verdicts)} runtime dependencies, all open source")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
