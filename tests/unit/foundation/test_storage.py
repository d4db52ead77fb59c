"""Where data lives: run ids map to distinct folders inside the pipeline's folder."""

from __future__ import annotations

from include.foundation.storage import PipelinePaths


def test_run_ids_map_to_distinct_folders_inside_the_pipeline(tmp_path):
    from include.foundation.storage import safe_name

    names = {safe_name(r) for r in ("retrain:1", "retrain+1", "retrain_1", "..", ".", "../../etc", "")}
    assert len(names) == 7  # no two ids share a folder
    assert all("/" not in n and n not in (".", "..") and not n.startswith(".") for n in names)
    assert safe_name("manual__2013-01-01") == "manual__2013-01-01"  # already safe: unchanged
    paths = PipelinePaths(tmp_path, "p")
    for run in ("..", "../../x", "/abs/path"):
        assert paths.training_dir(run).resolve().parent == (tmp_path / "p" / "training").resolve()


def test_readmission_records_of_two_runs_never_overwrite_each_other(tmp_path):
    """Run ids that map to the same characters (':' vs '_') or share their first 120 characters."""
    from include.foundation.storage import record_readmission

    report = tmp_path / "quarantine" / "k" / "abc" / "validation_result.json"
    report.parent.mkdir(parents=True)
    long = "manual__" + "x" * 130
    ids = ["manual__2013-01-01T00:00:00", "manual__2013-01-01T00_00_00", long + "1", long + "2"]
    paths = {
        record_readmission({"replaces_report": str(report), "airflow_run_id": r}, "published") for r in ids
    }
    assert len(paths) == len(ids) and len(list(report.parent.glob("readmission-*.json"))) == len(ids)
