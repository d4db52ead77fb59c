"""Benchmark of the whole loop (``make bench``): prints figures side by side; not a test.

* P2  the demo loop through Airflow's scheduler (``scripts/demo.py``) vs the same stage
      functions called in one process, on the same weeks: the orchestration overhead ratio;
* P3  the drift check end to end (both windows read from Parquet, Evidently report, HTML,
      summary) at 1M rows x 20 columns, sampled and unsampled, next to Evidently's default
      ``DataDriftPreset`` on the same frames: wall time, peak RSS, and whether the drifted
      columns agree on an injected shift;
* P4  GX validation (the project's checkpoint) of 1M rows x 20 columns;
* P5  ingest -> validate -> drift at 100k, 1M and 3M rows: time per row should stay flat;
* P6  the scoring task (``score_batch``: champion lookup, model load, Parquet read, score,
      prediction-log write) on 1M rows of the demo's features, next to its floor: the same
      model's ``predict_proba`` on the same frame already in memory, plus the Parquet read and
      write of the same data; target within 1.5x the floor plus the Parquet I/O, under 2 GB;
* P7  past memory: one batch of 10M and 30M rows x 20 columns (generated on the fly as landing
      files of 1M rows) through ingest, validate, publish, score and drift, each stage in a
      process of its own: wall time and peak RSS per stage, a stage killed past 16 GB;
* the largest XCom value any task of the P2 demo pushed, read from its metadata DB.

Every case runs in its own subprocess (its own peak RSS, its own imports) on a scratch
``CT_HOME``; nothing touches the project's ``.local``. ``--quick`` runs smaller sizes.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

NUMERIC = [f"x{i}" for i in range(14)]
CATEGORICAL = [f"c{i}" for i in range(4)]
SHIFTED = ["x0", "x1", "c0"]  # the injected shift: two numeric means move, one category mix changes
START = datetime(2024, 1, 1, tzinfo=UTC)


# --------------------------------------------------------------------------- synthetic data


def synthetic_config(name: str, rows_max: int):
    """20 columns (timestamp, 14 numeric, 4 categorical, a numeric target) from a landing folder."""
    import yaml

    from include.foundation.config import PipelineConfig

    raw = yaml.safe_load((ROOT / "include" / "pipelines" / "flights_delay.yaml").read_text())
    columns = [{"name": "ts", "dtype": "datetime", "nullable": False}]
    columns += [{"name": c, "dtype": "float", "min": -20, "max": 20} for c in NUMERIC]
    columns += [{"name": c, "dtype": "str", "allowed": list("abcde")} for c in CATEGORICAL]
    columns += [{"name": "y", "dtype": "float", "nullable": False}]
    raw.update(
        name=name,
        source={"kind": "landing_folder", "path": "landing", "pattern": "*.parquet", "format": "parquet"},
        schema={"timestamp_column": "ts", "row_count": {"min": 1, "max": rows_max}, "columns": columns},
        target={"column": "y", "positive_above": 0.0, "name": "label", "min_class_share": 0.02},
        model={**raw["model"], "numeric_features": NUMERIC, "categorical_features": CATEGORICAL},
        schedule={**raw["schedule"], "start_date": "2024-01-01", "ingest": None, "drift_check": None},
        notifications={},
    )
    raw["labels"] = {"delay_days": 0}  # synthetic batches carry their outcomes
    raw["promotion"]["slices"] = {"columns": ["c1"], "tolerance": 0.02, "min_rows": 500}
    raw["drift"].update(window_days=7, column_threshold=0.1, share_threshold=0.1)
    return PipelineConfig.model_validate(raw)


def synthetic_frame(rows: int, seed: int, shift: bool):
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    df = pd.DataFrame(rng.normal(size=(rows, len(NUMERIC))), columns=NUMERIC)
    for i, c in enumerate(CATEGORICAL):
        df[c] = rng.choice(list("abcde"), size=rows, p=[0.4, 0.3, 0.15, 0.1, 0.05] if i else None)
    if shift:
        df[["x0", "x1"]] += 0.5
        df["c0"] = rng.choice(list("abcde"), size=rows, p=[0.5, 0.2, 0.1, 0.1, 0.1])
    df["y"] = df["x2"] + rng.normal(size=rows)
    offsets = np.sort(rng.integers(0, 7 * 86_400_000, size=rows))
    df.insert(0, "ts", pd.Timestamp(START.replace(tzinfo=None)) + pd.to_timedelta(offsets, unit="ms"))
    return df


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --------------------------------------------------------------------------- cases (subprocesses)


def case_drift(work: Path, mode: str, max_rows: int) -> dict:
    """P3: read both windows from Parquet, report, HTML, summary (ours), or Evidently's default."""
    import evidently.presets  # noqa: F401  (a task pays the import once; not drift-check time)
    import pandas as pd

    from include.foundation.config import DriftSpec
    from include.stages.evidence import drift_report, summarize_snapshot

    t0 = time.perf_counter()
    ref, cur = (pd.read_parquet(work / f"{side}.parquet") for side in ("reference", "current"))
    if mode == "default":
        from evidently import DataDefinition, Dataset, Report
        from evidently.presets import DataDriftPreset

        d = DataDefinition(numerical_columns=NUMERIC, categorical_columns=CATEGORICAL)
        snap = Report([DataDriftPreset()], include_tests=True).run(
            current_data=Dataset.from_pandas(cur[NUMERIC + CATEGORICAL], data_definition=d),
            reference_data=Dataset.from_pandas(ref[NUMERIC + CATEGORICAL], data_definition=d),
        )
        summary = summarize_snapshot(json.loads(snap.json()))
    else:
        spec = DriftSpec(max_rows=max_rows, column_threshold=0.1, share_threshold=0.1)
        snap, summary = drift_report(ref, cur, NUMERIC, CATEGORICAL, spec)
    snap.save_html(str(work / f"report-{mode}.html"))
    (work / f"summary-{mode}.json").write_text(json.dumps(summary))
    return {"wall": time.perf_counter() - t0, "peak_mb": peak_mb(), "drifted": summary["drifted_columns"]}


def case_gx(work: Path, rows: int) -> dict:
    """P4: the project's GX checkpoint on one frame (import excluded: a task pays it once)."""
    import pandas as pd

    from include.stages.validation import build_expectations, validate_frame

    cfg = synthetic_config("bench_gx", rows * 2)
    df = pd.read_parquet(work / "current.parquet")
    import great_expectations  # noqa: F401  (import time is not validation time)

    t0 = time.perf_counter()
    summary, _ = validate_frame(cfg, df, work / "gx")
    return {"wall": time.perf_counter() - t0, "peak_mb": peak_mb(), "expectations": len(build_expectations(cfg)),
            "success": summary["success"], "rows": len(df)}  # fmt: skip


def case_pipeline(work: Path, rows: int) -> dict:
    """P5: ingest (landing Parquet) -> GX validation -> publish -> drift vs a reference, per stage."""
    import evidently.presets  # noqa: F401  (imports are paid once per task process, not per row)
    import great_expectations  # noqa: F401
    import pandas as pd

    from include.foundation.config import DriftSpec
    from include.stages.evidence import drift_report
    from include.stages.ingest import ingest_batch, publish_batch
    from include.stages.validation import validate_batch

    cfg = synthetic_config("bench_p5", rows * 2)
    data_root = work / "data"
    t, times = time.perf_counter(), {}
    batch = ingest_batch(cfg, data_root, START, START + timedelta(days=7))
    times["ingest"] = time.perf_counter() - t
    t = time.perf_counter()
    summary = validate_batch(cfg, data_root, batch["partition"])
    times["validate"] = time.perf_counter() - t
    t = time.perf_counter()
    curated = publish_batch(cfg, data_root, batch["partition"])
    times["publish"] = time.perf_counter() - t
    t = time.perf_counter()
    ref, cur = pd.read_parquet(work / "reference.parquet"), pd.read_parquet(curated["uri"])
    snap, drift = drift_report(
        ref, cur, NUMERIC, CATEGORICAL, DriftSpec(max_rows=50_000, column_threshold=0.1)
    )
    snap.save_html(str(work / "report.html"))
    times["drift"] = time.perf_counter() - t
    return {**times, "total": sum(times.values()), "peak_mb": peak_mb(), "rows": batch["rows"],
            "valid": summary["success"], "drifted": drift["drifted_columns"]}  # fmt: skip


def case_inprocess(home: Path, pipeline: str, weeks: int) -> dict:
    """P2 (one process): the demo's sequence of stage functions, the same calls the DAG tasks make."""
    from include.decisions.windows import first_champion_as_of, outcomes_due
    from include.foundation import tracking
    from include.foundation.config import find_pipeline
    from include.foundation.logging_config import configure_library_logging
    from include.foundation.settings import Settings
    from include.foundation.storage import PipelinePaths
    from include.foundation.tracking import Tag
    from include.stages.drift import check_drift
    from include.stages.evaluation import evaluate_challenger
    from include.stages.ingest import ingest_batch, ingest_outcomes, publish_batch, publish_outcomes
    from include.stages.registry import decision_record, get_champion, promote, reject
    from include.stages.training import assemble_training_data, train_and_register
    from include.stages.validation import validate_batch

    configure_library_logging()
    t0 = time.perf_counter()
    settings = Settings.from_env()
    cfg = find_pipeline(settings.pipelines_dir, pipeline)  # by its name, whatever its file is called
    paths = PipelinePaths(settings.data_root, cfg.name)
    first_as_of = first_champion_as_of(cfg, datetime(2013, 1, 1, tzinfo=UTC), timedelta(weeks=1))
    counts = {"weeks": 0, "trainings": 0, "drift_checks": 0}

    def train(as_of: datetime, run_id: str, reason: str) -> None:
        assembled = assemble_training_data(cfg, settings, as_of, paths.training_dir(run_id))
        challenger = train_and_register(cfg, settings, assembled, {Tag.AIRFLOW_RUN_ID: run_id})
        evaluation = evaluate_challenger(cfg, settings, challenger, assembled)
        record = decision_record(evaluation, reason, run_id, "")
        client = tracking.client(settings, cfg.experiment)
        if evaluation["promote"]:
            promote(client, cfg.registered_model, evaluation["challenger_version"],
                    evaluation["champion_version"], record, evaluation["champion_generation"])  # fmt: skip
        else:
            reject(client, cfg.registered_model, evaluation["challenger_version"], record)
        counts["trainings"] += 1

    start = datetime(2013, 1, 1, tzinfo=UTC)
    for i in range(weeks):
        week, end = start + timedelta(weeks=i), start + timedelta(weeks=i + 1)
        batch = ingest_batch(cfg, settings.data_root, week, end)
        validate_batch(cfg, settings.data_root, batch["partition"])
        publish_batch(cfg, settings.data_root, batch["partition"])
        due = outcomes_due(cfg.labels, week, end)
        if cfg.outcomes_later and due[0] >= start:  # the outcomes DAG's run of the week
            collected = ingest_outcomes(cfg, settings.data_root, *due)
            validate_batch(cfg, settings.data_root, collected["partition"], part="outcomes")
            publish_outcomes(cfg, settings.data_root, collected["partition"])
        counts["weeks"] += 1
        client = tracking.client(settings, cfg.experiment)
        if get_champion(client, cfg.registered_model) is None:
            if end >= first_as_of:
                train(end, f"inprocess_bootstrap_{end:%Y-%m-%d}", "bootstrap")
            continue
        result = check_drift(cfg, settings, end, f"inprocess_drift_{end:%Y-%m-%d}")
        counts["drift_checks"] += 1
        if result["retrain"]:
            train(end, f"inprocess_retrain_{end:%Y-%m-%d}", "drift")
    return {"wall": time.perf_counter() - t0, "peak_mb": peak_mb(), **counts}


SCORE_INTERVAL = (datetime(2014, 1, 1, tzinfo=UTC), datetime(2014, 1, 8, tzinfo=UTC))


def case_score_setup(home: Path, rows: int) -> dict:
    """P6 set-up (not timed): the demo pipeline's first five weeks, a champion trained on them,
    and one published batch of ``rows`` rows drawn (with replacement) from those weeks."""
    import pandas as pd

    from include.foundation import tracking
    from include.foundation.config import load_pipeline
    from include.foundation.settings import Settings
    from include.foundation.storage import PipelinePaths, partition_key, write_parquet
    from include.stages.evaluation import evaluate_challenger
    from include.stages.ingest import ingest_batch, publish_batch
    from include.stages.registry import decision_record, promote
    from include.stages.training import assemble_training_data, train_and_register
    from include.stages.validation import validate_batch

    settings = Settings.from_env()
    cfg = load_pipeline(settings.pipelines_dir / "bench_score.yaml")
    paths, jan1 = PipelinePaths(settings.data_root, cfg.name), datetime(2013, 1, 1, tzinfo=UTC)
    for week in range(5):
        batch = ingest_batch(
            cfg, settings.data_root, jan1 + timedelta(weeks=week), jan1 + timedelta(weeks=week + 1)
        )
        validate_batch(cfg, settings.data_root, batch["partition"])
        publish_batch(cfg, settings.data_root, batch["partition"])
    as_of = jan1 + timedelta(weeks=5)
    assembled = assemble_training_data(cfg, settings, as_of, paths.training_dir("bench"))
    challenger = train_and_register(cfg, settings, assembled, {})
    evaluation = evaluate_challenger(cfg, settings, challenger, assembled)
    promote(tracking.client(settings, cfg.experiment), cfg.registered_model, evaluation["challenger_version"],
            None, decision_record(evaluation, "bench", "bench"), evaluation["champion_generation"])  # fmt: skip
    weeks = pd.concat(pd.read_parquet(paths.curated(k)) for k in paths.curated_partitions())
    big = weeks.sample(n=rows, replace=True, random_state=0).reset_index(drop=True)
    key = partition_key(*SCORE_INTERVAL)
    write_parquet(big, paths.curated(key))
    return {"partition": key, "version": evaluation["challenger_version"], "columns": big.shape[1]}


def case_score(home: Path, partition: str) -> dict:
    """P6: the scoring task's function, timed from its call to its return (imports excluded:
    a task pays them once)."""
    import mlflow.pyfunc  # noqa: F401
    import pandas as pd
    import sklearn.ensemble  # noqa: F401

    from include.foundation.config import load_pipeline
    from include.foundation.settings import Settings
    from include.stages.scoring import score_batch

    settings = Settings.from_env()
    cfg = load_pipeline(settings.pipelines_dir / "bench_score.yaml")
    t0 = time.perf_counter()
    scored = score_batch(cfg, settings, partition, "bench_score_run")
    wall = time.perf_counter() - t0
    assert scored is not None and not scored["already_scored"], scored
    logged = pd.read_parquet(scored["uri"])
    return {"wall": wall, "peak_mb": peak_mb(), "rows": scored["rows"], "logged": len(logged)}


def case_score_floor(home: Path, partition: str) -> dict:
    """P6 floor: ``predict_proba`` of the same model on the same frame, already in memory; and
    the Parquet read of the batch and write of a frame the size of the log, timed apart."""
    import pandas as pd

    from include.foundation import tracking
    from include.foundation.config import load_pipeline
    from include.foundation.settings import Settings
    from include.foundation.storage import PipelinePaths, write_parquet
    from include.stages.datasets import key_columns, model_inputs
    from include.stages.registry import get_champion, load_model, model_uri, signature_inputs

    settings = Settings.from_env()
    cfg = load_pipeline(settings.pipelines_dir / "bench_score.yaml")
    paths = PipelinePaths(settings.data_root, cfg.name)
    version = get_champion(tracking.client(settings, cfg.experiment), cfg.registered_model).version
    model = load_model(model_uri(cfg.registered_model, version))
    t = time.perf_counter()
    batch = pd.read_parquet(paths.curated(partition))
    read = time.perf_counter() - t
    columns, numeric = signature_inputs(model, cfg.model.features, cfg.model.numeric_features)
    X = model_inputs(batch, columns, numeric)
    raw = model.get_raw_model()
    t = time.perf_counter()
    proba = raw.predict_proba(X)
    floor = time.perf_counter() - t
    out = batch[key_columns(cfg)].copy()
    out["prediction"], out["score"] = proba.argmax(axis=1), proba[:, 1]
    t = time.perf_counter()
    write_parquet(out, home / "floor-write.parquet")
    write = time.perf_counter() - t
    return {"predict_proba": floor, "read": read, "write": write, "peak_mb": peak_mb()}


# --------------------------------------------------------------------------- P7: past memory


BIG_CHUNK = 1_000_000  # rows per generated landing file: the generator itself stays bounded


def case_big_setup(work: Path, rows: int) -> dict:
    """P7 set-up (not timed): ``rows`` rows of the 20-column shape as landing Parquet files of
    ``BIG_CHUNK`` rows (generated on the fly, never committed), a 200k-row reference, and a
    champion of the synthetic pipeline fit on 100k rows."""
    import mlflow

    from include.foundation import tracking
    from include.foundation.settings import Settings
    from include.foundation.storage import write_parquet
    from include.stages.datasets import add_label, split_xy
    from include.stages.training import _log_model, build_pipeline

    landing = work / "data" / "bench_big" / "landing"
    landing.mkdir(parents=True, exist_ok=True)
    for i, start in enumerate(range(0, rows, BIG_CHUNK)):
        frame = synthetic_frame(min(BIG_CHUNK, rows - start), seed=100 + i, shift=True)
        write_parquet(frame, landing / f"part-{i:04d}.parquet")
    cfg = synthetic_config("bench_big", rows * 2)
    reference = add_label(cfg, synthetic_frame(200_000, seed=1, shift=False))
    write_parquet(reference, work / "reference.parquet")
    settings = Settings.from_env()
    X, y = split_xy(cfg, reference.iloc[:100_000])
    tracking.client(settings, cfg.experiment)
    with mlflow.start_run():
        info = _log_model(build_pipeline(cfg).fit(X, y), X, cfg.target.name)
    version = mlflow.register_model(info.model_uri, cfg.registered_model).version
    tracking.client(settings, cfg.experiment).set_registered_model_alias(
        cfg.registered_model, "champion", version
    )
    return {"files": -(-rows // BIG_CHUNK), "version": version}


def case_big_stage(work: Path, stage: str, rows: int) -> dict:
    """P7: one stage of the loop on the big batch, in a process of its own (its own peak RSS)."""
    import evidently.presets  # noqa: F401  (imports are paid once per task process, not per row)
    import great_expectations  # noqa: F401
    import pandas as pd

    from include.foundation.settings import Settings
    from include.foundation.storage import PipelinePaths, partition_key
    from include.stages import ingest, scoring, validation
    from include.stages.evidence import streamed_drift

    cfg, settings = synthetic_config("bench_big", rows * 2), Settings.from_env()
    key = partition_key(START, START + timedelta(days=7))
    t0 = time.perf_counter()
    if stage == "ingest":
        done = ingest.ingest_batch(cfg, settings.data_root, START, START + timedelta(days=7))["rows"]
    elif stage == "validate":
        done = validation.validate_batch(cfg, settings.data_root, key)["success"]
    elif stage == "publish":
        done = ingest.publish_batch(cfg, settings.data_root, key)["rows"]
    elif stage == "score":
        done = scoring.score_batch(cfg, settings, key, "bench_big")["rows"]
    else:  # the drift check's statistics (all rows, streamed) and Evidently's report (a sample)
        reference = pd.read_parquet(work / "reference.parquet")
        paths = PipelinePaths(settings.data_root, cfg.name)
        _, summary, _ = streamed_drift(cfg, paths, reference, START, START + timedelta(days=7))
        done = {"drifted": summary["drifted_columns"], "columns": summary["columns"]}
    return {"wall": time.perf_counter() - t0, "peak_mb": peak_mb(), "result": done}


def case_big_drift_exact(work: Path, rows: int) -> dict:
    """P7, not timed: each numeric column's exact normed Wasserstein distance over every row (one
    column in memory at a time), to compare with the streamed histograms' and the sample's."""
    import numpy as np
    import pandas as pd
    import pyarrow.parquet as pq
    from scipy import stats

    from include.foundation.settings import Settings
    from include.foundation.storage import PipelinePaths, partition_key

    cfg = synthetic_config("bench_big", rows * 2)
    curated = PipelinePaths(Settings.from_env().data_root, cfg.name).curated(
        partition_key(START, START + timedelta(days=7))
    )
    reference = pd.read_parquet(work / "reference.parquet")
    out = {}
    for col in NUMERIC:
        ref = reference[col].dropna().to_numpy()
        cur = pq.read_table(curated, columns=[col]).column(0).to_numpy(zero_copy_only=False)
        cur = cur[np.isfinite(cur)]
        out[col] = stats.wasserstein_distance(ref, cur) / max(float(np.std(ref)), 0.001)
    return out


CASES = {"big_drift_exact": case_big_drift_exact, "drift": case_drift, "gx": case_gx, "pipeline": case_pipeline, "inprocess": case_inprocess,
         "score_setup": case_score_setup, "score": case_score, "score_floor": case_score_floor,
         "big_setup": case_big_setup, "big_stage": case_big_stage}  # fmt: skip


def run_case(name: str, *args, env: dict | None = None) -> dict:
    cmd = [sys.executable, __file__, "--case", name, *map(str, args)]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env={**os.environ, **(env or {})})
    if out.returncode != 0:
        raise RuntimeError(f"case {name} {args} failed:\n{out.stdout[-2000:]}\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_case_capped(name: str, *args, env: dict, cap_mb: float) -> dict:
    """:func:`run_case`, killing the case once its resident memory passes ``cap_mb`` (so a stage
    that cannot fit is reported as such instead of swapping the machine)."""
    import psutil

    cmd = [sys.executable, __file__, "--case", name, *map(str, args)]
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, text=True, cwd=ROOT, env={**os.environ, **env})
        seen = 0.0
        while proc.poll() is None:
            with contextlib.suppress(psutil.Error):
                seen = max(seen, psutil.Process(proc.pid).memory_info().rss / 2**20)
            if seen > cap_mb:
                proc.kill()
                proc.wait()
                return {"killed_mb": seen}
            time.sleep(0.2)
        out.seek(0), err.seek(0)
        if proc.returncode != 0:
            return {"failed": (err.read() or out.read())[-300:].strip().splitlines()[-1:]}
        return json.loads(out.read().strip().splitlines()[-1])


# --------------------------------------------------------------------------- the benchmarks


def write_frames(work: Path, rows: int, landing: Path | None = None) -> None:
    from include.foundation.storage import write_parquet

    work.mkdir(parents=True, exist_ok=True)
    write_parquet(synthetic_frame(rows, seed=1, shift=False), work / "reference.parquet")
    current = synthetic_frame(rows, seed=2, shift=True)
    write_parquet(current, work / "current.parquet")
    if landing is not None:
        landing.mkdir(parents=True, exist_ok=True)
        write_parquet(current, landing / "batch.parquet")


def bench_p2(scratch: Path, weeks: int) -> tuple[list[str], Path]:
    """The demo through the scheduler, then the same weeks in one process, on fresh homes."""
    homes = {k: scratch / f"p2-{k}" for k in ("scheduler", "inprocess")}
    env = {"CT_HOME": str(homes["scheduler"]), "AIRFLOW_HOME": str(homes["scheduler"] / "airflow")}
    t0 = time.perf_counter()
    demo = subprocess.run([sys.executable, "scripts/demo.py", "--weeks", str(weeks)], cwd=ROOT, text=True,
                          capture_output=True, env={**os.environ, **env})  # fmt: skip
    sched = time.perf_counter() - t0
    if demo.returncode != 0:
        raise RuntimeError(f"demo failed:\n{demo.stdout[-3000:]}\n{demo.stderr[-3000:]}")
    env = {"CT_HOME": str(homes["inprocess"]), "AIRFLOW_HOME": str(homes["inprocess"] / "airflow")}
    inproc = run_case("inprocess", homes["inprocess"], "flights_delay", weeks, env=env)
    lines = [
        f"P2  demo loop, {weeks} weeks ({inproc['weeks']} batches, {inproc['trainings']} trainings, "
        f"{inproc['drift_checks']} drift checks in process)",
        f"    through Airflow's scheduler (LocalExecutor, SQLite): {sched:7.1f} s",
        f"    same stage functions in one process:                 {inproc['wall']:7.1f} s",
        f"    overhead ratio: {sched / inproc['wall']:.2f}x",
    ]
    return lines, homes["scheduler"] / "airflow" / "airflow.db"


def bench_p3(scratch: Path, rows: int) -> list[str]:
    work = scratch / "p3"
    write_frames(work, rows)
    cases = [
        ("sampled (50k)", "ours", 50_000),
        ("unsampled", "ours-full", rows),
        ("Evidently default", "default", 0),
    ]
    results = {label: run_case("drift", work, mode, max_rows) for label, mode, max_rows in cases}
    truth = sorted(SHIFTED)
    lines = [f"P3  drift check end to end, {rows:,} rows x 20 columns per side (injected shift: {', '.join(truth)})",
             f"    {'variant':<20}{'wall s':>8}{'peak RSS MB':>13}  drifted columns"]  # fmt: skip
    for label, r in results.items():
        lines.append(f"    {label:<20}{r['wall']:>8.1f}{r['peak_mb']:>13.0f}  {', '.join(r['drifted'])}")
    s, u, d = (results[k] for k in ("sampled (50k)", "unsampled", "Evidently default"))
    lines.append(
        f"    sampled vs unsampled verdict: {'same' if s['drifted'] == u['drifted'] else 'DIFFERENT'}; vs injected: "
        f"{'same' if s['drifted'] == truth else 'DIFFERENT'}; speed-up vs Evidently default {d['wall'] / s['wall']:.1f}x"
    )
    return lines


def bench_p4(scratch: Path, rows: int) -> list[str]:
    work = scratch / "p4"
    write_frames(work, rows)
    r = run_case("gx", work, rows)
    return [f"P4  GX validation, {r['rows']:,} rows x 20 columns, {r['expectations']} expectations: "
            f"{r['wall']:.1f} s, peak RSS {r['peak_mb']:.0f} MB (passed: {r['success']})"]  # fmt: skip


def bench_p5(scratch: Path, sizes: list[int]) -> list[str]:
    lines = ["P5  ingest -> validate -> publish -> drift (sampled), landing Parquet, 20 columns",
             f"    {'rows':>10}{'ingest':>8}{'validate':>10}{'publish':>9}{'drift':>8}{'total s':>9}"
             f"{'us/row':>8}{'peak MB':>9}"]  # fmt: skip
    results = []
    for rows in sizes:
        work = scratch / f"p5-{rows}"
        write_frames(work, rows, landing=work / "data" / "bench_p5" / "landing")
        r = run_case("pipeline", work, rows)
        results.append(r)
        lines.append(f"    {rows:>10,}{r['ingest']:>8.1f}{r['validate']:>10.1f}{r['publish']:>9.1f}{r['drift']:>8.1f}"
                     f"{r['total']:>9.1f}{r['total'] / rows * 1e6:>8.2f}{r['peak_mb']:>9.0f}")  # fmt: skip
        shutil.rmtree(work, ignore_errors=True)
    first, last = results[0], results[-1]
    time_ratio, row_ratio = last["total"] / first["total"], sizes[-1] / sizes[0]
    lines.append(f"    time ratio {time_ratio:.1f}x for {row_ratio:.0f}x the rows "
                 f"({time_ratio / row_ratio:.2f}x the row ratio)")  # fmt: skip
    return lines


def bench_p6(scratch: Path, rows: int) -> list[str]:
    """The scoring task on ``rows`` rows of the demo's features against its floor."""
    import yaml

    home = scratch / "p6"
    (home / "pipelines").mkdir(parents=True)
    raw = yaml.safe_load((ROOT / "include" / "pipelines" / "flights_delay.yaml").read_text())
    raw["name"] = "bench_score"
    raw["labels"] = {"delay_days": 0}  # scoring is measured: the champion's data comes labelled
    raw["training"].update(train_days=21, holdout_days=14, min_train_rows=1000)
    raw["schema"]["row_count"] = {"min": 1, "max": 2 * rows}
    raw["notifications"] = {}
    (home / "pipelines" / "bench_score.yaml").write_text(yaml.safe_dump(raw))
    env = {"CT_HOME": str(home), "CT_PIPELINES_DIR": str(home / "pipelines")}
    setup = run_case("score_setup", home, rows, env=env)
    floor = run_case("score_floor", home, setup["partition"], env=env)
    task = run_case("score", home, setup["partition"], env=env)
    io = floor["read"] + floor["write"]
    target = 1.5 * floor["predict_proba"] + io
    ok = task["wall"] <= target and task["peak_mb"] < 2048 and task["logged"] == rows
    return [
        f"P6  scoring {rows:,} rows of the demo's features ({setup['columns']} columns) with the champion "
        f"(v{setup['version']}, HistGradientBoosting)",
        f"    floor: predict_proba in memory {floor['predict_proba']:6.1f} s (peak RSS {floor['peak_mb']:.0f} MB, "
        f"the whole frame at once); Parquet read {floor['read']:.1f} s + write {floor['write']:.1f} s",
        f"    scoring task (lookup, load, read, score, write): {task['wall']:6.1f} s, peak RSS {task['peak_mb']:.0f} MB, "
        f"{task['logged']:,} rows logged",
        f"    target 1.5 x floor + Parquet I/O = {target:.1f} s, under 2048 MB: {'met' if ok else 'NOT MET'} "
        f"({task['wall'] / (floor['predict_proba'] + io):.2f}x floor + I/O)",
    ]


P7_STAGES = ("ingest", "validate", "publish", "score", "drift")


def bench_p7(scratch: Path, sizes: list[int], cap_mb: float = 16_384) -> list[str]:
    """Each stage of the loop on a batch of ``sizes`` rows, in a process of its own: wall time and
    peak RSS, a stage killed past ``cap_mb`` (then the stages after it are not run)."""
    lines = [f"P7  past memory: one batch, each stage in its own process (killed past {cap_mb:,.0f} MB), 20 columns",
             f"    {'rows':>11}  " + "".join(f"{s + ' s/MB':>18}" for s in P7_STAGES) + f"{'us/row':>8}"]  # fmt: skip
    for rows in sizes:
        home = scratch / f"p7-{rows}"
        env = {"CT_HOME": str(home), "CT_PIPELINES_DIR": str(home / "pipelines")}
        run_case("big_setup", home, rows, env=env)
        cells, total, alive = [], 0.0, True
        for stage in P7_STAGES:
            r = run_case_capped("big_stage", home, stage, rows, env=env, cap_mb=cap_mb) if alive else {}
            if stage == "drift" and "wall" in r:
                drift_line = drift_comparison(r["result"], run_case("big_drift_exact", home, rows, env=env))
            if "wall" in r:
                total += r["wall"]
                cells.append(f"{r['wall']:>9.1f}/{r['peak_mb']:>7.0f}")
            else:
                alive = False
                cells.append(
                    f"{'killed ' + format(r['killed_mb'], '.0f') if 'killed_mb' in r else 'failed' if r else '-':>17}"
                )
                if "failed" in r:
                    lines.append(f"    {stage} failed at {rows:,} rows: {r['failed']}")
        per_row = f"{total / rows * 1e6:>8.2f}" if alive else f"{'-':>8}"
        lines.append(f"    {rows:>11,}  " + " ".join(cells) + per_row)
        if alive:
            lines.append(drift_line)
        shutil.rmtree(home, ignore_errors=True)
    return lines


def drift_comparison(result: dict, exact: dict) -> str:
    """The streamed drift check against the exact distance over all rows and the sample's verdict:
    the injected shift's columns found, the largest gap in score to the exact value."""
    columns = result["columns"]
    gap = max(abs(columns[c]["score"] - exact[c]) for c in exact if c in columns)
    sample_gap = max(abs(columns[c]["sample_score"] - exact[c]) for c in exact if c in columns)
    sample = sorted(c for c, v in columns.items() if v.get("sample_drifted"))
    return (
        f"    {'':>11}  drift on all rows: {result['drifted']} (injected {SHIFTED}); the sample's: {sample}; "
        f"largest |score - exact| over all rows: histograms {gap:.5f}, sample {sample_gap:.5f}"
    )


def largest_xcom(db: Path) -> list[str]:
    with sqlite3.connect(db) as con:
        top = con.execute(
            "SELECT x.dag_id, x.task_id, x.key, length(CAST(x.value AS BLOB)) FROM xcom x ORDER BY 4 DESC LIMIT 3"
        ).fetchall()
        count = con.execute("SELECT count(*) FROM xcom").fetchone()[0]
    lines = [f"XCom  {count} values pushed by the P2 demo; the largest (bytes):"]
    lines += [f"    {n:>7,}  {d}.{t} ({k})" for d, t, k, n in top]
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--case", help=argparse.SUPPRESS)
    every = ["p2", "p3", "p4", "p5", "p6", "p7"]
    ap.add_argument("--only", nargs="+", choices=every, default=every)
    ap.add_argument("--p7-rows", nargs="+", type=int, help="P7's sizes (default: 10M and 30M rows)")
    ap.add_argument("--quick", action="store_true", help="small sizes (a smoke run, figures not comparable)")
    ap.add_argument(
        "--weeks", type=int, default=14, help="P2: weekly batches of the demo (default: %(default)s)"
    )
    args, rest = ap.parse_known_args()
    if args.case:
        print(json.dumps(CASES[args.case](Path(rest[0]), *(int(x) if x.isdigit() else x for x in rest[1:]))))
        return 0
    big = 100_000 if args.quick else 1_000_000
    sizes = [20_000, 60_000] if args.quick else [100_000, 1_000_000, 3_000_000]
    scratch = Path(tempfile.mkdtemp(prefix="ct-bench-"))
    out: list[str] = []
    try:
        if "p2" in args.only:
            lines, db = bench_p2(scratch, 11 if args.quick else args.weeks)
            out += lines + largest_xcom(db)
            print("\n".join(out[-len(lines) - 4 :]), flush=True)
        p7 = args.p7_rows or ([200_000, 600_000] if args.quick else [10_000_000, 30_000_000])
        cases = (("p3", bench_p3, big), ("p4", bench_p4, big), ("p5", bench_p5, sizes), ("p6", bench_p6, big),
                 ("p7", bench_p7, p7))  # fmt: skip
        for key, fn, arg in cases:
            if key in args.only:
                lines = fn(scratch, arg)
                print("\n".join(lines), flush=True)
                out += lines
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print("\n" + "=" * 100 + "\n" + "\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
