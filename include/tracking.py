"""MLflow set-up shared by the stages: tracking URI, experiment and artifact location."""

from __future__ import annotations

import contextlib
import logging
import warnings

from include.config import PipelineConfig, Settings

log = logging.getLogger(__name__)


def configure(cfg: PipelineConfig, settings: Settings) -> str:
    """Point MLflow at the deployment's store and the pipeline's experiment; returns its id.

    The default store is SQLite under CT_HOME with artifacts beside it (MLflow 3 refuses a
    plain file store); with a tracking server, the server decides where artifacts go.
    """
    import mlflow

    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    if settings.mlflow_tracking_uri.startswith("sqlite:///"):
        from pathlib import Path

        Path(settings.mlflow_tracking_uri.removeprefix("sqlite:///")).parent.mkdir(
            parents=True, exist_ok=True
        )
    exp = mlflow.get_experiment_by_name(cfg.experiment)
    if exp is None:
        location = settings.mlflow_artifact_root.as_uri() if settings.mlflow_artifact_root else None
        try:
            exp_id = mlflow.create_experiment(cfg.experiment, artifact_location=location)
        except mlflow.exceptions.MlflowException:  # created concurrently by another task
            exp_id = mlflow.get_experiment_by_name(cfg.experiment).experiment_id
    else:
        exp_id = exp.experiment_id
    mlflow.set_experiment(experiment_id=exp_id)
    return exp_id


@contextlib.contextmanager
def quiet_library_warnings():
    """Silence known-harmless warnings that would bury the task log.

    * MLflow's "integer columns cannot hold missing values" hint (numeric features are float64;
      only the 0/1 label is an integer) and its ambiguous-local-source notice;
    * hundreds of Airflow deprecation warnings raised while skops scans loaded modules.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*Inferred schema contains integer column")
        warnings.filterwarnings("ignore", message=".*dataset source can be interpreted in multiple ways")
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=FutureWarning)
        yield
