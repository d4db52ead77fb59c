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
        self.descriptions: dict[str, str | None] = {}
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

    def update_model_version(self, name, version, description=None):
        self.descriptions[str(version)] = description

    def get_model_version(self, name, version):
        return self.ns(version=str(version), run_id=None, tags=dict(self.version_tags[str(version)]))


def _promote(reg, version, expected, run, reason=None, generation=None):
    """A promotion decided now (its generation read as evaluate reads it), unless one is given."""
    from include.stages.registry import champion_state, promote

    gen = champion_state(reg, "m")[0] if generation is None else generation
    return promote(reg, "m", version, expected, {"airflow_run_id": run, "reason": reason}, gen)


def test_a_promotion_moves_the_champion_from_what_evaluation_saw():
    from include.stages.registry import PromotionConflict

    reg = FakeRegistry()
    reg.aliases["champion"] = "1"
    assert _promote(reg, "2", "1", "r2", "better")["champion"] == "2"
    assert reg.aliases["champion"] == "2" and reg.version_tags["2"]["decision.outcome"] == "promoted"
    assert reg.version_tags["1"]["ct.replaced_by"] == "2"
    with pytest.raises(PromotionConflict, match="since then move 1 .promotion v1 -> v2"):
        _promote(reg, "3", "1", "r3", "judged against v1", generation=0)
    assert reg.aliases["champion"] == "2"  # untouched, and the loser says why it is not champion
    assert reg.version_tags["3"]["decision.outcome"] == "conflict"
    assert "judged against v1" in reg.version_tags["3"]["decision.reason"]


def test_the_decision_reads_in_full_as_the_versions_description():
    """The version list cuts tag values short; the description holds the whole reason."""
    reg = FakeRegistry()
    reg.aliases["champion"] = "1"
    reason = "roc_auc 0.7100 vs champion 0.7000 (+0.0100 >= 0.002); " + "slice carrier=UA holds; " * 40
    _promote(reg, "2", "1", "r2", reason)
    text = reg.descriptions["2"]
    assert text.startswith("**promoted**") and reason in text and len(reason) > 500
    assert "Previous champion: 1" in text and "Decided by: r2" in text


def test_two_promotions_from_one_generation_have_one_winner_however_long_the_first_stalls():
    """A claimed move 1 and stalled (or died) before its alias write; B decided at the same
    generation. No clock decides: B is refused, an hour later too."""
    from include.stages.registry import PromotionConflict, _claim

    reg = FakeRegistry()
    reg.aliases["champion"] = "1"
    a = {"from": "1", "to": "2", "claimant": "A", "kind": "promotion"}
    assert _claim(reg, "m", 1, a) and _claim(reg, "m", 1, a)  # the claimant itself may claim again (a retry)
    assert not _claim(reg, "m", 1, {"from": "1", "to": "3", "claimant": "B", "kind": "promotion"})
    reg.clock += 3600
    with pytest.raises(PromotionConflict, match="since then move 1"):
        _promote(reg, "3", "1", "B", generation=0)
    assert reg.aliases["champion"] == "1"
    # a decision taken after the dead claim starts from it: the dead claim blocks nothing
    assert _promote(reg, "3", "1", "C")["champion"] == "3"


def test_a_hand_move_in_the_ui_refuses_the_decision_before_it_and_blocks_nothing_after():
    from include.stages.registry import PromotionConflict

    reg = FakeRegistry()
    reg.aliases["champion"] = "1"
    _promote(reg, "2", "1", "r2")
    gen_before_hand_move = 1
    reg.aliases["champion"] = "3"  # someone in the MLflow UI
    with pytest.raises(PromotionConflict, match="moved outside the loop"):
        _promote(reg, "1", "2", "r1", generation=gen_before_hand_move)
    assert _promote(reg, "1", "3", "r1b")["champion"] == "1"  # decided after the hand move: applies at once
    assert reg.aliases["champion"] == "1"


def test_a_retry_after_its_claim_finishes_the_move():
    from include.stages.registry import _ticket_name

    reg = FakeRegistry()
    reg.aliases["champion"] = "1"
    reg.create_experiment(_ticket_name("m", 1), {"from": "1", "to": "2", "claimant": "promote:r2:v2"})
    out = _promote(reg, "2", "1", "r2", generation=0)  # try 1 died between claim and alias
    assert out["champion"] == "2" and reg.aliases["champion"] == "2"


def test_a_retried_promotion_never_undoes_a_rollback():
    from include.stages.registry import PromotionConflict, rollback

    reg = FakeRegistry()
    reg.aliases["champion"] = "1"
    _promote(reg, "2", "1", "r2", generation=0)
    rollback(reg, "m", "bad release", actor="ops")
    assert reg.aliases["champion"] == "1"
    with pytest.raises(PromotionConflict, match="since then move 2 .rollback v2 -> v1 by rollback:ops"):
        _promote(reg, "2", "1", "r2", generation=0)  # v2's promote cleared or retried
    assert reg.aliases["champion"] == "1"
    assert "rollback" in reg.version_tags["2"]["decision.promotion_refused"]


def test_a_retried_promotion_never_moves_the_alias_back_over_a_hand_move():
    from include.stages.registry import PromotionConflict

    reg = FakeRegistry()
    reg.aliases["champion"] = "1"
    _promote(reg, "2", "1", "r2", generation=0)
    reg.aliases["champion"] = "1"  # moved back by hand in the MLflow UI
    with pytest.raises(
        PromotionConflict, match="moved outside the loop .* after this promotion to v2 was applied"
    ):
        _promote(reg, "2", "1", "r2", generation=0)
    assert reg.aliases["champion"] == "1"
    assert _promote(reg, "3", "1", "r3")["champion"] == "3"  # and the hand move blocks nothing later


def test_a_stalled_move_overtaken_by_a_later_claim_yields_to_it():
    """A claims move 1 and is slow; B claims move 2 and writes first; A's late write is undone."""
    from include.stages.registry import PromotionConflict, _settle, _ticket_name

    reg = FakeRegistry()
    reg.create_experiment(_ticket_name("m", 1), {"from": "1", "to": "2", "claimant": "A"})
    reg.create_experiment(_ticket_name("m", 2), {"from": "1", "to": "3", "claimant": "B"})
    reg.aliases["champion"] = "3"  # B's write
    reg.aliases["champion"] = "2"  # A's late write
    with pytest.raises(PromotionConflict, match="superseded by move 2"):
        _settle(reg, "m", 1)  # A re-reads after writing
    assert reg.aliases["champion"] == "3" and reg.model_tags["ct_loop.champion_moves"] == "2"


def test_rollback_is_a_move_like_any_other():
    from include.stages.registry import rollback

    reg = FakeRegistry()
    reg.aliases["champion"] = "1"
    _promote(reg, "2", "1", "r2")
    out = rollback(reg, "m", "bad release http://u:secret@host", actor="ops")
    assert out["champion"] == "1" and reg.aliases["champion"] == "1"
    assert "secret" not in reg.version_tags["1"]["rollback.restored"]  # credentials redacted


def test_a_rollback_meant_for_one_version_never_demotes_the_next():
    """The person looked at v2; a promotion to v3 landed before they pressed the button."""
    from include.stages.registry import PromotionConflict, champion_state, rollback

    reg = FakeRegistry()
    reg.aliases["champion"] = "1"
    _promote(reg, "2", "1", "r2")
    seen = champion_state(reg, "m")[0]
    _promote(reg, "3", "2", "r3", generation=seen)
    with pytest.raises(PromotionConflict, match="meant for v2, but the champion is v3 now .move 2"):
        rollback(reg, "m", "v2 is bad", actor="ops", demote="2")
    assert reg.aliases["champion"] == "3" and "rollback.demoted" not in reg.version_tags["3"]
    with pytest.raises(PromotionConflict, match="decided when the champion was v3 .generation 1"):
        rollback(reg, "m", "v2 is bad", actor="ops", generation=seen)  # the state they saw is stale
    assert rollback(reg, "m", "v3 is bad", actor="ops", demote="3")["champion"] == "2"


def test_a_conflict_never_rewrites_the_decision_of_a_version_that_has_one():
    from include.stages.registry import PromotionConflict

    reg = FakeRegistry()
    reg.aliases["champion"] = "1"
    _promote(reg, "2", "1", "r2")
    _promote(reg, "3", "2", "r3")
    with pytest.raises(PromotionConflict):
        _promote(reg, "2", "999", "r9")  # a stale decision about a former champion
    assert reg.version_tags["2"]["decision.outcome"] == "promoted" and reg.aliases["champion"] == "3"


@pytest.mark.parametrize(
    ("metric", "challenger", "champion"),
    [("roc_auc", 0.71, 0.70), ("root_mean_squared_error", 10.0, 44.8964), ("log_loss", 0.40, 0.45)],
)
def test_decision_tags_and_reasons_use_one_sign_for_every_metric_direction(metric, challenger, champion):
    """The tag says the gain in the metric's better direction, as the rule's reason does."""
    from include.decisions.promotion import decide
    from include.foundation.config import PromotionSpec
    from include.stages.registry import decision_tags

    rule = PromotionSpec(primary_metric=metric, min_improvement=0.001, absolute_floor=None)
    decision = decide(rule, {metric: challenger}, {metric: champion})
    assert decision.promote and decision.difference > 0
    tag = decision_tags({**decision.as_dict(), "outcome": "promoted", "champion_version": "1"})[
        "decision.metric"
    ]
    assert f"gain +{decision.difference:.4f}" in tag, tag
    assert (
        f"+{decision.difference:.4f}" in decision.reason or f"+{decision.difference:.3f}" in decision.reason
    ), decision.reason
