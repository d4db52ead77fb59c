"""Training through Airflow on real flights weeks and a real MLflow SQLite store.

The steps build on each other (first champion, rejected challenger, better challenger,
rollback), so they run in file order against one registry.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
import yaml

from include.foundation.settings import Settings
from include.stages.ingest import ingest_batch, publish_batch
from include.stages.validation import validate_batch
from tests.airflow_helpers import run_dag, run_note, task_states
from tests.factories import demo_yaml

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
AS_OF = "2013-03-12"  # 10 curated weeks, 9 labelled (outcomes a week late): 7 to train on, 2 to hold out
MODEL = "flights_delay_model"


def use_model(tmp_path: Path, monkeypatch, **params) -> None:
    """Run the demo pipeline with other model parameters (same pipeline, same registry)."""
    raw = demo_yaml(None)
    raw["model"]["params"].update(params)
    folder = tmp_path / "pipelines"
    folder.mkdir(exist_ok=True)
    (folder / "flights_delay.yaml").write_text(yaml.safe_dump(raw))
    monkeypatch.setenv("CT_PIPELINES_DIR", str(folder))


@pytest.fixture(scope="module")
def curated_weeks(flights_cfg, data_root):
    """Ten weeks of the shipped demo pipeline, each week's outcomes collected a week later, as the
    outcomes DAG would (by AS_OF the last week's have not arrived: it is not trained on)."""
    from include.decisions.windows import outcomes_due
    from include.foundation.errors import NothingToDo
    from include.stages.ingest import ingest_outcomes, publish_outcomes

    start = datetime(2013, 1, 1, tzinfo=UTC)
    for i in range(10):
        week, end = start + timedelta(weeks=i), start + timedelta(weeks=i + 1)
        try:
            batch = ingest_batch(flights_cfg, data_root, week, end)
            validate_batch(flights_cfg, data_root, batch["partition"])
            publish_batch(flights_cfg, data_root, batch["partition"])
        except NothingToDo:  # already published by an earlier module on this worker
            pass
        due = outcomes_due(flights_cfg.labels, week, end)
        if flights_cfg.outcomes_later and due[0] >= start:
            try:
                collected = ingest_outcomes(flights_cfg, data_root, *due)
            except NothingToDo:  # already published by an earlier module on this worker
                continue
            validate_batch(flights_cfg, data_root, collected["partition"], part="outcomes")
            publish_outcomes(flights_cfg, data_root, collected["partition"])


@pytest.fixture(scope="module")
def client():
    import mlflow
    from mlflow import MlflowClient

    mlflow.set_tracking_uri(Settings.from_env().mlflow_tracking_uri)
    return MlflowClient()


def champion(client):
    from include.stages.registry import get_champion

    mv = get_champion(client, MODEL)
    return None if mv is None else str(mv.version)


def champion_events() -> list[dict]:
    """The extras of the champion asset's events, oldest first."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.scalars(
            select(AssetEvent).join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .where(AssetModel.name == "flights_delay.champion").order_by(AssetEvent.id)
        ).all()  # fmt: skip
        return [dict(e.extra or {}) for e in rows]


def train(reason: str):
    dr = run_dag("flights_delay__train", run_conf={"reason": reason, "as_of": AS_OF})
    return dr, task_states(dr)


def test_first_training_without_champion_is_promoted(
    airflow_db, curated_weeks, client, tmp_path, monkeypatch
):
    import mlflow

    use_model(tmp_path, monkeypatch, max_iter=3)  # a modest first champion
    dr, states = train("bootstrap")
    assert str(dr.state) == "success", states
    assert states["promote"] == "success" and states["reject"] == "skipped"
    v = champion(client)
    assert v is not None
    assert run_note(dr).startswith(f"v{v} promoted: no champion yet; roc_auc=0."), run_note(dr)
    mv = client.get_model_version(MODEL, v)
    # the version reads at a glance: a handful of tags; lineage and the full record sit on its run
    assert set(mv.tags) == {"pipeline", "ct.role", "airflow.run_id", "run.reason", "decision.outcome",
                            "decision.metric", "decision.reason", "decision.run", "decision.at"}, mv.tags  # fmt: skip
    assert mv.tags["decision.outcome"] == "promoted" and mv.tags["run.reason"] == "bootstrap"
    assert mv.tags["decision.metric"].startswith("roc_auc 0.") and "no champion" in mv.tags["decision.metric"]
    assert mv.tags["decision.run"].endswith(f"/dags/flights_delay__train/runs/{quote(dr.run_id, safe='')}")
    assert mv.tags["airflow.run_id"] == dr.run_id
    assert mv.description.startswith("**promoted**: roc_auc 0.") and "Why: " in mv.description  # in full
    record = json.loads(Path(client.download_artifacts(mv.run_id, "decision/record.json")).read_text())
    assert record["outcome"] == "promoted" and record["run_reason"] == "bootstrap"
    assert record["previous_champion"] is None and record["challenger_version"] == v
    run = client.get_run(mv.run_id)
    assert run.data.tags["airflow.dag_id"] == "flights_delay__train" and run.data.tags["config.sha"]
    assert len(run.data.tags["data.train_sha256"]) == 64
    assert champion_events()[-1] == {"model": MODEL, "version": v, "previous_version": None,
                                     "roc_auc": round(run.data.metrics["roc_auc"], 4), "previous_roc_auc": None}  # fmt: skip
    assert run.data.metrics["roc_auc"] > 0.6 and "train_roc_auc" in run.data.metrics
    assert {d.dataset.name for d in run.inputs.dataset_inputs} >= {
        "flights_delay-train",
        "flights_delay-holdout",
    }
    artifacts = {a.path for a in client.list_artifacts(mv.run_id)}
    assert {"feature_importance.png", "decision.json"} <= artifacts
    assert any("roc_curve" in a for a in artifacts)
    sig = mlflow.models.get_model_info(f"models:/{MODEL}/{v}").signature
    assert {c.name for c in sig.inputs} >= {"carrier", "distance", "temp"}


def test_in_sample_as_of_is_refused_without_retry(airflow_db, curated_weeks, client, tmp_path, monkeypatch):
    """An earlier as_of would score the champion on its own training data (0.81 vs 0.71 once)."""
    if champion(client) is None:  # run alone: the refusal needs a champion trained up to AS_OF
        use_model(tmp_path, monkeypatch, max_iter=3)
        assert train("bootstrap")[1]["promote"] == "success"
        monkeypatch.undo()
    before = champion(client)
    versions = len(client.search_model_versions(f"name = '{MODEL}'"))
    dr = run_dag("flights_delay__train", run_conf={"reason": "in-sample", "as_of": "2013-03-05"})
    states = task_states(dr)
    assert str(dr.state) == "failed" and states["assemble"] == "failed", states
    assert states["train"] == "upstream_failed"
    assemble_ti = next(ti for ti in dr.get_task_instances() if ti.task_id == "assemble")
    assert assemble_ti.try_number == 1  # refused, not retried
    assert run_note(dr).startswith("failed: "), run_note(dr)  # the run list says why, too
    assert champion(client) == before
    assert len(client.search_model_versions(f"name = '{MODEL}'")) == versions


def test_worse_challenger_is_rejected_champion_unchanged(
    airflow_db, curated_weeks, client, tmp_path, monkeypatch
):
    before = champion(client)
    use_model(tmp_path, monkeypatch, max_iter=1, max_leaf_nodes=2)  # crippled
    dr, states = train("crippled")
    assert str(dr.state) == "success", states
    assert states["reject"] == "success" and states["promote"] == "skipped"
    assert champion(client) == before
    newest = max(int(v.version) for v in client.search_model_versions(f"name = '{MODEL}'"))
    tags = client.get_model_version(MODEL, str(newest)).tags
    assert tags["decision.outcome"] == "rejected" and "roc_auc" in tags["decision.reason"]
    assert run_note(dr) == f"v{newest} {tags['decision.reason']}"  # the run list tells it from a promotion


def test_better_challenger_promoted_then_tie_rejected_then_rollback(
    airflow_db, curated_weeks, client, flights_cfg, tmp_path, monkeypatch
):
    """With ``training.refit_on_holdout``: the gate judges the challenger as trained, the refit
    serves, and the next challenger is judged against the champion as the gate judged it."""
    from include.stages.datasets import read_training_set
    from include.stages.registry import recorded_evaluation, with_lineage
    from include.stages.training import refit_for_serving

    raw = demo_yaml(None)  # the demo config: 100 boosting iterations
    raw["training"]["refit_on_holdout"] = True
    (tmp_path / "flights_delay.yaml").write_text(yaml.safe_dump(raw))
    monkeypatch.setenv("CT_PIPELINES_DIR", str(tmp_path))
    first = champion(client)
    dr, states = train("better model")
    assert states["promote"] == "success", states
    better = champion(client)
    served = client.get_model_version(MODEL, better)
    judged = served.tags["refit.of"]
    assert better not in (first, judged) and served.tags["decision.previous_champion"] == first
    assert client.get_model_version(MODEL, first).tags["ct.replaced_by"] == better
    assert client.get_model_version(MODEL, judged).tags["refit.served_as"] == better
    assert f"v{judged} (serving as v{better}, refit on its holdout) promoted" in run_note(dr)
    said = client.get_model_version(MODEL, judged).description  # where evaluate's link lands
    assert said.startswith(f"Accepted by the gate; serves as its refit v{better}") and "Why: " in said, said
    # lineage of both windows, and the gate's evidence carried over
    refit, twin = with_lineage(client, served), with_lineage(client, client.get_model_version(MODEL, judged))
    assert refit.tags["data.train_start"] == twin.tags["data.train_start"]
    assert refit.tags["data.holdout_sha256"] == twin.tags["data.holdout_sha256"]
    assert len(read_training_set(refit)) == len(read_training_set(twin)) + len(
        read_training_set(twin, "holdout")
    )
    evaluation = recorded_evaluation(client, MODEL, better)
    assert (
        evaluation == recorded_evaluation(client, MODEL, judged)
        and evaluation["challenger_version"] == judged
    )
    assert refit.tags["data.train_end"] == evaluation["holdout_window"][1]
    assert (
        client.get_run(served.run_id).data.metrics["roc_auc"]
        == client.get_run(twin.run_id).data.metrics["roc_auc"]
    )
    # a retried promote finds its refit: no second version
    count = len(client.search_model_versions(f"name = '{MODEL}'"))
    refitting = flights_cfg.model_copy(
        update={"training": flights_cfg.training.model_copy(update={"refit_on_holdout": True})}
    )
    assert refit_for_serving(refitting, Settings.from_env(), judged, {}) == better
    assert len(client.search_model_versions(f"name = '{MODEL}'")) == count

    # same data, same seed, same config: an identical challenger ties with the champion as judged
    # (not its refit, which has seen this holdout), and a tie never promotes
    dr, states = train("same again")
    assert states["reject"] == "success" and states["promote"] == "skipped", states
    assert champion(client) == better
    newest = max(int(v.version) for v in client.search_model_versions(f"name = '{MODEL}'"))
    tie = recorded_evaluation(client, MODEL, str(newest))
    assert tie["champion_version"] == better and tie["difference"] == 0.0

    dr = run_dag("flights_delay__rollback", run_conf={"reason": "e2e test rollback"})
    assert str(dr.state) == "success", task_states(dr)
    assert champion(client) == first
    assert "e2e test rollback" in client.get_model_version(MODEL, better).tags["rollback.demoted"]
    assert "e2e test rollback" in client.get_model_version(MODEL, first).tags["rollback.restored"]


def test_champion_is_scored_with_its_own_features(airflow_db, curated_weeks, client, tmp_path, monkeypatch):
    """Dropping a feature from the config must not block every later evaluation."""
    import json

    before = champion(client)
    raw = demo_yaml(None)
    raw["model"]["numeric_features"].remove("visib")
    raw["model"]["categorical_features"].remove("dest")
    (tmp_path / "flights_delay.yaml").write_text(yaml.safe_dump(raw))
    monkeypatch.setenv("CT_PIPELINES_DIR", str(tmp_path))
    dr, states = train("fewer features")
    assert str(dr.state) == "success", states
    newest = max(int(v.version) for v in client.search_model_versions(f"name = '{MODEL}'"))
    mv = client.get_model_version(MODEL, str(newest))
    record = json.loads(Path(client.download_artifacts(mv.run_id, "decision.json")).read_text())
    assert record["champion_version"] == before and record["champion_metrics"]["roc_auc"] > 0.6
    assert mv.tags["decision.outcome"] in ("promoted", "rejected")
    if champion(client) != before:  # promoted: give the old champion back to the tests after this one
        client.set_registered_model_alias(MODEL, "champion", before)


@pytest.fixture(scope="module")
def assembled(flights_cfg, data_root, curated_weeks, tmp_path_factory):
    from include.stages.datasets import assemble, parse_as_of

    return assemble(flights_cfg, data_root, parse_as_of(AS_OF), tmp_path_factory.mktemp("assembled"))


def test_retried_training_does_not_register_twice(flights_cfg, assembled, client):
    from include.stages.training import train_and_register

    tags = {
        "airflow.dag_id": "flights_delay__train",
        "airflow.run_id": "manual__retry_test",
        "airflow.try_number": "1",
    }
    first = train_and_register(flights_cfg, Settings.from_env(), assembled, tags)
    count = len(client.search_model_versions(f"name = '{MODEL}'"))
    again = train_and_register(
        flights_cfg, Settings.from_env(), assembled, {**tags, "airflow.try_number": "2"}
    )
    assert again["version"] == first["version"] and again["run_id"] == first["run_id"]
    assert len(client.search_model_versions(f"name = '{MODEL}'")) == count


def test_promotion_is_compare_and_set(flights_cfg, client):
    from include.stages.registry import PromotionConflict, champion_state, promote

    current = champion(client)
    other = next(
        v.version for v in client.search_model_versions(f"name = '{MODEL}'") if str(v.version) != current
    )
    generation = champion_state(client, MODEL)[0]
    with pytest.raises(PromotionConflict, match="not overwriting"):  # evaluation saw another champion
        promote(client, MODEL, str(other), "999", {}, generation)
    with pytest.raises(PromotionConflict, match="since then move"):  # or an older generation
        promote(client, MODEL, str(other), current, {}, generation - 1)
    assert champion(client) == current


def test_retried_promotion_after_the_alias_moved_is_a_no_op(client):
    """Try 1 claimed its move and moved the alias, then died before its bookkeeping: try 2
    finishes it, no conflict; a decision made against another champion still fails."""
    from include.stages.registry import PromotionConflict, champion_state, move_champion, promote

    generation, current = champion_state(client, MODEL)
    other = next(
        str(v.version) for v in client.search_model_versions(f"name = '{MODEL}'") if str(v.version) != current
    )
    record = {"reason": "retry test", "airflow_run_id": "manual__retry_promote"}
    claimant = f"promote:manual__retry_promote:v{other}"
    assert move_champion(
        client, MODEL, other, current, generation, claimant, "promotion"
    )  # what try 1 got done
    try:
        out = promote(client, MODEL, other, current, record, generation)
        assert out == {"model_name": MODEL, "champion": other, "previous_champion": current}
        assert promote(client, MODEL, other, current, record, generation) == out  # and again
        assert champion(client) == other
        tags = client.get_model_version(MODEL, other).tags
        assert tags["decision.run"] == "manual__retry_promote" and tags["decision.outcome"] == "promoted"
        assert client.get_model_version(MODEL, current).tags["ct.replaced_by"] == other
        with pytest.raises(PromotionConflict):  # a decision made against another champion still fails
            promote(client, MODEL, current, "999", record, champion_state(client, MODEL)[0])
    finally:
        client.set_registered_model_alias(MODEL, "champion", current)


def test_marking_the_branch_success_never_promotes_a_refused_challenger(
    airflow_db, curated_weeks, client, tmp_path, monkeypatch
):
    """'Mark success' on promote_or_reject runs both branches: promote re-checks the recorded
    evaluation, fails without retry, and the registry records the attempt."""
    if champion(client) is None:  # run alone: a champion to beat
        use_model(tmp_path, monkeypatch, max_iter=3)
        assert train("bootstrap")[1]["promote"] == "success"
        monkeypatch.undo()
    before = champion(client)
    use_model(tmp_path, monkeypatch, max_iter=1, max_leaf_nodes=2)  # crippled: the rule refuses it
    dr = run_dag("flights_delay__train", run_conf={"reason": "marked", "as_of": AS_OF},
                 mark_success_pattern="^promote_or_reject$")  # fmt: skip
    states = task_states(dr)
    assert states["promote"] == "failed" and states["reject"] == "success", states
    promote_ti = next(ti for ti in dr.get_task_instances() if ti.task_id == "promote")
    assert promote_ti.try_number == 1  # refused, not retried
    assert champion(client) == before
    newest = max(int(v.version) for v in client.search_model_versions(f"name = '{MODEL}'"))
    tags = client.get_model_version(MODEL, str(newest)).tags
    assert tags["decision.outcome"] == "rejected", tags
    assert "its evaluation refused it: rejected" in tags["decision.promotion_refused"], tags
    assert dr.run_id in tags["decision.promotion_refused"]


def test_unloadable_champion_fails_loudly(flights_cfg, assembled, client):
    from include.stages.evaluation import ChampionUnavailable, evaluate_challenger
    from include.stages.training import train_and_register

    tags = {"airflow.run_id": "manual__unloadable_champion"}
    challenger = train_and_register(flights_cfg, Settings.from_env(), assembled, tags)
    current = champion(client)
    broken = client.create_model_version(MODEL, source="/nonexistent/model", run_id=None)
    client.set_registered_model_alias(MODEL, "champion", broken.version)
    try:
        with pytest.raises(ChampionUnavailable, match="cannot be loaded or scored"):
            evaluate_challenger(flights_cfg, Settings.from_env(), challenger, assembled)
    finally:
        client.set_registered_model_alias(MODEL, "champion", current)
    assert "decision.outcome" not in client.get_model_version(MODEL, challenger["version"]).tags


def test_registry_cli_reports_the_champion(client):
    import json
    import os
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "include.stages.registry", "status", "--pipeline", "flights_delay"],
        capture_output=True, text=True, check=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    status = json.loads(out.stdout)
    assert str(status["champion"]) == champion(client)
    assert status["tags"]["decision.outcome"] == "promoted"
    bad = subprocess.run(
        [sys.executable, "-m", "include.stages.registry", "rollback", "--pipeline", "nope", "--reason", "x"],
        capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert bad.returncode != 0 and "unknown pipeline 'nope'" in bad.stderr
