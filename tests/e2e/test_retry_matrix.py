"""Every task, retried or cleared, gives the same outcome (issue: failure semantics).

The loop runs once on real flights weeks (its own pipeline, ``flights_retry``), calling the
function each task calls. Right after each step it is run again as Airflow would: a retry of
the same try (a redelivered Celery message), a new try, and a clear after the run finished
(the later steps already done). Each time the outputs must be identical, and so must the data
folder, the registered versions, the aliases and the drift triggers.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from include.foundation.config import load_pipeline
from include.foundation.settings import Settings
from tests.factories import demo_yaml

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
NAME = "flights_retry"
JAN1 = datetime(2013, 1, 1, tzinfo=UTC)
# Keys that name the try's own bookkeeping, not its outcome (GX writes one Data Docs page per
# validation run, named by its run time, so each try links its own page).
VOLATILE = {"promoted_at", "rejected_at", "data_docs_page"}


def state(cfg, settings) -> dict:
    """What a repeated task must not change: data files, versions, aliases, retrain marks."""
    from include.foundation import tracking
    from include.foundation.tracking import Tag

    base = settings.data_root / cfg.name
    files = {
        str(p.relative_to(base)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(base.rglob("*"))
        if p.is_file() and p.parts[len(base.parts)] not in ("gx",) and p.suffix != ".html"
    }  # GX keeps one validation result per run and Data Docs pages; reports embed render ids
    client = tracking.client(settings, cfg.experiment)
    versions = sorted(
        (v.version, v.run_id) for v in client.search_model_versions(f"name = '{cfg.registered_model}'")
    )
    aliases = client.get_registered_model(cfg.registered_model).aliases if versions else {}
    exp = client.get_experiment_by_name(cfg.experiment)
    marks = client.search_runs([exp.experiment_id], f"tags.`{Tag.DRIFT_RETRAIN}` = 'true'") if exp else []
    return {"files": files, "versions": versions, "aliases": dict(aliases), "retrain_marks": len(marks)}


def stable(out):
    if isinstance(out, dict):
        return {k: stable(v) for k, v in out.items() if k not in VOLATILE}
    return out


@pytest.fixture(scope="module")
def matrix(tmp_path_factory, airflow_db):
    """{task: [outputs of run, retry same try, new try, clear], [states after each]}."""
    from include.foundation.storage import PipelinePaths
    from include.foundation.tracking import client
    from include.stages.datasets import parse_as_of
    from include.stages.drift import check_drift
    from include.stages.evaluation import evaluate_challenger
    from include.stages.ingest import ingest_batch, publish_batch
    from include.stages.registry import decision_record, promote, reject
    from include.stages.training import assemble_training_data, train_and_register
    from include.stages.validation import validate_batch

    raw = demo_yaml()
    raw["name"] = NAME
    raw["training"].update(train_days=14, holdout_days=7, min_train_rows=1000)
    raw["drift"].update(window_days=7)
    folder = tmp_path_factory.mktemp("retry_pipelines")
    (folder / f"{NAME}.yaml").write_text(yaml.safe_dump(raw))
    cfg, settings = load_pipeline(folder / f"{NAME}.yaml"), Settings.from_env()
    root, paths = settings.data_root, PipelinePaths(settings.data_root, NAME)
    results: dict[str, tuple[list, list]] = {}

    def repeat(task: str, call, later=None):
        """Run, retry (same try, new try), then clear after ``later`` (the steps after it) ran."""
        outs, states = [], []
        for attempt in (1, 1, 2):
            outs.append(call(attempt))
            states.append(state(cfg, settings))
        if later is not None:
            later(outs[0])
            before = state(cfg, settings)
            outs.append(call(3))
            states.append(before)
            states.append(state(cfg, settings))
        results.setdefault(task, ([], []))
        results[task][0].extend(outs)
        results[task][1].extend(states)
        return outs[0]

    for week in range(4):
        s, e = JAN1 + timedelta(weeks=week), JAN1 + timedelta(weeks=week + 1)
        batch = repeat("ingest", lambda _t, s=s, e=e: ingest_batch(cfg, root, s, e))
        repeat("validate", lambda _t, b=batch: validate_batch(cfg, root, b["partition"]))
        repeat("publish", lambda _t, b=batch: publish_batch(cfg, root, b["partition"]))

    def training(run_id: str, as_of: str):
        out_dir = paths.training_dir(run_id)
        assembled = repeat(
            "assemble", lambda _t: assemble_training_data(cfg, settings, parse_as_of(as_of), out_dir)
        )

        def tags(attempt: int) -> dict[str, str]:
            return {
                "airflow.dag_id": f"{NAME}__train",
                "airflow.run_id": run_id,
                "airflow.try_number": str(attempt),
            }

        challenger = repeat("train", lambda t: train_and_register(cfg, settings, assembled, tags(t)))

        def finish(ev):  # what runs after evaluate: promote or reject
            record = decision_record(ev, "retry test", run_id)
            mlc = client(settings, cfg.experiment)
            if ev["promote"]:
                return promote(mlc, cfg.registered_model, ev["challenger_version"], ev["champion_version"], record,
                               ev["champion_generation"])  # fmt: skip
            return reject(mlc, cfg.registered_model, ev["challenger_version"], record)

        evaluation = repeat(
            "evaluate", lambda _t: evaluate_challenger(cfg, settings, challenger, assembled), later=finish
        )
        repeat("promote" if evaluation["promote"] else "reject", lambda _t: finish(evaluation))
        return evaluation

    first = training("manual__retry_first", "2013-01-22")
    second = training("manual__retry_second", "2013-01-29")
    repeat(
        "check_drift", lambda _t: check_drift(cfg, settings, parse_as_of("2013-01-29"), "manual__retry_drift")
    )
    return results, first, second


TASKS = ["ingest", "validate", "publish", "assemble", "train", "evaluate", "promote", "check_drift"]


@pytest.mark.parametrize("task", TASKS)
def test_a_repeated_task_gives_the_same_outcome(matrix, task):
    results, first, _ = matrix
    outs, states = results[task]
    assert outs, f"{task} never ran"
    # evaluate, per training: run, same try, new try, clear after promote/reject (5 states);
    # every other task: run, same try, new try (3 states)
    n_out, n_state = (4, 5) if task == "evaluate" else (3, 3)
    chunks = [outs[i : i + n_out] for i in range(0, len(outs), n_out)]
    state_chunks = [states[i : i + n_state] for i in range(0, len(states), n_state)]
    for outputs, after in zip(chunks, state_chunks, strict=True):
        assert all(stable(o) == stable(outputs[0]) for o in outputs), f"{task}: outputs differ on repeat"
        if task == "evaluate":
            assert after[0] == after[1] == after[2], f"{task}: a retry changed the state"
            assert after[3] == after[4], f"{task}: clearing it after the decision changed the state"
        else:
            assert all(s == after[0] for s in after), f"{task}: a repeat changed the state"
    assert first["promote"] is True  # the first model is promoted: promote was exercised


def test_the_second_training_decided_against_the_first_champion(matrix):
    results, first, second = matrix
    assert second["champion_version"] == first["challenger_version"]
    # the clear of evaluate after promotion compared against the same champion, not itself
    assert all(o["champion_version"] == second["champion_version"] for o in results["evaluate"][0][4:])
