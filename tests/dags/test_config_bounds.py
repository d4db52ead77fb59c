"""A pipeline file that loads always builds its DAGs: every number is bounded at load, a hostile
YAML file is refused at once, and neither takes another pipeline's DAGs with it."""

from __future__ import annotations

import time

import pytest
import yaml

from include.foundation.config import MAX_DAYS, MAX_INTERVALS, MAX_ROWS, MAX_SEED, ConfigError, load_pipeline
from include.foundation.links import DAG_ROLES
from tests.airflow_helpers import dagbag
from tests.factories import demo_yaml

ALIAS_BOMB = "\n".join(
    ["name: bomb", 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    + [f"{c}: &{c} [{', '.join([f'*{p}'] * 9)}]" for p, c in zip("abcdefgh", "bcdefghi", strict=True)]
    + ["model: {params: {x: *i}}"]
)


def at_the_bounds(name: str, high: bool) -> dict:
    """The demo pipeline with every bounded number at its largest (or smallest) accepted value."""
    raw = demo_yaml(None)
    raw["name"] = name
    pick = (lambda lo, hi: hi) if high else (lambda lo, hi: lo)
    raw["training"] = {"train_days": pick(1, MAX_DAYS), "holdout_days": pick(1, MAX_DAYS),
                       "min_train_rows": pick(1, MAX_ROWS), "min_holdout_rows": pick(1, MAX_ROWS),
                       "min_holdout_class_rows": pick(1, MAX_ROWS), "seed": pick(0, MAX_SEED)}  # fmt: skip
    raw["labels"]["delay_days"] = pick(0, MAX_DAYS)
    raw["limits"] = {"memory_mb": pick(16, 1_048_576), "chunk_rows": pick(1, MAX_ROWS)}
    raw["promotion"].update(
        min_improvement=pick(1e-9, 1e9), approval="required", approval_timeout_hours=pick(1e-6, 24 * 366),
        bootstrap={"n_resamples": pick(10, 100_000), "seed": pick(0, MAX_SEED), "confidence": 0.5},
        slices={"columns": [], "tolerance": pick(0, 1e9), "min_rows": pick(1, MAX_ROWS)},
    )  # fmt: skip
    drift = raw["drift"]
    drift.update(window_days=pick(1, MAX_DAYS), max_rows=pick(100, MAX_ROWS), seed=pick(0, MAX_SEED),
                 cooldown_intervals=pick(0, MAX_INTERVALS), column_threshold=pick(1e-9, 1e9))  # fmt: skip
    if drift.get("performance_decay"):
        drift["performance_decay"].update(margin=pick(0, 1e9), intervals=1, of_last=pick(1, MAX_INTERVALS))
    return raw


@pytest.mark.parametrize("high", [True, False], ids=["largest", "smallest"])
def test_every_dag_builds_from_a_config_at_its_bounds(tmp_path, monkeypatch, high):
    raw = at_the_bounds("edge", high)
    (tmp_path / "edge.yaml").write_text(yaml.safe_dump(raw))
    edge = load_pipeline(tmp_path / "edge.yaml")  # it loads ...
    other = demo_yaml(None)
    (tmp_path / "flights_delay.yaml").write_text(yaml.safe_dump(other))
    monkeypatch.setenv("CT_PIPELINES_DIR", str(tmp_path))
    bag = dagbag()
    assert bag.import_errors == {}  # ... so it builds, and the other pipeline's DAGs are all there
    roles = [
        r for r in DAG_ROLES if r != "outcomes" or edge.outcomes_later
    ]  # delay 0: outcomes come with inputs
    assert {f"edge__{role}" for role in roles} <= set(bag.dags), sorted(bag.dags)
    assert {f"flights_delay__{role}" for role in DAG_ROLES} <= set(bag.dags), sorted(bag.dags)


@pytest.mark.parametrize(
    ("path", "value", "says"),
    [
        (
            ("promotion", "approval_timeout_hours"),
            1e12,
            "promotion.approval_timeout_hours: Input should be less",
        ),
        (
            ("promotion", "approval_timeout_hours"),
            float("inf"),
            "promotion.approval_timeout_hours: Input should be a finite",
        ),
        (
            ("promotion", "min_improvement"),
            float("nan"),
            "promotion.min_improvement: Input should be a finite",
        ),
        (("training", "seed"), -1, "training.seed: Input should be greater than or equal to 0"),
        (("training", "train_days"), 10**9, "training.train_days: Input should be less"),
        (("drift", "cooldown_intervals"), 10**7, "drift.cooldown_intervals: Input should be less"),
    ],
)
def test_a_number_out_of_bounds_is_refused_at_load_naming_the_key(tmp_path, monkeypatch, path, value, says):
    raw = demo_yaml(None)
    raw.setdefault(path[0], {})[path[1]] = value
    (tmp_path / "flights_delay.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=says.replace(".", r"\.")):
        load_pipeline(tmp_path / "flights_delay.yaml")
    good = demo_yaml(None)
    good["name"] = "other"
    (tmp_path / "other.yaml").write_text(yaml.safe_dump(good))
    monkeypatch.setenv("CT_PIPELINES_DIR", str(tmp_path))
    bag = dagbag()  # the refused file is an import error of its own; the other pipeline is whole
    assert {f"other__{role}" for role in DAG_ROLES} <= set(bag.dags)
    assert not any(d.startswith("flights_delay__") for d in bag.dags)


def test_an_alias_bomb_is_refused_at_once_and_never_delays_another_pipeline(tmp_path, monkeypatch):
    (tmp_path / "bomb.yaml").write_text(ALIAS_BOMB)
    (tmp_path / "flights_delay.yaml").write_text(yaml.safe_dump(demo_yaml(None)))
    t0 = time.perf_counter()
    with pytest.raises(
        ConfigError, match="bomb.yaml: refused: the YAML is over 20,000 values once its aliases"
    ):
        load_pipeline(tmp_path / "bomb.yaml")
    assert time.perf_counter() - t0 < 0.5
    monkeypatch.setenv("CT_PIPELINES_DIR", str(tmp_path))
    t0 = time.perf_counter()
    bag = dagbag()
    assert time.perf_counter() - t0 < 30  # the bomb took over 60 s alone before
    assert {f"flights_delay__{role}" for role in DAG_ROLES} <= set(bag.dags)
    assert any("bomb.yaml: refused" in str(e) for e in bag.import_errors.values()), bag.import_errors


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("a: &a [*a]\n", "over 20,000 values"),  # a recursive alias
        ("a: " + "[" * 200 + "]" * 200 + "\n", "nested deeper than 32 levels"),
        ("# padding\n" * 40_000, "bytes; a pipeline file may hold at most"),
    ],
    ids=["recursive", "deep", "huge"],
)
def test_a_hostile_yaml_file_is_refused_with_a_reason(tmp_path, text, says):
    (tmp_path / "p.yaml").write_text(text)
    with pytest.raises(ConfigError, match=says):
        load_pipeline(tmp_path / "p.yaml")
