"""The demo's week-by-week run through a local Airflow: each week's ingest (a backfill run), its
outcomes, its scoring, its drift check and the training that check starts, read back into one
row per week. ``scripts/demo.py`` is the command line (``make demo``, ``make run``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

from include.decisions.windows import first_champion_as_of
from include.foundation.storage import interval_name, partition_key
from include.orchestration.local_airflow import TERMINAL, AirflowApi, LocalAirflowError


def week_name(start: datetime) -> str:
    """The week from ``start``, by its one name (``2013-04-02--2013-04-08``): the demo's row, run ids, notes."""
    return interval_name(partition_key(start, start + timedelta(weeks=1)))


def week_end(name: str) -> datetime:
    """The end (exclusive) of a week named by :func:`week_name` (or, as older runs were, by its end day)."""
    last = datetime.fromisoformat(name.split("--")[-1]).replace(tzinfo=UTC)
    return last + timedelta(days=1) if "--" in name else last


def _short(name: str) -> str:
    """A week's name without its years, for the demo's narrow table column (``04-02--04-08``)."""
    import re

    return re.sub(r"\b\d{4}-", "", name)


def run_weeks(cfg, settings, api: AirflowApi, say: Callable[[str], None], first_week: datetime,
              weeks: int) -> Iterator[dict]:  # fmt: skip
    """Each week in order, made through the scheduler; yields the week's row when it is done.
    As in production, a week is scored by the champion it arrives to, before its drift check (and
    any retraining that check starts); the weeks before the first champion are only ingested."""
    loop = Loop(cfg, settings, api, say)
    first_as_of = first_champion_as_of(cfg, first_week, timedelta(weeks=1))
    for i in range(weeks):
        week_start = first_week + timedelta(weeks=i)
        row = {"week": week_name(week_start), "ingest": loop.ingest(week_start)}
        if cfg.outcomes_later and i * 7 >= cfg.labels.delay_days:  # outcomes of an earlier week are due
            row["outcomes"] = loop.outcomes(week_start)
        if loop.champion() is None:
            if week_start + timedelta(weeks=1) >= first_as_of:
                row.update(loop.bootstrap(week_start + timedelta(weeks=1)))
        elif week_start + timedelta(weeks=1) > loop.first_champion_as_of():
            if row["ingest"] == "curated":
                row["scored_by"] = loop.score(week_start)
            row.update(loop.drift_check(week_start))
        row["champion"] = loop.champion()
        row["errors"] = loop.errors
        yield row


class Loop:
    """Makes the demo's runs through the REST API and reads back what they did."""

    def __init__(self, cfg, settings, api: AirflowApi, say: Callable[[str], None]):
        import mlflow
        from mlflow import MlflowClient

        from include.foundation.storage import PipelinePaths

        self.cfg, self.settings, self.api, self.say = cfg, settings, api, say
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
        names = [r["dag_run_id"].removeprefix("manual__bootstrap_") for r in runs.get("dag_runs", [])]
        return min((week_end(n) for n in names), default=datetime.min.replace(tzinfo=UTC))

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
                    raise LocalAirflowError(f"the scheduler made no backfill run of {dag_id} at {when}")
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
            return f"{published['rows']} of {_short(interval_name(published['partition']))}"
        if states.get("validate") == "failed":
            return "quarantined"
        self.fail(run, states)
        return "failed"

    def fail(self, run: dict, states: dict) -> None:
        self.errors += 1
        self.say(f"{run['dag_id']} run {run['dag_run_id']} FAILED: {states} (task logs: make up)")

    def bootstrap(self, as_of: datetime) -> dict:
        dag_id = f"{self.cfg.name}__train"
        run_id = f"manual__bootstrap_{week_name(as_of - timedelta(weeks=1))}"  # the week it was trained up to
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
        model = self.cfg.registered_model
        versions = [mv for mv in self.client.search_model_versions(f"name = '{model}'")
                    if mv.tags.get("airflow.run_id") == run_id and mv.tags.get("ct.role") == "trained"]  # fmt: skip
        if versions:  # the version the gate judged; its decision is on the refit that serves, if any
            mv = self.client.get_model_version(model, versions[0].version)
            served = mv.tags.get("refit.served_as")
            decided = self.client.get_model_version(model, served) if served else mv
            out.update(version=str(mv.version) + (f">v{served}" if served else ""),
                       decision=decided.tags.get("decision.outcome", "?"),
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
        run_id = f"manual__score_{week_name(week_start)}"
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
            out["realized"] = {"value": arrived["value"], "week": interval_name(arrived["partition"]),
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


def table_lines(rows: list[dict]) -> list[str]:
    """The demo's closing table: one line per week."""
    lines = [
        "",
        f"{'week':<22} {'ingest':<15} {'scored by':>9} {'drift':>6} {'realized':>21} {'trigger':<8} {'model':>7} "
        f"{'holdout':>8} {'decision':<9} {'champion':>8}  why",
    ]
    for r in rows:
        drift = "" if r.get("drift") is None else f"{r['drift']:.2f}"
        trig = "yes" if r.get("triggered") else ("boot" if r.get("train_reason") == "bootstrap" else "")
        hold = "" if r.get("holdout") is None else f"{r['holdout']:.4f}"
        scored = f"v{r['scored_by']}" if r.get("scored_by") else ""
        arrived = r.get("realized")
        realized = f"{arrived['value']:.4f} ({_short(arrived['week'])})" if arrived else ""
        why = (
            r.get("why")
            if r.get("triggered")
            else ("bootstrap" if trig == "boot" else r.get("suppressed") or "")
        )
        lines.append(
            f"{r['week']:<22} {r['ingest']:<15} {scored:>9} {drift:>6} {realized:>21} {trig:<8} "
            f"{r.get('version', ''):>7} {hold:>8} {r.get('decision', ''):<9} "
            f"{('v' + r['champion']) if r['champion'] else '-':>8}  {why or ''}"
        )
    return [*lines, ""]
