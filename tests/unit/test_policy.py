"""The verdict policy: what a rollout does after each check."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from serinus.api.spec import AnalysisSpec, OnFailure
from serinus.api.status import Verdict
from serinus.core.policy import Counters, Decision, assess, record

PASS, FAIL, INCONCLUSIVE = Verdict.PASS, Verdict.FAIL, Verdict.INCONCLUSIVE


@pytest.mark.parametrize(
    ("before", "verdict", "after"),
    [
        (Counters(), FAIL, Counters(failed=1)),
        (Counters(failed=1, inconclusive=3, passed=2), FAIL, Counters(failed=2, passed=2)),
        (Counters(inconclusive=2), INCONCLUSIVE, Counters(inconclusive=3)),
        (Counters(failed=1, passed=1), INCONCLUSIVE, Counters(failed=1, inconclusive=1, passed=1)),
        (Counters(inconclusive=4, passed=1), PASS, Counters(passed=2)),
        (Counters(failed=1), PASS, Counters(failed=1, passed=1)),  # failures are not forgiven
    ],
)
def test_record(before: Counters, verdict: Verdict, after: Counters) -> None:
    assert record(before, verdict) == after


@pytest.mark.parametrize(
    ("counters", "settings", "on_failure", "decision", "reason"),
    [
        (Counters(), {}, OnFailure.ROLLBACK, Decision.CONTINUE,
         "0 of 2 allowed failed checks, 0 passed, 0 inconclusive in a row: continuing"),
        (Counters(failed=1, passed=3), {}, OnFailure.ROLLBACK, Decision.CONTINUE,
         "1 of 2 allowed failed checks"),
        (Counters(failed=2), {}, OnFailure.ROLLBACK, Decision.ROLLBACK,
         "analysis failed 2 times (failureLimit 2): rolling back"),
        (Counters(failed=1), {"failure_limit": 1}, OnFailure.ROLLBACK, Decision.ROLLBACK,
         "analysis failed once (failureLimit 1): rolling back"),
        (Counters(failed=3), {}, "rollback", Decision.ROLLBACK, "rolling back"),
        (Counters(failed=2), {}, OnFailure.PAUSE, Decision.PAUSE,
         "analysis failed 2 times (failureLimit 2) and onFailure is pause: holding the canary"),
        (Counters(inconclusive=100), {}, OnFailure.ROLLBACK, Decision.CONTINUE,
         "100 inconclusive in a row: continuing"),  # inconclusiveLimit 0 waits forever
        (Counters(inconclusive=2), {"inconclusive_limit": 3}, OnFailure.ROLLBACK,
         Decision.CONTINUE, "continuing"),
        (Counters(inconclusive=3), {"inconclusive_limit": 3}, OnFailure.ROLLBACK, Decision.PAUSE,
         "analysis inconclusive 3 times in a row (inconclusiveLimit 3)"),
        (Counters(failed=2, inconclusive=5), {"inconclusive_limit": 3}, OnFailure.ROLLBACK,
         Decision.ROLLBACK, "failureLimit 2"),  # failures outrank a streak of no-verdicts
    ],
)  # fmt: skip
def test_assess(
    counters: Counters,
    settings: dict[str, int],
    on_failure: OnFailure | str,
    decision: Decision,
    reason: str,
) -> None:
    assessment = assess(counters, AnalysisSpec(**settings), on_failure)
    assert assessment.decision == decision
    assert reason in assessment.reason


def test_a_rollout_that_fails_twice_out_of_four_checks_rolls_back_on_the_second_failure() -> None:
    spec, counters, decisions = AnalysisSpec(), Counters(), []
    for verdict in (PASS, FAIL, INCONCLUSIVE, FAIL):
        counters = record(counters, verdict)
        decisions.append(assess(counters, spec, OnFailure.ROLLBACK).decision)
    assert decisions == [Decision.CONTINUE] * 3 + [Decision.ROLLBACK]


@given(verdicts=st.lists(st.sampled_from([PASS, INCONCLUSIVE]), max_size=50))
def test_without_failures_a_rollout_never_rolls_back(verdicts: list[Verdict]) -> None:
    counters = Counters()
    for verdict in verdicts:
        counters = record(counters, verdict)
        for on_failure in OnFailure:
            assessment = assess(counters, AnalysisSpec(inconclusive_limit=3), on_failure)
            assert assessment.decision != Decision.ROLLBACK


@given(verdicts=st.lists(st.sampled_from(list(Verdict)), max_size=50))
def test_counters_count_what_happened(verdicts: list[Verdict]) -> None:
    counters = Counters()
    for verdict in verdicts:
        counters = record(counters, verdict)
    streak = len(verdicts) - len(
        "".join("x" if v == INCONCLUSIVE else "." for v in verdicts).rstrip("x")
    )
    assert counters == Counters(
        failed=verdicts.count(FAIL), inconclusive=streak, passed=verdicts.count(PASS)
    )


def test_counters_are_frozen_and_never_negative() -> None:
    with pytest.raises(ValueError, match="frozen"):
        Counters().failed = 1  # type: ignore[misc]
    with pytest.raises(ValueError, match="greater than or equal to 0"):
        Counters(failed=-1)
