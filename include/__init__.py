"""Continuous-training loop: plain Python that the Airflow DAGs in ``dags/`` call.

Four layers, each importing only the ones below it (docs/architecture.md; enforced by the
import-linter contracts in ``pyproject.toml``, run by ``make lint``):

* ``orchestration/`` — the only code that speaks Airflow (DAG defaults, the task door
  ``stage_call``, Assets, Params, notifiers); ``replay.py`` — the replay engine of ``make loop-value``;
* ``stages/`` — one job each (sources and ingestion, GX validation, datasets, training,
  evaluation, the drift check, the registry); stages never import one another;
* ``decisions/`` — every decision the loop takes, one pure function each;
* ``foundation/`` — config, settings, storage, links, payloads, tracking, metrics, time, errors.
"""
