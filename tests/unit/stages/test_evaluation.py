"""The evaluation's log: the verdict leads, short, then the numbers and the reason."""

from __future__ import annotations

import logging

from include.decisions.promotion import Decision
from include.foundation.logging_config import quieted
from include.stages.evaluation import decision_line


def test_the_decision_line_reads_in_one_screen():
    promoted = Decision(True, "roc_auc 0.7076 vs champion 0.6995 (+0.0081 >= 0.002)", "roc_auc", 0.70761, 0.69951,
                        0.0081, 0.002, 0.014)  # fmt: skip
    text = decision_line("7", "6", promoted, (0.002, 0.014), 0.9)
    first, numbers, why = text.splitlines()
    assert first == "decision: PROMOTE v7 (champion v6)"
    assert numbers == "  roc_auc 0.7076 vs 0.6995, 90% CI of the gain [+0.0020, +0.0140]"
    assert why.startswith("  why: roc_auc 0.7076")
    rejected = Decision(False, "rejected: a tie", "root_mean_squared_error", 5.0, 5.0, 0.0)
    assert (
        decision_line("3", "2", rejected, None).splitlines()[0] == "decision: REJECT v3 (champion v2 stays)"
    )
    first = Decision(True, "no champion yet", "f1_score", 0.61, None, None)
    assert decision_line("1", None, first, None).splitlines()[:2] == [
        "decision: PROMOTE v1 (no champion yet)", "  f1_score 0.6100"
    ]  # fmt: skip


def test_library_chatter_is_quieted_only_inside_the_block():
    logger = logging.getLogger("mlflow.models.evaluation")
    before = logger.level
    with quieted("mlflow.models.evaluation"):
        assert not logger.isEnabledFor(logging.INFO)
    assert logger.level == before
