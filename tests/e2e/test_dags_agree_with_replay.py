"""The DAGs and the replay take the same decisions on the same weeks (``make loop-value`` replays
what the loop would have done, so it must decide as the loop does).

A short pipeline (2-week training window, 1-week holdout, outcomes a week late and the refit on
the holdout as shipped, each week's delivered as a batch of its own) on six real weeks: the first champion,
a challenger judged against it, the champion scoring two weeks, and a drift check with the
realized-decay, estimated-decay, prediction-drift, staleness-debt and calendar rules, each
through ``dag.test()``; then
``include.replay`` on the same weeks, decision by decision: the same rows, the same promotion
verdict and reason, the same drift share, performance, realized metric of what was served,
estimate before the outcomes, prediction drift, staleness debt and retrain assessment.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from tests.airflow_helpers import run_dag, task_states
from tests.factories import demo_pipeline_with_weeks

pytestmark = pytest.mark.e2e
NAME = "flights_agree"
JAN1 = datetime(2013, 1, 1, tzinfo=UTC)
# outcomes a week late: the first champion waits for its holdout's (Jan 15-22) until Jan 29
FIRST, SECOND = JAN1 + timedelta(weeks=4), JAN1 + timedelta(weeks=6)
WEEK5, WEEK6 = JAN1 + timedelta(weeks=4), JAN1 + timedelta(weeks=5)


@pytest.fixture(scope="module")
def decided(tmp_path_factory, airflow_db):
    """The DAGs' decisions on five weeks, and the replay of the same weeks."""
    from include.replay import Replay, load_year

    mp = pytest.MonkeyPatch()
    cfg, settings = demo_pipeline_with_weeks(
        tmp_path_factory.mktemp("agree_pipelines"), NAME, 6, mp,
        # as the demo ships: the accepted challenger serves refit on its holdout
        training={"train_days": 14, "holdout_days": 7, "min_train_rows": 1000, "refit_on_holdout": True},
        labels={"delay_days": 7},  # as shipped: each week's outcomes arrive, as a batch, a week later
        drift={"share_threshold": 0.05,  # January's weather drifts week to week: a trigger to compare
               "performance_decay": {"margin": 0.0, "intervals": 1, "of_last": 2},
               "estimated_decay": {"margin": 0.0, "intervals": 1, "of_last": 2},
               "prediction_drift": {"method": "psi", "threshold": 0.1},
               "staleness": {"cost": 0.01}, "calendar_intervals": 1},
    )  # fmt: skip
    dags = {}
    for as_of in (FIRST, SECOND):
        dr = run_dag(f"{NAME}__train", run_conf={"reason": "test", "as_of": as_of.date().isoformat()})
        assert task_states(dr)["evaluate"] == "success", task_states(dr)
        ti = next(t for t in dr.get_task_instances() if t.task_id == "evaluate")
        dags[as_of] = ti.xcom_pull(task_ids="evaluate")
    for week in (WEEK5, WEEK6):  # the champion serves two weeks; the first one's outcomes arrive by SECOND
        dr = run_dag(f"{NAME}__score", run_conf={"interval": week.date().isoformat(), "model_version": None})
        assert task_states(dr) == {"score": "success"}, task_states(dr)
    dr = run_dag(f"{NAME}__drift_check", run_conf={"as_of": SECOND.date().isoformat()})
    assert task_states(dr)["check_drift"] == "success", task_states(dr)
    folder = settings.data_root / NAME / "drift"
    dags["drift"] = json.loads(
        max(folder.glob("*/summary.json"), key=lambda p: p.stat().st_mtime).read_text()
    )
    replay = Replay(cfg, load_year(cfg, settings, JAN1, SECOND), JAN1, SECOND)
    yield cfg, dags, replay
    mp.undo()


def test_the_first_champion_is_decided_alike(decided):
    cfg, dags, replay = decided
    assert replay.bootstrap_at == FIRST  # the first-champion rule, one function for both
    verdict = replay.gate(FIRST, None)
    assert dags[FIRST]["promote"] is verdict.promote is True
    assert dags[FIRST]["reason"] == verdict.reason
    assert dags[FIRST]["challenger"] == pytest.approx(verdict.challenger, abs=1e-12)


def test_a_challenger_is_judged_alike(decided):
    cfg, dags, replay = decided
    dag = dags[SECOND]
    verdict = replay.gate(SECOND, FIRST)
    assert dag["champion_version"] is not None  # judged against the first champion
    assert dag["promote"] == verdict.promote and dag["reason"] == verdict.reason
    assert (dag["challenger"], dag["champion"]) == pytest.approx(
        (verdict.challenger, verdict.champion), abs=1e-12
    )
    hold_start = replay.training_window(SECOND)[1]
    assert dag["holdout_rows"] == len(replay.window(hold_start, replay.labelled_end(SECOND)))  # the same rows


def test_the_drift_check_assesses_alike(decided):
    from include.decisions.retraining import (
        TriggerState,
        assess_retraining,
        performance_decayed,
        staleness_debt,
    )
    from include.decisions.windows import performance_window
    from include.replay import Outcome, Policy, ReplayEvidence
    from include.stages.evidence import gather_evidence

    cfg, dags, replay = decided
    check = dags["drift"]
    champion = SECOND if dags[SECOND]["promote"] else FIRST
    spec, metric = cfg.drift, cfg.promotion.primary_metric
    share = replay.drift_share(champion, SECOND, spec)
    start, end = performance_window(cfg.labels, spec, SECOND)  # where the outcomes have arrived
    assert end == WEEK6 and check["performance_window"] == [start.isoformat(), end.isoformat()]
    performance = replay.score(champion, start, spec.window_days)
    # the decay rule on what the champion served (its logged scores) vs the replay's own scoring:
    # the week whose outcomes arrived (WEEK5), not the one still awaiting them (WEEK6)
    realized = [replay.score(champion, WEEK5, 7)]
    assert [r["value"] for r in check["realized"]] == pytest.approx(realized, abs=1e-9)
    # the decay rule's baseline: the holdout metric of the champion as the gate judged it
    holdout = replay.score(
        champion, replay.training_window(champion)[1], cfg.training.holdout_days, judged=True
    )
    decayed = performance_decayed(spec.performance_decay, realized, holdout, metric)
    # the replay gathers its evidence with the DAG's own function, from the year in memory
    out = Outcome(Policy("x", "configured"), served={WEEK5: champion, WEEK6: champion},
                  weeks=[WEEK5.date()], scores=realized, champions=[champion.date()])  # fmt: skip
    evidence = gather_evidence(spec, metric, ReplayEvidence(replay, out, champion, SECOND, spec))
    assert (evidence.drift_share, evidence.performance, evidence.decayed) == (share, performance, decayed)
    # the estimate each scored week got before its outcomes (logged with it), and the rule on it
    estimated = [replay.estimated(champion, week) for week in (WEEK5, WEEK6)]
    assert check["estimated"] == pytest.approx(estimated, abs=1e-9) and None not in estimated
    assert evidence.estimated_decay == performance_decayed(spec.estimated_decay, estimated, holdout, metric,
                                                           "estimated")  # fmt: skip
    # the prediction-drift check: the served scores of the window against the champion's holdout scores
    said = evidence.prediction_drift
    assert check["prediction_drift"]["score"] == pytest.approx(said["score"], abs=1e-9)
    assert check["prediction_drift"]["current_rows"] == said["current_rows"]
    assert check["prediction_drift"]["reference_rows"] == said["reference_rows"]
    # the staleness debt: realized where the outcomes arrived (WEEK5), estimated before (WEEK6)
    served = ((WEEK5, realized[0], estimated[0]), (WEEK6, None, estimated[1]))
    assert evidence.served == served
    debt = staleness_debt(served, holdout, metric)
    assert (debt.intervals, debt.realized) == (2, 1)
    assert check["staleness_debt"]["value"] == pytest.approx(debt.value, abs=1e-9)
    # the calendar counts from the champion's data (read from its training run by the DAG)
    state = TriggerState(champion_as_of=champion)
    assessed = assess_retraining(spec, evidence, metric=metric, as_of=SECOND, state=state)
    assert assessed.debt == debt
    assert any(r.startswith("calendar") for r in assessed.reasons) is (champion == FIRST)
    assert check["drift_share"] == pytest.approx(share, abs=1e-12)
    assert check["performance"] == pytest.approx(performance, abs=1e-9)
    assert (check["retrain"], check["reasons"]) == (assessed.retrain, assessed.reasons)


def test_what_was_served_is_charted_on_the_serving_version(decided):
    """The realized metric of each labelled week is a point on the serving version's training run."""
    from mlflow import MlflowClient

    from include.foundation.settings import Settings

    cfg, dags, replay = decided
    check = dags["drift"]
    client = MlflowClient(Settings.from_env().mlflow_tracking_uri)
    served = client.get_model_version(cfg.registered_model, check["champion_version"])
    assert served.tags["refit.of"]  # what served is the refit of the version the gate judged
    run_id = served.run_id
    history = client.get_metric_history(run_id, f"realized_{cfg.promotion.primary_metric}")
    assert sorted(m.value for m in history) == sorted(r["value"] for r in check["realized"])
    assert len(history) == 1  # one week's outcomes have arrived
