"""Loading from the registry never runs a pickle."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from mlflow.protos.databricks_pb2 import RESOURCE_ALREADY_EXISTS, RESOURCE_DOES_NOT_EXIST


@pytest.fixture
def local_mlflow(tmp_path, monkeypatch):
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = mlflow.create_experiment("registry_test", artifact_location=(tmp_path / "artifacts").as_uri())
    mlflow.set_experiment(experiment_id=exp)
    yield mlflow


def test_only_skops_models_of_library_types_are_loaded(local_mlflow):
    import mlflow.sklearn
    from sklearn.linear_model import LogisticRegression

    from include.stages.registry import UnsafeModel, load_model

    X = pd.DataFrame({"x": np.arange(20.0)})
    model = LogisticRegression().fit(X, np.arange(20) % 2)
    with mlflow.start_run():
        skops = mlflow.sklearn.log_model(model, name="skops", skops_trusted_types=[], pip_requirements=[])
        pickled = mlflow.sklearn.log_model(
            model, name="pickled", serialization_format="cloudpickle", pip_requirements=[]
        )
    assert load_model(skops.model_uri).predict(X).shape == (20,)
    with pytest.raises(UnsafeModel, match="cloudpickle"):
        load_model(pickled.model_uri)


class FakeRegistry:
    """The MLflow client calls the champion's compare-and-set makes, in memory: experiment names
    are unique (deleted or not), aliases are last-writer-wins, as in MLflow's store."""

    def __init__(self, versions=("1", "2", "3")):
        from types import SimpleNamespace

        self.ns = SimpleNamespace
        self.aliases: dict[str, str] = {}
        self.model_tags: dict[str, str] = {}
        self.version_tags = {v: {} for v in versions}
        self.experiments: dict[str, object] = {}
        self.clock = 1_000_000.0  # seconds; tickets record it as creation_time (ms)

    def get_model_version_by_alias(self, name, alias):
        from mlflow.exceptions import MlflowException

        if alias not in self.aliases:
            raise MlflowException("no alias", error_code=RESOURCE_DOES_NOT_EXIST)
        v = self.aliases[alias]
        return self.ns(version=v, tags=dict(self.version_tags[v]), run_id=None)

    def get_registered_model(self, name):
        return self.ns(tags=dict(self.model_tags), aliases=dict(self.aliases))

    def set_registered_model_alias(self, name, alias, version):
        self.aliases[alias] = str(version)

    def set_registered_model_tag(self, name, key, value):
        self.model_tags[key] = value

    def create_experiment(self, name, tags=None):
        from mlflow.exceptions import MlflowException

        if name in self.experiments:
            raise MlflowException(
                f"Experiment(name={name}) already exists", error_code=RESOURCE_ALREADY_EXISTS
            )
        self.experiments[name] = self.ns(
            name=name, tags=dict(tags or {}), creation_time=int(self.clock * 1000)
        )
        return name

    def get_experiment_by_name(self, name):
        return self.experiments.get(name)

    def delete_experiment(self, experiment_id):
        pass  # deleted experiments keep their names

    def set_model_version_tag(self, name, version, key, value):
        self.version_tags[str(version)][key] = value

    def get_model_version(self, name, version):
        return self.ns(version=str(version), run_id=None, tags=dict(self.version_tags[str(version)]))


def test_a_promotion_moves_the_champion_from_what_evaluation_saw():
    from include.stages.registry import PromotionConflict, promote

    reg = FakeRegistry()
    reg.aliases["champion"] = "1"
    assert promote(reg, "m", "2", "1", {"airflow_run_id": "r2", "reason": "better"})["champion"] == "2"
    assert reg.aliases["champion"] == "2" and reg.version_tags["2"]["decision.outcome"] == "promoted"
    assert reg.version_tags["1"]["ct.replaced_by"] == "2"
    with pytest.raises(
        PromotionConflict, match="champion is v2 but this promotion expected v1; not overwriting"
    ):
        promote(reg, "m", "3", "1", {"airflow_run_id": "r3", "reason": "judged against v1"})
    assert reg.aliases["champion"] == "2"  # untouched, and the loser says why it is not champion
    assert reg.version_tags["3"]["decision.outcome"] == "conflict"
    assert "judged against v1" in reg.version_tags["3"]["decision.reason"]


def test_two_claims_of_the_same_move_have_one_winner():
    """B read the same state as A, but A claimed the move's ticket first."""
    from include.stages.registry import _claim, _ticket_name, promote

    reg = FakeRegistry()
    reg.aliases["champion"] = "1"
    a = {"from": "1", "to": "2", "claimant": "A", "kind": "promotion"}
    assert _claim(reg, "m", 1, a) and _claim(reg, "m", 1, a)  # the claimant itself may claim again (a retry)
    assert not _claim(reg, "m", 1, {"from": "1", "to": "3", "claimant": "B", "kind": "promotion"})
    reg.clock += 3600  # A's alias write never came (it died): an old claim does not block forever
    promote(reg, "m", "3", "1", {"airflow_run_id": "B"})
    assert (
        reg.aliases["champion"] == "3" and reg.get_experiment_by_name(_ticket_name("m", 2)).tags["to"] == "3"
    )


def test_a_claimed_move_not_yet_applied_blocks_another():
    from include.stages.registry import PromotionConflict, _ticket_name, promote

    reg = FakeRegistry()
    reg.aliases["champion"] = "1"
    reg.clock = __import__("time").time()
    reg.create_experiment(
        _ticket_name("m", 1), {"from": "1", "to": "2", "claimant": "A", "kind": "promotion"}
    )
    with pytest.raises(PromotionConflict, match="from v1 to v2 .move 1. is being applied right now"):
        promote(reg, "m", "3", "1", {"airflow_run_id": "B"})
    assert reg.aliases["champion"] == "1"


def test_the_alias_moved_by_hand_counts():
    from include.stages.registry import promote

    reg = FakeRegistry()
    reg.aliases["champion"] = "1"
    promote(reg, "m", "2", "1", {"airflow_run_id": "r2"})
    reg.aliases["champion"] = "3"  # someone in the MLflow UI
    assert promote(reg, "m", "1", "3", {"airflow_run_id": "r1"})["champion"] == "1"
    assert reg.aliases["champion"] == "1"


def test_a_retry_after_its_claim_finishes_the_move():
    from include.stages.registry import _ticket_name, promote

    reg = FakeRegistry()
    reg.aliases["champion"] = "1"
    reg.create_experiment(_ticket_name("m", 1), {"from": "1", "to": "2", "claimant": "promote:r2:v2"})
    out = promote(reg, "m", "2", "1", {"airflow_run_id": "r2"})  # try 1 died between claim and alias
    assert out["champion"] == "2" and reg.aliases["champion"] == "2"


def test_a_later_claim_wins_whatever_order_the_alias_writes_land_in():
    """A claims move 1 and is slow; B claims move 2 from A's target and writes its alias first."""
    from include.stages.registry import _settle, _ticket_name

    reg = FakeRegistry()
    reg.create_experiment(_ticket_name("m", 1), {"from": "1", "to": "2", "claimant": "A"})
    reg.create_experiment(_ticket_name("m", 2), {"from": "2", "to": "3", "claimant": "B"})
    reg.aliases["champion"] = "3"  # B's write
    reg.aliases["champion"] = "2"  # A's late write
    _settle(reg, "m", 1)  # A re-reads after writing
    assert reg.aliases["champion"] == "3" and reg.model_tags["ct_loop.champion_moves"] == "2"


def test_rollback_is_a_move_like_any_other():
    from include.stages.registry import promote, rollback

    reg = FakeRegistry()
    reg.aliases["champion"] = "1"
    promote(reg, "m", "2", "1", {"airflow_run_id": "r2"})
    out = rollback(reg, "m", "bad release http://u:secret@host", actor="ops")
    assert out["champion"] == "1" and reg.aliases["champion"] == "1"
    assert "secret" not in reg.version_tags["1"]["rollback.restored"]  # credentials redacted


def test_a_conflict_never_rewrites_the_decision_of_a_version_that_has_one():
    from include.stages.registry import PromotionConflict, promote

    reg = FakeRegistry()
    reg.aliases["champion"] = "1"
    promote(reg, "m", "2", "1", {"airflow_run_id": "r2"})
    promote(reg, "m", "3", "2", {"airflow_run_id": "r3"})
    with pytest.raises(PromotionConflict):
        promote(reg, "m", "2", "999", {"airflow_run_id": "r9"})  # a stale decision about a former champion
    assert reg.version_tags["2"]["decision.outcome"] == "promoted" and reg.aliases["champion"] == "3"
