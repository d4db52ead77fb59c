"""Where a decision takes effect it is re-checked from the recorded evidence, however it was reached."""

from __future__ import annotations

from include.decisions.promotion import promotion_preconditions, rejection_preconditions

PASSED = {"challenger_version": "7", "promote": True, "reason": "roc_auc +0.03", "champion_version": "6",
          "champion_generation": 4}  # fmt: skip
REFUSED = {**PASSED, "promote": False, "reason": "rejected: roc_auc gain +0.0001 < 0.002"}
APPROVED = {"approved": True, "summary": "approved by ann", "champion_version": "6", "champion_generation": 4}
REJECTED = {**APPROVED, "approved": False, "summary": "rejected by ann: 'not before the audit'"}


def check(evaluation, approval=None, required=False, demoted=None, version="7"):
    return promotion_preconditions(version, evaluation, approval_required=required, approval=approval,
                                   demoted=demoted)  # fmt: skip


def test_a_passed_evaluation_may_take_effect():
    assert check(PASSED) == [] and check(PASSED, APPROVED, required=True) == []


def test_promote_reached_without_a_recorded_evaluation_is_refused():
    assert check(None) == ["no evaluation of v7 is recorded (its evaluate task never finished)"]


def test_promote_reached_after_a_refusing_evaluation_is_refused():
    assert check(REFUSED) == ["its evaluation refused it: rejected: roc_auc gain +0.0001 < 0.002"]


def test_an_evaluation_of_another_version_does_not_count():
    assert "is of v7, not v8" in check(PASSED, version="8")[0]


def test_an_unfenced_evaluation_is_refused():
    unfenced = {k: v for k, v in PASSED.items() if k != "champion_generation"}
    assert "generation" in check(unfenced)[0]


def test_a_rejected_or_missing_answer_never_promotes_behind_the_gate():
    assert check(PASSED, None, required=True) == [
        "promotion.approval is required and no answer of a person is recorded"
    ]
    assert check(PASSED, REJECTED, required=True) == [
        "the approval request was not approved (rejected by ann: 'not before the audit')"
    ]


def test_an_approval_of_an_earlier_evaluation_does_not_carry_over():
    stale = {**APPROVED, "champion_generation": 3}
    assert check(PASSED, stale, required=True) == [
        "the recorded approval answered an earlier evaluation, not this one"
    ]


def test_a_rolled_back_version_is_never_promoted_again():
    out = check(PASSED, demoted='{"reason": "bad release"}')
    assert out and "was rolled back" in out[0]


def test_reject_needs_a_refusal_or_a_persons_no():
    assert rejection_preconditions("7", REFUSED, by_approver=False, approval=None) == []
    assert rejection_preconditions("7", PASSED, by_approver=False, approval=None)[0].startswith(
        "its evaluation allowed it"
    )
    assert rejection_preconditions("7", PASSED, by_approver=True, approval=REJECTED) == []
    assert rejection_preconditions("7", PASSED, by_approver=True, approval=APPROVED)[0].startswith(
        "the approver approved it"
    )
    assert rejection_preconditions("7", PASSED, by_approver=True, approval=None) == [
        "no answer of a person is recorded"
    ]
