"""Deployment settings: where data lives, which MLflow store, how tasks retry.

Read from the environment once, by the composition roots (DAG files, scripts, the registry
CLI), and passed explicitly to every function that needs them. The defaults live here and
nowhere else: everything under ``.local/`` in the project, so a laptop needs no set-up and a
Celery cluster overrides each value with an environment variable.

Cheap to import: DAG files import it at parse time.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from include.foundation.redaction import without_credentials

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_PIPELINES_DIR = PROJECT_ROOT / "include" / "pipelines"
DEFAULT_HOME = PROJECT_ROOT / ".local"


@dataclass(frozen=True)
class Settings:
    """Deployment settings (defaults: everything under ``.local/``)."""

    home: Path
    data_root: Path
    pipelines_dir: Path
    mlflow_tracking_uri: str = field(repr=False)  # may hold credentials: never in a repr
    mlflow_artifact_root: Path | None
    task_retries: int = 2
    retry_delay_seconds: int = 60
    mlflow_ui_url: str = "http://localhost:5000"  # where a browser reaches the MLflow UI (extra links)
    airflow_ui_url: str = (
        "http://localhost:8080"  # where a browser reaches the Airflow UI (links in tags, mails)
    )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """``CT_HOME``, ``CT_DATA_ROOT``, ``CT_PIPELINES_DIR``, ``MLFLOW_TRACKING_URI``,
        ``CT_MLFLOW_ARTIFACT_ROOT``, ``CT_TASK_RETRIES``, ``CT_RETRY_DELAY_SECONDS``,
        ``CT_MLFLOW_UI_URL`` (default: the tracking URI when it is a server, else localhost:5000),
        ``CT_AIRFLOW_UI_URL`` (default: ``AIRFLOW__API__BASE_URL``, else localhost:8080)."""
        env = dict(os.environ if env is None else env)
        home = Path(env.get("CT_HOME", str(DEFAULT_HOME))).resolve()
        data_root = Path(env.get("CT_DATA_ROOT", str(home / "data"))).resolve()
        pipelines_dir = Path(env.get("CT_PIPELINES_DIR", str(DEFAULT_PIPELINES_DIR))).resolve()
        uri = env.get("MLFLOW_TRACKING_URI") or f"sqlite:///{home / 'mlflow' / 'mlflow.db'}"
        # Artifact location only matters for a local store; a tracking server proxies artifacts.
        art = env.get("CT_MLFLOW_ARTIFACT_ROOT")
        if art:
            artifact_root: Path | None = Path(art).resolve()
        elif uri.startswith("sqlite:"):
            artifact_root = home / "mlflow" / "artifacts"
        else:
            artifact_root = None
        return cls(
            home,
            data_root,
            pipelines_dir,
            uri,
            artifact_root,
            task_retries=int(env.get("CT_TASK_RETRIES", "2")),
            retry_delay_seconds=int(env.get("CT_RETRY_DELAY_SECONDS", "60")),
            mlflow_ui_url=env.get("CT_MLFLOW_UI_URL")
            or (without_credentials(uri) if uri.startswith(("http://", "https://")) else cls.mlflow_ui_url),
            airflow_ui_url=env.get("CT_AIRFLOW_UI_URL")
            or env.get("AIRFLOW__API__BASE_URL")
            or cls.airflow_ui_url,
        )


def landing_root(env: Mapping[str, str] | None = None) -> Path | None:
    """``CT_LANDING_ROOT``: the one folder outside ``CT_DATA_ROOT/<pipeline>`` that a landing
    source's absolute ``path`` may name (e.g. a mounted share); None: none may."""
    env = os.environ if env is None else env
    root = env.get("CT_LANDING_ROOT")
    return Path(root).resolve() if root else None


def cache_dir(env: Mapping[str, str] | None = None) -> Path:
    """Where derived, re-creatable facts are kept (``CT_HOME/cache``), e.g. model-config verdicts."""
    env = os.environ if env is None else env
    return Path(env.get("CT_HOME", str(DEFAULT_HOME))).resolve() / "cache"
