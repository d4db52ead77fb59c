"""`make loop-value` on a few weeks: the policies, the table, the plot, MLflow, determinism.

A fast copy of the demo pipeline (2-week training window, 1-week holdout) replayed over
January-February 2013: the first champion is trained for data up to Jan 22 and five weeks are
scored. The replay is run twice; the second run must write the very same table and weeks.
"""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

import pytest
import yaml

from scripts import loop_value
from scripts.loop_value import CONFIGURED, GATED, NEVER, WEEKLY, Outcome, Policy

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.e2e
NAME = "flights_lv"


def quick_pipeline(folder: Path, **drift) -> Path:
    raw = yaml.safe_load((ROOT / "include" / "pipelines" / "flights_delay.yaml").read_text())
    raw["name"] = NAME
    raw["training"].update(train_days=14, holdout_days=7, min_train_rows=1000)
    raw["model"]["params"]["max_iter"] = 40
    raw["drift"].update(window_days=7, **drift)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{NAME}.yaml").write_text(yaml.safe_dump(raw))
    return folder


@pytest.fixture
def pipelines(tmp_path, monkeypatch):
    def make(**drift):
        folder = quick_pipeline(tmp_path / f"pipelines-{len(list(tmp_path.glob('pipelines-*')))}", **drift)
        monkeypatch.setenv("CT_PIPELINES_DIR", str(folder))
        return folder

    return make


def replay(*extra: str) -> dict[str, str]:
    argv = ["--pipeline", NAME, "--last-day", "2013-02-28", "--split", "2013-02-05", *extra]
    assert loop_value.main(argv) == 0
    out = Path(os.environ["CT_HOME"]) / "loop-value" / NAME
    return {f: (out / f).read_bytes() for f in ("table.md", "weekly.csv", "loop_value.png")}


def rows_of(table: bytes) -> dict[str, list[str]]:
    """The first (all weeks) table: policy -> [weeks, mean, trainings, promotions, below never]."""
    block = table.decode().split("\n\n")[0]
    return {c[0]: c[1:] for c in (ln.strip("| ").split(" | ") for ln in block.splitlines()[3:])}


def test_replay_is_deterministic_logged_and_policies_behave(pipelines):
    import mlflow

    pipelines()
    first, second = replay(), replay()
    assert first == second  # same table, same weekly scores, same plot bytes
    assert first["loop_value.png"].startswith(b"\x89PNG")

    rows = rows_of(first["table.md"])
    assert list(rows) == [NEVER, WEEKLY, GATED, CONFIGURED]
    weeks = {int(r[0]) for r in rows.values()}
    assert weeks == {5}, rows  # Jan 22 .. Feb 25: every policy scores the same five weeks
    assert rows[NEVER][2:4] == ["0", "0"]  # never retrains
    assert rows[WEEKLY][2:4] == ["4", "4"]  # retrains and replaces at each of the four later weeks
    assert rows[GATED][2] == "4" and int(rows[GATED][3]) <= 4
    assert rows[NEVER][4] == "0"  # the never line is not below itself
    assert "weeks before 2013-02-05" in first["table.md"].decode()
    assert "weeks from 2013-02-05" in first["table.md"].decode()

    exp = mlflow.get_experiment_by_name(f"{NAME}-loop-value")
    runs = mlflow.search_runs([exp.experiment_id], output_format="list")
    assert len(runs) == 2
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(runs[0].info.run_id)}
    assert {"table.md", "weekly.csv", "loop_value.png"} <= artifacts
    assert runs[0].data.metrics["all.weekly.trainings"] == 4
    assert runs[0].data.metrics["all.never.mean"] == pytest.approx(float(rows[NEVER][1]), abs=1e-4)


def test_configured_policy_uses_the_drift_check_and_the_gate(pipelines):
    """A drift threshold every week crosses and no cooldown: the configured policy trains every
    week and promotes exactly what the gated weekly policy promotes (same decision code)."""
    pipelines(share_threshold=0.01, cooldown_intervals=0, performance_floor=None)
    rows = rows_of(replay("--no-mlflow")["table.md"])
    assert rows[CONFIGURED][2] == "4", rows
    assert rows[CONFIGURED] == rows[GATED], rows

    pipelines(share_threshold=1.0, cooldown_intervals=0, performance_floor=None)  # nothing can trigger
    rows = rows_of(replay("--no-mlflow")["table.md"])
    assert rows[CONFIGURED][1:4] == rows[NEVER][1:4], rows


def test_summary_counts_weeks_below_the_never_line():
    def outcome(name: str, kind: str, scores: list[float], trainings=()) -> Outcome:
        weeks = [date(2013, 7, 2), date(2013, 7, 9), date(2013, 7, 16)]
        return Outcome(Policy(name, kind), weeks, scores, weeks, list(trainings), list(trainings))

    rows = loop_value.summarize(
        [
            outcome(NEVER, NEVER, [0.7, 0.7, 0.7]),
            outcome(WEEKLY, WEEKLY, [0.8, 0.6, 0.7], [date(2013, 7, 9)]),
        ],
        since=date(2013, 7, 9),
    )
    assert rows[0] == {
        "policy": NEVER,
        "weeks": 2,
        "mean": 0.7,
        "trainings": 0,
        "promotions": 0,
        "below_never": 0,
    }
    assert rows[1] == {
        "policy": WEEKLY,
        "weeks": 2,
        "mean": 0.65,
        "trainings": 1,
        "promotions": 1,
        "below_never": 1,
    }
