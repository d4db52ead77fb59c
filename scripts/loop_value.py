"""What retraining buys: ``make loop-value`` replays a pipeline's year under several retraining
policies (the engine: ``include/replay.py``, which takes the DAGs' own decisions) and reports it.

Prints a table, writes ``weekly.csv``, ``table.md`` and ``loop_value.png`` under
``$CT_HOME/loop-value/<pipeline>/`` and logs them to the MLflow experiment
``<pipeline>-loop-value``. Deterministic: models, samples and bootstraps are seeded.

``--tune`` searches drift and promotion settings (:data:`TUNING_GRID`) on the weeks before
``--split`` (default July 1) only and prints the candidates; the weeks after it are the honest
report of whatever is chosen.
"""

from __future__ import annotations

import argparse
import logging
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from include.foundation.config import ConfigError, find_pipeline  # noqa: E402
from include.foundation.logging_config import quieted  # noqa: E402
from include.foundation.settings import Settings  # noqa: E402
from include.loop_value import policy_choice_report, report, tuning_report, with_overrides  # noqa: E402
from include.replay import Replay, ReplayRefused, load_year  # noqa: E402


def arguments() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pipeline", default="flights_delay", help="pipeline config name (default: %(default)s)")
    ap.add_argument(
        "--first-day", type=date.fromisoformat, default=None, help="default: the source's first day"
    )
    ap.add_argument(
        "--last-day", type=date.fromisoformat, default=None, help="default: the source's last day"
    )
    ap.add_argument("--split", type=date.fromisoformat, default=date(2013, 7, 1),
                    help="tuning uses weeks before this day; the table also reports each side (default: %(default)s)")  # fmt: skip
    ap.add_argument(
        "--tune", action="store_true", help="rank drift and promotion settings on the weeks before --split"
    )
    ap.add_argument("--choose-policy", action="store_true",
                    help="rank calendars, the staleness debt and calendars with early triggers on the weeks "
                         "before --split and name the policy the protocol ships (docs/loop-value.md)")  # fmt: skip
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a config value for this replay, e.g. --set drift.share_threshold=0.3 "
                         "(repeatable; the file is not changed)")  # fmt: skip
    ap.add_argument("--no-mlflow", action="store_true", help="do not log the result to MLflow")
    return ap


def main(argv: list[str] | None = None) -> int:
    ap = arguments()
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    from include.foundation.logging_config import configure_library_logging

    configure_library_logging()
    settings = Settings.from_env()
    cfg = with_overrides(find_pipeline(settings.pipelines_dir, args.pipeline), args.set)
    first_day, last_day = cfg.source.replay_days() or (None, None)
    first_day, last_day = args.first_day or first_day, args.last_day or last_day
    if first_day is None or last_day is None:
        ap.error(f"pipeline {cfg.name} has no replay source days: pass --first-day and --last-day")
    first = datetime(first_day.year, first_day.month, first_day.day, tzinfo=UTC)
    last = datetime(last_day.year, last_day.month, last_day.day, tzinfo=UTC) + timedelta(days=1)
    from include.orchestration.connections import read_sql  # a sql source: through its connection

    out_dir = settings.home / "loop-value" / cfg.name
    out_dir.mkdir(parents=True, exist_ok=True)
    with quieted("mlflow", "include"):  # the per-call INFO of hundreds of replayed decisions
        logging.getLogger("include.loop_value").setLevel(logging.INFO)  # but the report's own lines
        replay = Replay(cfg, load_year(cfg, settings, first, last, read_sql), first, last)
        if args.tune:
            lines = tuning_report(replay, args.split, out_dir)
        elif args.choose_policy:
            lines = policy_choice_report(replay, args.split, out_dir)
        else:
            lines = report(replay, settings, args.split, out_dir, to_mlflow=not args.no_mlflow)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (ReplayRefused, ConfigError) as exc:
        sys.exit(f"loop-value: {exc}")
