"""Re-admit a quarantined interval after its producer fixed the data.

    make readmit READMIT_ARGS='--pipeline shop --interval 2024-01-16 --reason "producer re-exported the week"'

Checks here that the interval is quarantined and not published (the same check the ingest task
makes), shows the quarantine report it replaces, then triggers ``<pipeline>__ingest`` with
``readmit: true`` through Airflow's own CLI (``airflow dags trigger``; the run's triggering user
is you). The scheduler (``make up``) runs it: the interval is read again from the source,
validated, and published only if it passes; ``readmission-<run>.json`` beside the quarantine
report records who, why, when and the outcome.
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from include.foundation.config import find_pipeline  # noqa: E402
from include.foundation.errors import PermanentError  # noqa: E402
from include.foundation.settings import Settings  # noqa: E402
from include.foundation.storage import PipelinePaths, partition_key  # noqa: E402
from include.stages.ingest import readmission_request  # noqa: E402

log = logging.getLogger("readmit")


def trigger_command(dag_id: str, conf: dict) -> list[str]:
    """``airflow dags trigger`` with the conf as one argument (never through a shell)."""
    return ["airflow", "dags", "trigger", dag_id, "--conf", json.dumps(conf)]


def main(argv: list[str] | None = None, run=subprocess.run) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pipeline", required=True, help="pipeline name (its file in the pipelines folder)")
    ap.add_argument("--interval", required=True, type=datetime.fromisoformat, help="first day, YYYY-MM-DD")
    ap.add_argument(
        "--days", type=int, default=7, help="length of the interval in days (default: %(default)s)"
    )
    ap.add_argument("--reason", required=True, help="why the batch may come back (recorded)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    settings = Settings.from_env()
    cfg = find_pipeline(settings.pipelines_dir, args.pipeline)
    start = args.interval.replace(tzinfo=UTC)
    key = partition_key(start, start + timedelta(days=args.days))
    try:
        request = readmission_request(cfg, PipelinePaths(settings.data_root, cfg.name), key,
                                      {"reason": args.reason, "by": "(you)", "run_id": "(the run)"})  # fmt: skip
    except PermanentError as exc:
        log.error("not re-admitted: %s", exc)
        return 2
    log.info("%s %s replaces quarantine report %s", cfg.name, key, request["replaces_report"])
    conf = {
        "batch_start": start.date().isoformat(),
        "batch_days": args.days,
        "readmit": True,
        "reason": args.reason,
    }
    done = run(trigger_command(f"{cfg.name}__ingest", conf), check=False)
    if done.returncode != 0:
        log.error("airflow dags trigger failed (exit %s)", done.returncode)
        return done.returncode
    log.info("triggered %s__ingest; the scheduler validates the batch again and records the decision beside %s",
             cfg.name, request["replaces_report"])  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
