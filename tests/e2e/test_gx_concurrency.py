"""A pipeline's ingest and outcomes validations run at the same time (two DAGs, two workers):
they share one GX project, so each holds the project's lock. Real processes, many rounds, no
spurious failure, and the project's config intact afterwards."""

from __future__ import annotations

import multiprocessing as mp
import traceback
from datetime import UTC, datetime, timedelta

import pytest
import yaml

pytestmark = pytest.mark.e2e
PARTS = ("inputs", "outcomes", "inputs", "outcomes")  # two of each: the DAGs of a pipeline, twice over
ROUNDS = 3  # 12 validations: without the lock 2 of 16 failed in 4 rounds


def _validator(part: str, data_root: str, rounds: int, barrier, results) -> None:
    """Validate one week's ``part`` ``rounds`` times; report every round's outcome at the end."""
    from pathlib import Path

    from include.foundation.config import PipelineConfig
    from include.foundation.storage import PipelinePaths
    from include.stages import sources
    from include.stages.validation import validate_frame
    from tests.factories import demo_yaml

    outcomes = []
    try:
        cfg = PipelineConfig.model_validate(demo_yaml(None))
        start = datetime(2013, 1, 1, tzinfo=UTC)
        frame = sources.fetch(cfg, start, start + timedelta(weeks=1), Path(data_root) / cfg.name, part)
        project = PipelinePaths(Path(data_root), cfg.name).gx_project
    except Exception:
        results.put([(part, "setup", traceback.format_exc())])
        return
    barrier.wait(timeout=300)  # all warm (imports, data) before racing
    for i in range(rounds):
        try:
            summary, _ = validate_frame(cfg, frame, project, part, f"{part}_{i}")
            outcomes.append((part, i, None if summary["success"] else f"failed: {summary['failures']}"))
        except Exception:
            outcomes.append((part, i, traceback.format_exc()))
    results.put(outcomes)


def test_concurrent_validations_of_one_pipeline_never_fail_spuriously(tmp_path):
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(len(PARTS)), ctx.Queue()
    procs = [
        ctx.Process(target=_validator, args=(part, str(tmp_path), ROUNDS, barrier, results)) for part in PARTS
    ]
    for p in procs:
        p.start()
    try:
        got = [row for _ in procs for row in results.get(timeout=900)]
    finally:
        for p in procs:
            p.join(timeout=60)
            if p.is_alive():
                p.kill()
    problems = [g for g in got if g[2]]
    assert not problems, f"{len(problems)} of {len(got)} validations failed; first: {problems[0]}"
    assert len(got) == len(PARTS) * ROUNDS
    config = tmp_path / "flights_delay" / "gx" / "great_expectations.yml"
    assert isinstance(yaml.safe_load(config.read_text()), dict)  # intact: later validations work
    docs = tmp_path / "flights_delay" / "gx" / "uncommitted" / "data_docs" / "local_site" / "validations"
    suites = {p.relative_to(docs).parts[0] for p in docs.rglob("*.html")}
    assert suites == {"flights_delay_suite", "flights_delay_outcomes_suite"}, suites
