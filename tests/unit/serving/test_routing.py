"""Routing: route and table validation, weighted and sticky choice, rollout steps, serialisation."""

from __future__ import annotations

import hashlib
import json
import math
import random

import pytest

from infra.errors import InvalidInputError
from serving.routing import Route, RoutingTable, describe, split, sticky_point

# Accept a count within this many binomial standard deviations of its expectation. Draws are seeded,
# so each test is deterministic; 5 sd keeps a correct implementation clear of the edge (a two-sided
# miss has probability ~6e-7 for a fresh seed), while a wrong split (uniform instead of weighted, or
# the weights of two routes swapped) misses by dozens of standard deviations at 20,000 draws.
SIGMAS = 5.0
DRAWS = 20_000


def make_route(version: str, role: str = "champion", *, weight: float = 0.0, shadow: bool = False) -> Route:
    """A route of the ``loans-mlp`` model served by an app named after its version."""
    return Route(f"app-{version}", "loans-mlp", version, role, weight, shadow)


def assert_share(count: int, draws: int, weight: float) -> None:
    """``count`` of ``draws`` lies within SIGMAS binomial standard deviations of ``weight * draws``."""
    tolerance = SIGMAS * math.sqrt(draws * weight * (1 - weight))
    assert abs(count - draws * weight) <= tolerance, (count, draws * weight, tolerance)


class FixedPoint:
    """A stand-in for ``random.Random`` whose ``random()`` always answers one chosen point."""

    def __init__(self, point: float) -> None:
        self.point = point

    def random(self) -> float:
        return self.point


# --- Route ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("weight", [0.0, 0.05, 0.5, 1.0])
def test_route_accepts_weights_in_the_closed_unit_interval(weight: float) -> None:
    assert make_route("v1", weight=weight).weight == weight


@pytest.mark.parametrize("weight", [-0.01, 1.0001, 2.0, math.nan, math.inf, -math.inf])
def test_route_refuses_weights_outside_the_unit_interval(weight: float) -> None:
    with pytest.raises(InvalidInputError, match=r"route v7: weight must lie in \[0, 1\]"):
        make_route("v7", weight=weight)


def test_shadow_route_must_not_carry_weight() -> None:
    with pytest.raises(InvalidInputError, match="v2: a shadow route answers no traffic"):
        make_route("v2", "challenger", weight=0.1, shadow=True)
    assert make_route("v2", "challenger", shadow=True).shadow


def test_route_to_dict_holds_every_field() -> None:
    route = make_route("v4", "challenger", weight=0.25)
    assert route.to_dict() == {
        "app": "app-v4",
        "model_name": "loans-mlp",
        "version": "v4",
        "role": "challenger",
        "weight": 0.25,
        "shadow": False,
    }


# --- RoutingTable validation ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "weights",
    [(0.5, 0.4), (0.6, 0.6), (0.3,), (0.999, 0.0)],
    ids=["under", "over", "single-partial", "almost-one"],
)
def test_table_refuses_answering_weights_that_do_not_sum_to_one(weights: tuple[float, ...]) -> None:
    routes = tuple(make_route(f"v{i}", weight=w) for i, w in enumerate(weights))
    with pytest.raises(InvalidInputError, match="weights of the answering routes must sum to 1"):
        RoutingTable(routes)


def test_table_tolerates_float_rounding_in_the_weight_sum() -> None:
    # Ten routes of 0.1 sum to 0.9999999999999999 in floating point: a rounding error, not a mistake.
    routes = tuple(make_route(f"v{i}", weight=0.1) for i in range(10))
    assert sum(route.weight for route in routes) != 1.0
    assert len(RoutingTable(routes).answering) == 10
    with pytest.raises(InvalidInputError):
        RoutingTable((make_route("v1", weight=0.5), make_route("v2", weight=0.5 - 1e-5)))


def test_table_of_only_shadow_or_zero_weight_routes_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="must sum to 1, got 0.000000"):
        RoutingTable((make_route("v1"), make_route("v2", "challenger", shadow=True)))


def test_table_refuses_a_version_routed_twice() -> None:
    # Same version, even through two different apps and roles: the stats would merge into one.
    first = make_route("v3", weight=0.5)
    second = Route("other-app", "loans-mlp", "v3", "challenger", 0.5)
    with pytest.raises(InvalidInputError, match="a version is routed twice"):
        RoutingTable((first, second))


def test_shadows_answering_and_find() -> None:
    champion = make_route("v1", weight=1.0)
    shadow = make_route("v2", "challenger", shadow=True)
    idle = make_route("v0")
    table = RoutingTable((champion, shadow, idle), epoch=3)
    assert table.answering == (champion,)
    assert table.shadows == (shadow,)
    assert table.find("v2") is shadow
    assert table.find("v0") is idle
    assert table.find("v9") is None


# --- choose ------------------------------------------------------------------------------------------


def test_choose_with_nothing_live_raises_lookup_error() -> None:
    table = RoutingTable(())
    with pytest.raises(LookupError, match="no model version is live"):
        table.choose()
    with pytest.raises(LookupError):
        table.choose("customer-1")


def test_choose_never_returns_shadow_or_zero_weight_routes() -> None:
    table = RoutingTable(
        (make_route("v0"), make_route("v1", weight=1.0), make_route("v2", "challenger", shadow=True))
    )
    rng = random.Random(5)
    assert {table.choose(rng=rng).version for _ in range(500)} == {"v1"}
    assert {table.choose(f"key-{i}").version for i in range(500)} == {"v1"}


@pytest.mark.parametrize(
    ("point", "version"),
    [(0.0, "a"), (0.5999, "a"), (0.6, "b"), (0.8999, "b"), (0.9, "c"), (1 - 2**-53, "c")],
)
def test_choose_splits_the_unit_interval_by_cumulative_weight(point: float, version: str) -> None:
    table = RoutingTable(
        (make_route("a", weight=0.6), make_route("b", weight=0.3), make_route("c", weight=0.1))
    )
    assert table.choose(rng=FixedPoint(point)).version == version


def test_choose_has_no_gap_at_the_top_when_weights_round_below_one() -> None:
    # Cumulative weights of ten 0.1 routes end at 0.9999999999999999; the largest point random() can
    # give (1 - 2**-53) must still land on a route, the last one.
    routes = tuple(make_route(f"v{i}", weight=0.1) for i in range(10))
    table = RoutingTable(routes)
    assert table.choose(rng=FixedPoint(1 - 2**-53)).version == "v9"


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_weighted_choice_matches_the_weights(seed: int) -> None:
    weights = {"a": 0.6, "b": 0.3, "c": 0.1}
    table = RoutingTable(tuple(make_route(v, weight=w) for v, w in weights.items()))
    rng = random.Random(seed)
    counts = dict.fromkeys(weights, 0)
    for _ in range(DRAWS):
        counts[table.choose(rng=rng).version] += 1
    for version, weight in weights.items():
        assert_share(counts[version], DRAWS, weight)


def test_weighted_choice_is_reproducible_with_a_seeded_rng() -> None:
    table = RoutingTable((make_route("a", weight=0.5), make_route("b", weight=0.5)))
    rng_one, rng_two = random.Random(11), random.Random(11)
    first = [table.choose(rng=rng_one).version for _ in range(200)]
    second = [table.choose(rng=rng_two).version for _ in range(200)]
    assert first == second
    assert set(first) == {"a", "b"}


# --- sticky keys -------------------------------------------------------------------------------------


def test_sticky_point_is_the_leading_64_bits_of_the_sha256_of_the_key() -> None:
    key = "customer-42"
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    expected = int.from_bytes(digest[:8], "big") / 2**64
    assert sticky_point(key) == expected
    assert sticky_point("customer-43") != expected
    # Non-ASCII keys are hashed as UTF-8.
    accented = "clé-é"
    assert (
        sticky_point(accented)
        == int.from_bytes(hashlib.sha256(accented.encode("utf-8")).digest()[:8], "big") / 2**64
    )


def test_sticky_points_lie_in_the_unit_interval() -> None:
    points = [sticky_point(f"user-{i}") for i in range(2_000)] + [sticky_point("")]
    assert all(0.0 <= point < 1.0 for point in points)


def test_sticky_key_always_maps_to_the_same_route() -> None:
    table = RoutingTable((make_route("a", weight=0.5), make_route("b", "challenger", weight=0.5)))
    rebuilt = RoutingTable.from_dict(json.loads(json.dumps(table.to_dict())))
    rng = random.Random(3)
    for i in range(200):
        key = f"user-{i}"
        first = table.choose(key)
        # The rng is ignored when a key is given; a rebuilt table (another replica) agrees.
        assert all(table.choose(key, rng=rng) == first for _ in range(5))
        assert rebuilt.choose(key) == first
        expected = "a" if sticky_point(key) < 0.5 else "b"
        assert first.version == expected


def test_sticky_keys_spread_by_weight() -> None:
    weights = {"champion": 0.7, "challenger": 0.3}
    table = RoutingTable(
        (
            make_route("v1", "champion", weight=weights["champion"]),
            make_route("v2", "challenger", weight=weights["challenger"]),
        )
    )
    counts = {"champion": 0, "challenger": 0}
    for i in range(DRAWS):
        counts[table.choose(f"applicant-{i}").role] += 1
    for role, weight in weights.items():
        assert_share(counts[role], DRAWS, weight)


def test_sticky_keys_on_the_challenger_stay_there_as_its_share_grows() -> None:
    champion, challenger = make_route("v1"), make_route("v2", "challenger")
    keys = [f"user-{i}" for i in range(3_000)]
    previous: set[str] = set()
    for share in (0.05, 0.1, 0.25, 0.5):
        table = RoutingTable(tuple(split(champion, challenger, challenger_weight=share, shadow=False)))
        on_challenger = {key for key in keys if table.choose(key).version == "v2"}
        assert previous <= on_challenger
        assert_share(len(on_challenger), len(keys), share)
        previous = on_challenger


# --- split -------------------------------------------------------------------------------------------


def test_split_without_challenger_gives_the_champion_everything() -> None:
    champion = make_route("v1", weight=0.3)
    assert split(champion, None, challenger_weight=0.5, shadow=True) == [make_route("v1", weight=1.0)]


def test_split_shadow_step_copies_traffic_to_the_challenger() -> None:
    champion, challenger = make_route("v1"), make_route("v2", "challenger", weight=0.4)
    routes = split(champion, challenger, challenger_weight=0.4, shadow=True)
    assert routes == [make_route("v1", weight=1.0), make_route("v2", "challenger", shadow=True)]
    table = RoutingTable(tuple(routes))
    assert table.answering == (routes[0],)
    assert table.shadows == (routes[1],)


@pytest.mark.parametrize("share", [0.01, 0.05, 0.25, 0.5, 0.9])
def test_split_partial_step_shares_traffic(share: float) -> None:
    champion, challenger = make_route("v1"), make_route("v2", "challenger")
    routes = split(champion, challenger, challenger_weight=share, shadow=False)
    assert [(r.version, r.role, r.shadow) for r in routes] == [
        ("v1", "champion", False),
        ("v2", "challenger", False),
    ]
    assert routes[0].weight == pytest.approx(1.0 - share)
    assert routes[1].weight == share
    RoutingTable(tuple(routes))  # a valid table: the weights sum to 1


@pytest.mark.parametrize("share", [1.0, 1.5])
def test_split_full_step_sends_everything_to_the_challenger(share: float) -> None:
    champion, challenger = make_route("v1"), make_route("v2", "challenger")
    routes = split(champion, challenger, challenger_weight=share, shadow=False)
    assert routes == [make_route("v2", "challenger", weight=1.0), make_route("v1", weight=0.0)]
    table = RoutingTable(tuple(routes))
    assert table.answering == (routes[0],)
    assert table.find("v1") is not None  # the champion stays deployed, ready for a rollback


def test_split_keeps_app_model_and_role_of_its_routes() -> None:
    champion = Route("serve-a", "model-a", "v1", "champion", 0.2, False)
    challenger = Route("serve-b", "model-a", "v2", "challenger", 0.0, True)
    routes = split(champion, challenger, challenger_weight=0.2, shadow=False)
    assert [(r.app, r.model_name, r.version, r.role) for r in routes] == [
        ("serve-a", "model-a", "v1", "champion"),
        ("serve-b", "model-a", "v2", "challenger"),
    ]


def test_split_refuses_a_negative_share() -> None:
    with pytest.raises(InvalidInputError):
        split(make_route("v1"), make_route("v2", "challenger"), challenger_weight=-0.1, shadow=False)


# --- serialisation and description ---------------------------------------------------------------


def test_table_round_trips_through_json() -> None:
    table = RoutingTable(
        (
            make_route("v1", weight=0.75),
            make_route("v2", "challenger", weight=0.25),
            make_route("v3", "challenger", shadow=True),
        ),
        epoch=12,
    )
    data = json.loads(json.dumps(table.to_dict()))
    assert data["epoch"] == 12
    assert [route["version"] for route in data["routes"]] == ["v1", "v2", "v3"]
    restored = RoutingTable.from_dict(data)
    assert restored == table
    assert restored.answering == table.answering
    assert restored.shadows == table.shadows
    assert RoutingTable.from_dict(RoutingTable((), epoch=4).to_dict()) == RoutingTable((), epoch=4)


def test_from_dict_validates_what_it_reads() -> None:
    data = RoutingTable((make_route("v1", weight=1.0),), epoch=2).to_dict()
    data["routes"][0]["weight"] = 0.5
    with pytest.raises(InvalidInputError):
        RoutingTable.from_dict(data)


def test_describe() -> None:
    champion, challenger = make_route("v3"), make_route("v4", "challenger")
    assert (
        describe(split(champion, challenger, challenger_weight=0.05, shadow=False))
        == "v3 95% (champion), v4 5% (challenger)"
    )
    assert (
        describe(split(champion, challenger, challenger_weight=0.0, shadow=True))
        == "v3 100% (champion), v4 shadow (challenger)"
    )
    assert describe([]) == "nothing live"
