"""The "over time" page: week rows from the recorded checks and trainings, charts with markers."""

from __future__ import annotations

from include.stages.timeline import MARKERS, timeline_html, week_rows
from tests.factories import tiny_cfg

CHECKS = [
    {"as_of": "2013-03-12T00:00:00+00:00", "champion_version": "1", "drift_share": 0.1, "share_threshold": 0.5,
     "realized": [{"partition": "20130226T0000Z_20130305T0000Z", "model_version": "1", "value": 0.70}],
     "retrain": False, "reasons": [], "prediction_drift": None},
    {"as_of": "2013-03-19T00:00:00+00:00", "champion_version": "1", "drift_share": 0.6, "share_threshold": 0.5,
     "realized": [{"partition": "20130305T0000Z_20130312T0000Z", "model_version": "1", "value": 0.64},
                  {"partition": "20130226T0000Z_20130305T0000Z", "model_version": "1", "value": 0.70}],
     "retrain": True, "reasons": ["drift share 0.60 >= 0.5"], "prediction_drift": {"score": 0.2}},
]  # fmt: skip
TRAININGS = [
    {"version": "1", "as_of": "2013-03-05", "outcome": "promoted", "reason": "no champion yet"},
    {"version": "2", "as_of": "2013-03-19", "outcome": "rejected", "reason": "gain below 0.005"},
]


def test_each_week_has_its_check_and_its_trainings_oldest_first():
    rows = week_rows(CHECKS, TRAININGS)
    assert [r["week"] for r in rows] == [
        "2013-02-26--2013-03-04",
        "2013-03-05--2013-03-11",
        "2013-03-12--2013-03-18",
    ]
    bootstrap, quiet, drifted = rows
    assert [t["version"] for t in bootstrap["trainings"]] == ["1"] and "serving" not in bootstrap
    assert quiet["decision"] == "quiet" and quiet["realized"] == 0.70
    assert drifted["retrain"] and drifted["realized"] == 0.64  # the newest week whose outcomes arrived
    assert drifted["realized_of"] == "2013-03-05--2013-03-11 by v1"
    assert [t["outcome"] for t in drifted["trainings"]] == ["rejected"]


def test_the_page_marks_retraining_promotion_and_rejection_and_escapes_the_data():
    hostile = [{**TRAININGS[1], "outcome": "rejected <script>alert(1)</script>"}]
    page = timeline_html(tiny_cfg(), week_rows(CHECKS, [TRAININGS[0], *hostile]))
    assert "<script>" not in page and "&lt;script&gt;" in page
    for color in MARKERS.values():
        assert f"stroke='{color}'" in page  # one marker of each kind
    assert page.count("<svg") == 2 and "realized" in page and "drift share" in page


def test_no_check_yet_says_so():
    page = timeline_html(tiny_cfg(), week_rows([], TRAININGS[:1]))
    assert "no values yet" in page and "v1 promoted" in page
