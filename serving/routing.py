"""Traffic routing between live model versions: weighted split, sticky keys, shadow copies.

Plain Python, no Ray: the ingress deployment holds a ``RoutingTable`` it refreshes from the rollout
control actor, and asks it where each request goes.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from infra.errors import InvalidInputError

Role = Literal["champion", "challenger"]
_WEIGHT_TOLERANCE = 1e-6


@dataclass(frozen=True)
class Route:
    """One live model version and the share of traffic it gets.

    Attributes:
        app: Ray Serve application that serves the version (one application per live version).
        model_name: Registered model name.
        version: Registered version label, e.g. ``v3``.
        role: ``champion`` (answers by default) or ``challenger`` (the version being rolled out).
        weight: Share of the answered traffic, 0..1; the weights of answering routes sum to 1.
        shadow: The version gets a copy of every request; its answers are logged, never returned.
    """

    app: str
    model_name: str
    version: str
    role: Role
    weight: float = 0.0
    shadow: bool = False

    def __post_init__(self) -> None:
        if not (0.0 <= self.weight <= 1.0) or math.isnan(self.weight):
            raise InvalidInputError(f"route {self.version}: weight must lie in [0, 1], got {self.weight}")
        if self.shadow and self.weight:
            raise InvalidInputError(f"route {self.version}: a shadow route answers no traffic (weight 0)")

    def to_dict(self) -> dict:
        return {
            "app": self.app,
            "model_name": self.model_name,
            "version": self.version,
            "role": self.role,
            "weight": self.weight,
            "shadow": self.shadow,
        }


@dataclass(frozen=True)
class RoutingTable:
    """The live routes and the epoch they were set in (each change starts a new epoch)."""

    routes: tuple[Route, ...]
    epoch: int = 0
    answering: tuple[Route, ...] = field(init=False, repr=False)
    _cumulative: tuple[float, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        versions = [route.version for route in self.routes]
        if len(set(versions)) != len(versions):
            raise InvalidInputError(f"a version is routed twice: {versions}")
        answering = tuple(route for route in self.routes if not route.shadow and route.weight > 0)
        total = sum(route.weight for route in answering)
        if self.routes and abs(total - 1.0) > _WEIGHT_TOLERANCE:
            raise InvalidInputError(
                f"weights of the answering routes must sum to 1, got {total:.6f} "
                f"({', '.join(f'{r.version}={r.weight}' for r in self.routes)})"
            )
        cumulative, running = [], 0.0
        for route in answering:
            running += route.weight
            cumulative.append(running)
        if cumulative:
            cumulative[-1] = 1.0  # rounding must never leave a gap at the top
        object.__setattr__(self, "answering", answering)
        object.__setattr__(self, "_cumulative", tuple(cumulative))

    @property
    def shadows(self) -> tuple[Route, ...]:
        return tuple(route for route in self.routes if route.shadow)

    def find(self, version: str) -> Route | None:
        return next((route for route in self.routes if route.version == version), None)

    def choose(self, key: str | None = None, *, rng: random.Random | None = None) -> Route:
        """The route that answers a request: by weight, and always the same one for the same ``key``.

        Raises:
            LookupError: no route answers traffic (nothing is deployed yet).
        """
        if not self.answering:
            raise LookupError("no model version is live")
        point = sticky_point(key) if key is not None else (rng or random).random()
        for route, bound in zip(self.answering, self._cumulative, strict=True):
            if point < bound:
                return route
        return self.answering[-1]

    def to_dict(self) -> dict:
        return {"epoch": self.epoch, "routes": [route.to_dict() for route in self.routes]}

    @classmethod
    def from_dict(cls, data: dict) -> RoutingTable:
        return cls(tuple(Route(**route) for route in data["routes"]), epoch=int(data["epoch"]))


def sticky_point(key: str) -> float:
    """A point in [0, 1) fixed by ``key`` (SHA-256, so it is the same in every process and release)."""
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split(
    champion: Route, challenger: Route | None, *, challenger_weight: float, shadow: bool
) -> list[Route]:
    """Routes for one rollout step: the challenger answers ``challenger_weight`` of traffic, or shadows."""
    if challenger is None:
        return [_with(champion, weight=1.0, shadow=False)]
    if shadow:
        return [_with(champion, weight=1.0, shadow=False), _with(challenger, weight=0.0, shadow=True)]
    if challenger_weight >= 1.0:
        return [_with(challenger, weight=1.0, shadow=False), _with(champion, weight=0.0, shadow=False)]
    return [
        _with(champion, weight=1.0 - challenger_weight, shadow=False),
        _with(challenger, weight=challenger_weight, shadow=False),
    ]


def _with(route: Route, *, weight: float, shadow: bool) -> Route:
    return Route(route.app, route.model_name, route.version, route.role, weight, shadow)


def describe(routes: Sequence[Route]) -> str:
    """``v3 95% (champion), v4 5% (challenger)`` for logs and artifacts."""
    parts = []
    for route in routes:
        share = "shadow" if route.shadow else f"{route.weight:.0%}"
        parts.append(f"{route.version} {share} ({route.role})")
    return ", ".join(parts) or "nothing live"
