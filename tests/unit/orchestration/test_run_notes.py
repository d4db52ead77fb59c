"""A run's note: the outcome lines its tasks leave, joined; a person's note is never replaced."""

from __future__ import annotations

from types import SimpleNamespace

from include.orchestration.promotion import note_line
from include.orchestration.run_notes import NOTE_LIMIT, note_text, written_by_person

EVALUATION = {"challenger_version": "7", "reason": "roc_auc 0.7120 vs champion 0.7010 (+0.0110 >= 0.005)"}


def test_note_joins_outcomes_in_order_once_each():
    assert note_text(["drift 2013-04-02: RETRAIN (x)", " a \n b ", "drift 2013-04-02: RETRAIN (x)"]) == (
        "drift 2013-04-02: RETRAIN (x) · a b"
    )


def test_no_outcome_no_note():
    assert note_text([]) is None and note_text([None, "  ", {"outcome": "x"}]) is None


def test_a_long_note_is_cut_to_what_the_column_holds():
    text = note_text(["x" * 3000])
    assert len(text) == NOTE_LIMIT and text.endswith("…")


def test_a_note_with_an_author_is_a_persons():
    assert written_by_person(SimpleNamespace(user_id="admin"))
    assert not written_by_person(SimpleNamespace(user_id=None)) and not written_by_person(None)


def test_note_lines_tell_promoted_from_rejected():
    assert note_line("promoted", EVALUATION, {}) == f"v7 promoted: {EVALUATION['reason']}"
    rejected = {**EVALUATION, "reason": "rejected: roc_auc gain +0.0010 but its CI lower bound -0.0020 <= 0"}
    assert note_line("rejected", rejected, {}) == f"v7 {rejected['reason']}"
    by_person = {"approval": {"summary": "rejected by ana: 'not before the audit'"}}
    assert note_line("rejected by approver", EVALUATION, by_person) == (
        f"v7 rejected by ana: 'not before the audit' (the rule had allowed it: {EVALUATION['reason']})"
    )
    approved = {"approval": {"summary": "approved by ana: 'ok'"}}
    assert (
        note_line("promoted", EVALUATION, approved)
        == f"v7 promoted (approved by ana: 'ok'): {EVALUATION['reason']}"
    )
