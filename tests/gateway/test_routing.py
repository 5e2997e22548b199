"""Sticky canary assignment, cohort targeting, shadow sampling and who a request is."""

from __future__ import annotations

import pytest

from sluice.gateway.config import GatewaySettings
from sluice.gateway.routing import CANARY, STABLE, Identifier, Identity, bucket, choose_arm, mirror_this

SETTINGS = GatewaySettings.model_validate({"deployments": {"d": {
    "stable": "a@1", "canary": {"release": "a@2", "weight_bp": 2500}, "shadow": {"release": "a@3", "percent": 10}}}})
DEP = SETTINGS.deployments["d"]


def users(n: int) -> list[Identity]:
    return [Identity(f"user-{i}", "default", None) for i in range(n)]


def test_bucket_is_deterministic_and_salted():
    assert bucket("salt", "alice") == bucket("salt", "alice")
    assert 0 <= bucket("salt", "alice") < 10_000
    moved = sum(bucket("s1", f"u{i}") != bucket("s2", f"u{i}") for i in range(200))
    assert moved > 190  # a new salt reshuffles almost everyone


def test_canary_share_matches_weight_and_is_sticky():
    arms = [choose_arm("d", DEP, u) for u in users(20_000)]
    share = arms.count(CANARY) / len(arms)
    assert 0.235 < share < 0.265  # 25 % ± ~5 standard errors
    assert arms == [choose_arm("d", DEP, u) for u in users(20_000)]  # same user, same arm


def test_widening_only_moves_users_onto_the_canary():
    narrow = DEP.model_copy(update={"canary": DEP.canary.model_copy(update={"weight_bp": 1000})})
    wide = DEP.model_copy(update={"canary": DEP.canary.model_copy(update={"weight_bp": 5000})})
    for u in users(2000):
        if choose_arm("d", narrow, u) == CANARY:
            assert choose_arm("d", wide, u) == CANARY


@pytest.mark.parametrize("only, never, cohort, expected_possible", [
    (["free"], [], "enterprise", {STABLE}),
    ([], ["enterprise"], "enterprise", {STABLE}),
    (["free"], [], "free", {STABLE, CANARY}),
])
def test_cohort_targeting(only, never, cohort, expected_possible):
    canary = DEP.canary.model_copy(update={"only_cohorts": only, "never_cohorts": never})
    dep = DEP.model_copy(update={"canary": canary})
    arms = {choose_arm("d", dep, Identity(f"u{i}", cohort, None)) for i in range(400)}
    assert arms == expected_possible


def test_full_weight_and_zero_weight():
    full = DEP.model_copy(update={"canary": DEP.canary.model_copy(update={"weight_bp": 10_000})})
    zero = DEP.model_copy(update={"canary": DEP.canary.model_copy(update={"weight_bp": 0})})
    assert {choose_arm("d", full, u) for u in users(300)} == {CANARY}
    assert {choose_arm("d", zero, u) for u in users(300)} == {STABLE}


def test_shadow_share_and_independence_from_canary():
    mirrored = [mirror_this("d", DEP, u) for u in users(20_000)]
    assert 0.085 < sum(mirrored) / len(mirrored) < 0.115
    canary_users = [u for u in users(20_000) if choose_arm("d", DEP, u) == CANARY]
    share_in_canary = sum(mirror_this("d", DEP, u) for u in canary_users) / len(canary_users)
    assert 0.07 < share_in_canary < 0.13


def test_identity_sources_in_order():
    ident = Identifier(SETTINGS)
    assert ident.identify({"user": "u1", "metadata": {"user_id": "m1"}}, {"x-sluice-session": "s1"}).user_key == "u1"
    assert ident.identify({"metadata": {"user_id": "m1"}}, {"x-sluice-session": "s1"}).user_key == "s1"
    assert ident.identify({"metadata": {"user_id": "m1"}}, {}).user_key == "m1"
    assert ident.identify({}, {}).user_key is None


def test_cohort_sources_in_order():
    s = SETTINGS.model_copy(update={"cohort_by_user": {"u1": "enterprise"}})
    ident = Identifier(s)
    assert ident.identify({"user": "u1", "metadata": {"cohort": "free"}}, {"x-sluice-cohort": "beta"}).cohort == "beta"
    assert ident.identify({"user": "u1", "metadata": {"cohort": "free"}}, {}).cohort == "free"
    assert ident.identify({"user": "u1"}, {}).cohort == "enterprise"
    assert ident.identify({"user": "u2"}, {}).cohort == "default"


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="sticky key source"):
        GatewaySettings.model_validate({"sticky_keys": ["cookie:x"]})
    with pytest.raises(ValueError, match="both only_cohorts and never_cohorts"):
        GatewaySettings.model_validate({"deployments": {"d": {"stable": "a", "canary": {
            "release": "b", "only_cohorts": ["x"], "never_cohorts": ["x"]}}}})
    with pytest.raises(ValueError):
        GatewaySettings.model_validate({"deployments": {"d": {"stable": "a", "canary": {"release": "b", "weight_bp": 10_001}}}})


def test_canary_arm_is_exactly_bucket_below_weight_under_the_deployments_salt():
    """A user whose bucket equals the weight stays on stable (``<``, not ``<=``), and the bucket
    is taken under the deployment's salt, not its name."""
    salted = DEP.model_copy(update={"salt": "rollout-7"})
    for u in users(300):
        b = bucket("rollout-7", u.user_key)
        at = salted.model_copy(update={"canary": salted.canary.model_copy(update={"weight_bp": b})})
        above = salted.model_copy(update={"canary": salted.canary.model_copy(update={"weight_bp": b + 1})})
        if 0 < b < 9_999:
            assert choose_arm("d", at, u) == STABLE, (u, b)
            assert choose_arm("d", above, u) == CANARY, (u, b)
    arms = [choose_arm("d", salted, u) for u in users(2000)]
    assert arms == [CANARY if bucket("rollout-7", u.user_key) < 2500 else STABLE for u in users(2000)]
    assert arms != [choose_arm("d", DEP, u) for u in users(2000)]  # the name "d" would reshuffle them
