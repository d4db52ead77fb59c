from __future__ import annotations

from pathlib import Path

from include.foundation.settings import DEFAULT_PIPELINES_DIR, Settings


def test_settings_defaults_and_env_overrides(tmp_path):
    s = Settings.from_env({"CT_HOME": str(tmp_path)})
    assert s.data_root == tmp_path / "data"
    assert s.mlflow_tracking_uri == f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}"
    assert s.mlflow_artifact_root == tmp_path / "mlflow" / "artifacts"
    s = Settings.from_env(
        {
            "CT_HOME": str(tmp_path),
            "CT_DATA_ROOT": "/shared/data",
            "MLFLOW_TRACKING_URI": "http://mlflow:5000",
        }
    )
    assert s.data_root == Path("/shared/data")
    assert s.mlflow_tracking_uri == "http://mlflow:5000"
    assert s.mlflow_artifact_root is None  # the tracking server proxies artifacts


def test_settings_pipelines_dir_default_and_override(tmp_path):
    assert Settings.from_env({"CT_HOME": str(tmp_path)}).pipelines_dir == DEFAULT_PIPELINES_DIR
    s = Settings.from_env({"CT_HOME": str(tmp_path), "CT_PIPELINES_DIR": str(tmp_path / "p")})
    assert s.pipelines_dir == tmp_path / "p"
