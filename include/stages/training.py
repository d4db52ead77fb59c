"""Training stage: fit the configured scikit-learn pipeline and log it to MLflow.

One MLflow run per training, in the pipeline's experiment, tagged with the Airflow run and the
data it saw (lineage tags the drift check verifies later). The model is registered as a new
version with alias ``challenger``. A retried task finds the version its earlier try registered
(by run tags) instead of registering a second one.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from include.foundation import metrics, tracking
from include.foundation.config import PipelineConfig
from include.foundation.errors import PermanentError
from include.foundation.payloads import AssembledData, TrainedModel
from include.foundation.settings import Settings
from include.foundation.storage import week_ending
from include.foundation.tracking import Role, Tag
from include.stages.datasets import assemble, read_training_set, split_xy, training_end, write_set
from include.stages.registry import (
    CHALLENGER,
    TRUSTED_TYPE_PREFIXES,
    VERSION_TAGS,
    find_registered_version,
    get_champion,
    judged_version,
    model_uri,
    recorded_evaluation,
    refit_of,
    with_lineage,
)

if TYPE_CHECKING:
    import pandas as pd
    from sklearn.pipeline import Pipeline

log = logging.getLogger(__name__)

SAMPLE_ROWS = 5_000  # for signatures and dataset profiles: both scan every cell


class EstimatorError(PermanentError, ValueError):
    """``model.estimator`` or ``model.params`` cannot make the scikit-learn estimator the target
    kind needs (a classifier, or a regressor for a regression target)."""


# What a training run reports on its own training rows: the primary metric and one more.
TRAIN_METRICS = {"binary": "log_loss", "multiclass": "log_loss", "regression": "r2_score"}
# scikit-learn scorer for permutation importance, and how its drop reads.
IMPORTANCE_SCORING = {
    "binary": ("roc_auc", "drop in ROC AUC"),
    "multiclass": ("f1_weighted", "drop in weighted F1"),
    "regression": ("neg_root_mean_squared_error", "rise in RMSE"),
}


def load_estimator(cfg: PipelineConfig):
    """Instantiate ``model.estimator`` with ``model.params`` (``training.seed`` as its random_state
    unless the params set one). The class is checked to be a scikit-learn classifier (a regressor
    for a regression target) *before* anything is instantiated: the config names a class, never
    an arbitrary callable."""
    import inspect

    from sklearn.base import ClassifierMixin, RegressorMixin

    module, _, name = cfg.model.estimator.rpartition(".")
    if not module.startswith("sklearn."):
        raise EstimatorError(f"model.estimator: {cfg.model.estimator!r} is not a scikit-learn class")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError) as exc:
        raise EstimatorError(f"model.estimator: cannot import {cfg.model.estimator!r} ({exc})") from exc
    regression = cfg.target_kind == "regression"
    if not (inspect.isclass(cls) and issubclass(cls, RegressorMixin if regression else ClassifierMixin)):
        what = "regressor" if regression else "classifier"
        raise EstimatorError(f"model.estimator {cfg.model.estimator} is not a scikit-learn {what} "
                             f"(target.kind {cfg.target_kind})")  # fmt: skip
    params = dict(cfg.model.params)
    if "random_state" in inspect.signature(cls).parameters:
        params.setdefault("random_state", cfg.training.seed)
    try:
        return cls(**params)
    except TypeError as exc:
        raise EstimatorError(f"model.params do not fit {cfg.model.estimator}: {exc}") from exc


def build_pipeline(cfg: PipelineConfig) -> Pipeline:
    """Imputation + one-hot encoding for categoricals, then the configured estimator."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    transformers = []
    if cfg.model.numeric_features:
        transformers.append(("num", SimpleImputer(strategy="median"), cfg.model.numeric_features))
    if cfg.model.categorical_features:
        cat = make_pipeline(
            SimpleImputer(strategy="most_frequent"),
            OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=20, sparse_output=False),
        )
        transformers.append(("cat", cat, cfg.model.categorical_features))
    pre = ColumnTransformer(transformers, verbose_feature_names_out=False)
    return Pipeline([("preprocess", pre), ("model", load_estimator(cfg))])


def _skops_trusted_types(model) -> list[str]:
    """Types skops must trust to load our pipeline: library types only, never a pickle."""
    import skops.io as sio

    types = sio.get_untrusted_types(data=sio.dumps(model))
    foreign = [t for t in types if not t.startswith(TRUSTED_TYPE_PREFIXES)]
    if foreign:
        raise EstimatorError(
            f"the fitted model holds types outside scikit-learn/NumPy/SciPy ({foreign}); it could only be "
            "stored as a pickle, which this project does not load"
        )
    return types


def assemble_training_data(
    cfg: PipelineConfig, settings: Settings, as_of, out_dir, train_days: int | None = None
) -> AssembledData:
    """Cut train/holdout windows, refusing a holdout that would overlap the champion's training data."""
    client = tracking.client(settings, cfg.experiment)
    champion = get_champion(client, cfg.registered_model)
    if champion is not None:  # a refit champion is compared through the version the gate judged
        champion = judged_version(client, cfg.registered_model, champion)
    not_before = None if champion is None else training_end(cfg, with_lineage(client, champion))
    return assemble(
        cfg, settings.data_root, as_of, out_dir, train_days=train_days, holdout_not_before=not_before
    )


def train_and_register(
    cfg: PipelineConfig, settings: Settings, assembled: AssembledData, run_tags: dict[str, str]
) -> TrainedModel:
    """Fit on ``assembled['train']``, log everything, register a version with alias challenger."""
    import mlflow
    import pandas as pd

    client = tracking.client(settings, cfg.experiment)
    airflow_run_id = run_tags.get(Tag.AIRFLOW_RUN_ID)
    existing = find_registered_version(client, cfg.registered_model, airflow_run_id)
    if existing is not None:
        log.info(
            "run %s already registered %s v%s: reusing it",
            airflow_run_id,
            cfg.registered_model,
            existing.version,
        )
        return _result(cfg, existing, client)

    train = pd.read_parquet(assembled["train"]["uri"])
    holdout = pd.read_parquet(assembled["holdout"]["uri"])
    X, y = split_xy(cfg, train)
    tags = {
        Tag.PIPELINE: cfg.name,
        Tag.CONFIG_SHA: cfg.digest(),
        Tag.TRAIN_SHA: assembled["train"]["sha256"],
        Tag.HOLDOUT_SHA: assembled["holdout"]["sha256"],
        Tag.TRAIN_URI: assembled["train"]["uri"],
        Tag.TRAIN_START: assembled["train_window"][0],
        Tag.TRAIN_END: assembled["train_window"][1],
        Tag.HOLDOUT_URI: assembled["holdout"]["uri"],
        Tag.DATA_AS_OF: assembled["as_of"],
        Tag.ROLE: Role.TRAINED,
        **run_tags,
    }
    week = week_ending(assembled["as_of"], cfg.drift.interval_days)  # the newest week of its data
    with mlflow.start_run(run_name=f"train for {week}", tags=tags) as run:
        _log_params_and_datasets(cfg, assembled, train, holdout)
        model = build_pipeline(cfg)
        model.fit(X, y)
        primary, scorer = cfg.promotion.primary_metric, cfg.scorer
        named = dict.fromkeys([primary, TRAIN_METRICS[cfg.target_kind]])
        train_metrics = {m: scorer.score(model, X, y, m) for m in named}
        mlflow.log_metrics({f"train_{k}": v for k, v in train_metrics.items()})
        _log_feature_importance(cfg, model, holdout)
        info = _log_model(model, X, cfg.target.name, logged_model_name(cfg))
        version_tags = {k: v for k, v in tags.items() if k in VERSION_TAGS}
        with contextlib.redirect_stderr(io.StringIO()) as notices:  # MLflow prints these to stderr
            mv = mlflow.register_model(info.model_uri, cfg.registered_model, tags=version_tags)
        for line in notices.getvalue().splitlines():
            log.info("MLflow: %s", line)
        client.set_registered_model_alias(cfg.registered_model, CHALLENGER, mv.version)
        describe_registered_model(client, cfg)
        mlflow.set_tags({Tag.MODEL_VERSION: mv.version, "mlflow.runName": f"train v{mv.version} for {week}"})
        log.info(
            "trained %s on %d rows (train %s %.4f): run %s, registered v%s alias %s",
            cfg.model.estimator,
            len(train), primary, train_metrics[primary], run.info.run_id, mv.version, CHALLENGER,
        )  # fmt: skip
    return _result(cfg, client.get_model_version(cfg.registered_model, mv.version), client)


def refit_for_serving(cfg: PipelineConfig, settings: Settings, judged: str, run_tags: dict[str, str]) -> str:
    """The version that serves for the accepted version ``judged``: with
    ``training.refit_on_holdout``, the same estimator refit on its training set plus its labelled
    holdout (read and verified through its lineage), registered once (a retry finds it) with the
    lineage of both windows and the gate's evidence (its ``decision.json`` and holdout metrics);
    without, ``judged`` itself. The gate judged ``judged``; the refit is never judged again."""
    import mlflow
    import pandas as pd

    if not cfg.training.refit_on_holdout:
        return str(judged)
    client = tracking.client(settings, cfg.experiment)
    model_name = cfg.registered_model
    existing = refit_of(client, model_name, judged)
    if existing is not None:
        log.info("v%s was already refit on its holdout as v%s: reusing it", judged, existing.version)
        return str(existing.version)
    mv = with_lineage(client, client.get_model_version(model_name, str(judged)))
    evaluation = recorded_evaluation(client, model_name, str(judged)) or {}
    both = pd.concat([read_training_set(mv), read_training_set(mv, "holdout")], ignore_index=True)
    written = write_set(cfg, both, Path(mv.tags[Tag.TRAIN_URI]).parent, "train_and_holdout")
    holdout_end = (evaluation.get("holdout_window") or [None, mv.tags.get(Tag.DATA_AS_OF)])[1]
    tags = {**{k: v for k, v in mv.tags.items() if k.startswith(("data.", "pipeline", "config."))},
            Tag.TRAIN_URI: written["uri"], Tag.TRAIN_SHA: written["sha256"], Tag.TRAIN_END: holdout_end,
            Tag.ROLE: Role.REFIT, Tag.REFIT_OF: str(judged), **run_tags}  # fmt: skip
    judged_metrics = client.get_run(mv.run_id).data.metrics
    X, y = split_xy(cfg, both)
    week = (
        week_ending(mv.tags[Tag.DATA_AS_OF], cfg.drift.interval_days) if mv.tags.get(Tag.DATA_AS_OF) else "?"
    )
    with mlflow.start_run(run_name=f"refit v{judged} on train + holdout for {week}", tags=tags) as run:
        mlflow.log_params({"refit_of": judged, "train_rows": len(both), "train_window": " .. ".join(
            w[:10] for w in (mv.tags.get(Tag.TRAIN_START, "?"), holdout_end or "?"))})  # fmt: skip
        mlflow.log_metrics({k: v for k, v in judged_metrics.items()
                            if not k.startswith(("realized_", "estimated_"))})  # the gate's evidence  # fmt: skip
        mlflow.log_dict(evaluation, "decision.json")
        model = build_pipeline(cfg).fit(X, y)
        info = _log_model(model, X, cfg.target.name, logged_model_name(cfg))
        with contextlib.redirect_stderr(io.StringIO()):
            new = mlflow.register_model(info.model_uri, model_name,
                                        tags={k: v for k, v in tags.items() if k in VERSION_TAGS})  # fmt: skip
        mlflow.set_tag(Tag.MODEL_VERSION, new.version)
    client.set_model_version_tag(model_name, str(judged), Tag.REFIT_SERVED_AS, str(new.version))
    log.info("refit v%s on %d rows (train + holdout up to %s): run %s, registered v%s to serve",
             judged, len(both), holdout_end, run.info.run_id, new.version)  # fmt: skip
    return str(new.version)


def _log_params_and_datasets(
    cfg: PipelineConfig, assembled: dict, train: pd.DataFrame, holdout: pd.DataFrame
):
    """Params of the run, and both datasets as MLflow inputs (a seeded sample: profiles scan every cell)."""
    import mlflow

    mlflow.log_params(
        {
            "estimator": cfg.model.estimator,
            **{f"model.{k}": v for k, v in cfg.model.params.items()},
            "train_window": " .. ".join(w[:10] for w in assembled["train_window"]),
            "holdout_window": " .. ".join(w[:10] for w in assembled["holdout_window"]),
            "train_rows": len(train),
            "train_window_rows": assembled.get("train_window_rows", len(train)),
            "holdout_rows": len(holdout),
            "features": ",".join(cfg.model.features),
            "target_kind": cfg.target_kind,
            **({"classes": ",".join(map(str, cfg.classes))} if cfg.classes else {}),
        }
    )
    for name, df, context in (("train", train, "training"), ("holdout", holdout, "evaluation")):
        sha = assembled[name]["sha256"]
        sample = df.sample(min(len(df), SAMPLE_ROWS), random_state=0)
        ds = mlflow.data.from_pandas(
            sample, source=assembled[name]["uri"], name=f"{cfg.name}-{name}",
            targets=cfg.target.name, digest=sha[:16],
        )  # fmt: skip
        mlflow.log_input(ds, context=context, tags={"rows": str(len(df)), "sha256": sha})


def logged_model_name(cfg: PipelineConfig) -> str:
    """What the logged model is, in its name: ``flights_delay-classifier``, ``delivery-regressor``."""
    return f"{cfg.name}-{'regressor' if cfg.target_kind == 'regression' else 'classifier'}"


def model_description(cfg: PipelineConfig) -> str:
    """The registered model's description: what it predicts, the rule that promotes a version,
    and where its DAGs and config are (the registry page explains the model on its own)."""
    t, rule = cfg.target, cfg.promotion
    what = {
        "binary": f"`{t.name}` (1 = {t.column} > {t.positive_above})" if t.positive_above is not None
        else f"`{t.name}` (1 = {t.column} is {t.positive_class!r})" if t.positive_class is not None
        else f"`{t.column}` (0/1)",
        "multiclass": f"`{t.column}`, one of {', '.join(map(str, cfg.classes))}",
        "regression": f"the value of `{t.column}`",
    }[cfg.target_kind]  # fmt: skip
    direction = "higher" if metrics.greater_is_better(rule.primary_metric) else "lower"
    guards = ", ".join(f"{g} within {v}" for g, v in rule.guardrails.items()) or "none"
    floor = "none" if rule.absolute_floor is None else rule.absolute_floor
    dags = ", ".join(f"`{cfg.name}__{d}`" for d in ("ingest", "train", "drift_check", "score", "rollback"))
    return (
        f"Predicts {what} ({cfg.target_kind}) for pipeline `{cfg.name}`. {cfg.description}\n\n"
        f"Promotion: a new version becomes `champion` when its {rule.primary_metric} ({direction} is better) "
        f"beats the champion's on the same out-of-sample holdout by at least {rule.min_improvement}, "
        f"guardrails {guards}, no slice of {rule.slices.columns or 'none'} worse by more than "
        f"{rule.slices.tolerance}; the first version must clear the floor {floor}. Every version's "
        "`decision.*` tags say what was decided and why.\n\n"
        f"Airflow DAGs: {dags}. Config: pipeline file `{cfg.name}.yaml` (include/pipelines/)."
    )


def describe_registered_model(client, cfg: PipelineConfig) -> None:
    """Set the registered model's description (:func:`model_description`) when it differs."""
    text = model_description(cfg)
    if client.get_registered_model(cfg.registered_model).description != text:
        client.update_registered_model(cfg.registered_model, description=text)


def _log_model(model, X: pd.DataFrame, label: str, name: str = "model"):
    """Log with a signature and pinned requirements, as skops with library types trusted (no pickle).

    The signature's output is what ``predict`` returns, named ``label``: the 0/1 label, the
    class (a string for named classes) or the predicted value."""
    import mlflow.sklearn
    import numpy as np
    import pandas as pd
    import sklearn
    from mlflow.models import infer_signature

    sample_x = X.sample(min(len(X), SAMPLE_ROWS), random_state=0)
    signature = infer_signature(sample_x, pd.Series(model.predict(sample_x), name=label))
    fmt = {"skops_trusted_types": _skops_trusted_types(model)}
    return mlflow.sklearn.log_model(
        model,
        name=name,
        signature=signature,
        input_example=X.head(5),
        pip_requirements=[
            f"scikit-learn=={sklearn.__version__}",
            f"pandas=={pd.__version__}",
            f"numpy=={np.__version__}",
        ],
        **fmt,
    )


def _result(cfg: PipelineConfig, mv, client) -> TrainedModel:
    run = client.get_run(mv.run_id)
    return {
        "model_name": cfg.registered_model,
        "version": str(mv.version),
        "run_id": mv.run_id,
        "experiment_id": run.info.experiment_id,
        "model_uri": model_uri(cfg.registered_model, mv.version),
        "train_metrics": {k: v for k, v in run.data.metrics.items() if k.startswith("train_")},
    }


def _log_feature_importance(cfg: PipelineConfig, model, holdout: pd.DataFrame) -> None:
    """Permutation importance on a holdout sample, as a figure and a JSON table."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import mlflow
    from sklearn.inspection import permutation_importance

    sample = holdout.sample(min(len(holdout), 2000), random_state=0)
    X, y = split_xy(cfg, sample)
    if y.nunique() < 2:
        return
    scoring, reads = IMPORTANCE_SCORING[cfg.target_kind]
    imp = permutation_importance(model, X, y, scoring=scoring, n_repeats=3, random_state=0)
    order = imp.importances_mean.argsort()
    fig, ax = plt.subplots(figsize=(7, 0.3 * len(order) + 1.5))
    ax.barh([X.columns[i] for i in order], imp.importances_mean[order], xerr=imp.importances_std[order])
    ax.set_xlabel(f"{reads} when shuffled (holdout sample)")
    ax.set_title(f"{cfg.name}: permutation feature importance")
    fig.tight_layout()
    mlflow.log_figure(fig, "feature_importance.png")
    plt.close(fig)
    mlflow.log_text(
        json.dumps(dict(zip(X.columns, imp.importances_mean.round(5).tolist(), strict=True)), indent=2),
        "feature_importance.json",
    )
