"""MLflow plumbing shared by the stages: store set-up, the tag vocabulary, outage detection.

:class:`Tag` is the one place the project's MLflow tag keys are spelled. Runs and model
versions carry them so that the registry itself explains a model: which data it saw
(``data.*``, the lineage the drift check verifies), which Airflow task made it
(``airflow.*``), why it ran (``run.*``) and what was decided (``decision.*``).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from include.foundation.settings import Settings

log = logging.getLogger(__name__)


class TrackingServerUnavailable(Exception):
    """The MLflow tracking server did not answer. Transient: the task is retried with backoff."""


_OUTAGE_TYPES = {"ConnectionError", "MaxRetryError", "NewConnectionError", "ConnectTimeout", "ReadTimeout"}


def server_outage(exc: BaseException) -> tuple[str | None, str] | None:
    """(server URL, network error) when ``exc`` is MLflow failing to reach its tracking server.

    MLflow's REST client reports a refused or timed-out connection as a plain
    ``MlflowException("API request to ... failed ...")``; the cause sits in its context chain.
    Connection errors that did not come through MLflow are not the tracking server's.
    """
    chain, seen = [], set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        chain.append(cur)
        cur = cur.__cause__ or cur.__context__
    names = [{c.__name__ for c in type(e).__mro__} for e in chain]
    if not any("MlflowException" in n for n in names):
        return None
    for e, n in zip(chain, names, strict=True):
        if isinstance(e, ConnectionError) or _OUTAGE_TYPES & n:
            url = re.search(r"API request to (\S+?)/api/", str(exc))
            first_line = (str(e).splitlines() or [""])[0][:300]
            return (url.group(1) if url else None), f"{type(e).__name__}: {first_line}"
    return None


class Tag:
    """MLflow tag keys written and read by this project (runs and model versions)."""

    PIPELINE = "pipeline"
    CONFIG_SHA = "config.sha"
    ROLE = "ct.role"  # Role.TRAINED on training runs and versions, Role.MONITORING on drift checks
    MODEL_VERSION = "ct.model_version"  # on a training run: the version it registered
    REPLACED_BY = "ct.replaced_by"  # on a former champion: the version that replaced it
    PREDICTIONS = "predictions.log"  # on a version: the glob of the prediction-log parts it wrote
    PREDICTIONS_LAST = "predictions.last_interval"  # on a version: the newest interval it scored
    # lineage: the drift check re-reads the training set and verifies its hash
    TRAIN_URI = "data.train_uri"
    TRAIN_SHA = "data.train_sha256"
    TRAIN_START = "data.train_start"  # the training window [start, end), ISO timestamps
    TRAIN_END = "data.train_end"
    HOLDOUT_URI = "data.holdout_uri"
    HOLDOUT_SHA = "data.holdout_sha256"
    DATA_AS_OF = "data.as_of"  # on a training run: the end of the data it was trained for
    # training.refit_on_holdout: the version that serves, refit from the version the gate judged
    REFIT_OF = "refit.of"  # on a refit version and its run: the judged version it was refit from
    REFIT_SERVED_AS = "refit.served_as"  # on a judged version: the refit version that serves for it
    # the Airflow task that produced a run or version
    AIRFLOW_DAG_ID = "airflow.dag_id"
    AIRFLOW_RUN_ID = "airflow.run_id"
    AIRFLOW_TASK_ID = "airflow.task_id"
    AIRFLOW_TRY = "airflow.try_number"
    AIRFLOW_RUN_TYPE = "airflow.run_type"
    # why a training ran (the retrain request, see include.foundation.payloads)
    RUN_PREFIX = "run"
    # the promotion decision: "decision" (promote|reject) on the run, "decision.<field>" on both
    DECISION = "decision"
    DECISION_REASON = "decision.reason"
    DECISION_OUTCOME = "decision.outcome"
    DECISION_PREVIOUS_CHAMPION = "decision.previous_champion"
    ROLLBACK_DEMOTED = "rollback.demoted"
    ROLLBACK_RESTORED = "rollback.restored"
    # drift-check (monitoring) runs
    DRIFT_AS_OF = "drift.as_of"
    DRIFT_RETRAIN = "drift.retrain"
    DRIFT_CHAMPION = "drift.champion_version"
    DRIFT_REASONS = "drift.reasons"

    @staticmethod
    def decision(field: str) -> str:
        return f"{Tag.DECISION}.{field}"

    @staticmethod
    def run(field: str) -> str:
        return f"{Tag.RUN_PREFIX}.{field}"


class Role:
    """``ct.role`` of every run the loop makes (and of trained model versions)."""

    TRAINED = "trained"  # a training run (and its registered version)
    REFIT = "refit"  # an accepted challenger refit on its training window plus its holdout
    EVALUATION = "evaluation"  # the champion scored on a challenger's holdout (nested in its run)
    MONITORING = "monitoring"  # one drift check
    TIMELINE = "timeline"  # the pipeline's drift share and champion metric over time, one point per check
    LOOP_VALUE = "loop_value"  # a make loop-value replay


# The MLflow UI opens an experiment by its kind; without this tag MLflow 3 may infer a GenAI
# project (traces, tokens, cost) and hide the runs one click away.
EXPERIMENT_KIND_TAG, EXPERIMENT_KIND = "mlflow.experimentKind", "custom_model_development"


def configure(settings: Settings, experiment: str) -> str:
    """Point MLflow at the deployment's store and the named experiment; returns its id.

    The default store is SQLite under CT_HOME with artifacts beside it (MLflow 3 refuses a
    plain file store); with a tracking server, the server decides where artifacts go.
    """
    import mlflow

    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    if settings.mlflow_tracking_uri.startswith("sqlite:///"):
        Path(settings.mlflow_tracking_uri.removeprefix("sqlite:///")).parent.mkdir(
            parents=True, exist_ok=True
        )
    exp = mlflow.get_experiment_by_name(experiment)
    if exp is None:
        location = settings.mlflow_artifact_root.as_uri() if settings.mlflow_artifact_root else None
        try:
            exp_id = mlflow.create_experiment(
                experiment, artifact_location=location, tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND}
            )
        except mlflow.exceptions.MlflowException:  # created concurrently by another task
            exp_id = mlflow.get_experiment_by_name(experiment).experiment_id
    else:
        exp_id = exp.experiment_id
        if exp.tags.get(EXPERIMENT_KIND_TAG) != EXPERIMENT_KIND:  # made earlier, or kind inferred by the UI
            mlflow.MlflowClient().set_experiment_tag(exp_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
    mlflow.set_experiment(experiment_id=exp_id)
    return exp_id


def client(settings: Settings, experiment: str):
    """An MlflowClient on the deployment's store, with the experiment set up."""
    from mlflow import MlflowClient

    configure(settings, experiment)
    return MlflowClient()
