"""The report viewer serves only what a loaded pipeline produced, only to who may read its DAG,
and sandboxed. Absent and forbidden look the same (404). The browser test (tests/e2e/browser.py)
checks the same against the real API server, with and without a login."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from include.foundation.links import viewable_file
from include.foundation.settings import Settings
from tests.airflow_helpers import plugin
from tests.factories import demo_yaml

ROOT = Path(__file__).resolve().parents[3]
OK = "<html><body>report</body></html>"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """Two pipelines (alpha, beta) with one file of every kind the data root holds."""
    tmp = tmp_path_factory.mktemp("viewer")
    pipelines, data = tmp / "pipelines", tmp / "data"
    pipelines.mkdir()
    for name in ("alpha", "beta"):
        raw = demo_yaml()
        raw["name"] = name
        (pipelines / f"{name}.yaml").write_text(yaml.safe_dump(raw))
    files = {
        "alpha/drift/run1/report.html": OK,
        "alpha/drift/run1/summary.json": "{}",
        "alpha/gx/uncommitted/data_docs/local_site/index.html": OK,
        "alpha/gx/uncommitted/data_docs/local_site/validations/alpha_suite/w1/t/b.html": OK,
        "alpha/gx/uncommitted/data_docs/local_site/validations/alpha_outcomes_suite/w1/t/b.html": OK,
        "alpha/quarantine/20130101T0000Z_20130108T0000Z/abc123/validation_result.json": "{}",
        "alpha/quarantine/20130101T0000Z_20130108T0000Z/abc123/batch.parquet": "data",
        "alpha/quarantine/landing/evil-0a1b.html": "<script>evil()</script>",
        "alpha/landing/evil.html": "<script>evil()</script>",
        "alpha/raw/k/batch.parquet": "data",
        "alpha/curated/k/batch.parquet": "data",
        "alpha/landing_index.json": "{}",
        "alpha/gx/great_expectations.yml": "config",
        "alpha/gx/uncommitted/config_variables.yml": "secrets",
        "beta/drift/run1/report.html": OK,
        "secret.json": '{"admin": "pw"}',
    }
    for rel, text in files.items():
        (data / rel).parent.mkdir(parents=True, exist_ok=True)
        (data / rel).write_text(text)
    outside = tmp / "outside.html"
    outside.write_text("<script>evil()</script>")
    os.symlink(outside, data / "alpha" / "drift" / "out.html")  # a symlink out of the data root
    os.symlink(data / "alpha" / "landing", data / "alpha" / "drift" / "landing")  # into the landing folder
    settings = replace(Settings.from_env(), data_root=data, pipelines_dir=pipelines)
    return settings


@pytest.fixture(scope="module")
def client(site):
    from airflow.api_fastapi.core_api.security import get_user
    from fastapi.testclient import TestClient

    readable = {"alpha__drift_check", "alpha__ingest", "beta__train"}  # beta__drift_check: not this user's
    app = plugin().create_app(lambda: site, authorize=lambda user, dag_id: dag_id in readable)
    app.dependency_overrides[get_user] = lambda: "viewer"
    return TestClient(app)


@pytest.mark.parametrize(
    "path",
    [
        "alpha__drift_check/drift/run1/report.html",
        "alpha__drift_check/drift/run1/summary.json",
        "alpha__ingest/gx/uncommitted/data_docs/local_site/index.html",
        "alpha__ingest/quarantine/20130101T0000Z_20130108T0000Z/abc123/validation_result.json",
        "alpha__ingest/gx/uncommitted/data_docs/local_site/validations/alpha_suite/w1/t/b.html",
        "alpha__train/drift/run1/report.html",  # any DAG id of the pipeline: its producer decides
    ],
)
def test_what_the_pipeline_produced_is_served_sandboxed(client, path):
    r = client.get(f"/files/{path}")
    assert r.status_code == 200, r.text
    csp = r.headers["content-security-policy"]
    assert csp.startswith("sandbox allow-scripts") and "allow-same-origin" not in csp
    assert "connect-src 'none'" in csp and "form-action 'none'" in csp
    assert r.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize(
    "path",
    [
        "..__x/secret.json",  # the dag_id names the parent of the data root
        "%2e%2e__x/secret.json",
        "alpha__drift_check/%2e%2e/%2e%2e/secret.json",
        "alpha__drift_check/..%2F..%2Fsecret.json",
        "alpha__drift_check/drift%2F..%2F..%2Fsecret.json",
        "alpha__drift_check/%2Fetc%2Fpasswd",
        "alpha__drift_check//etc/passwd",
        "alpha__drift_check/drift/out.html",  # symlink out of the data root
        "alpha__drift_check/drift/landing/evil.html",  # symlink into the landing folder
        "alpha__drift_check/landing/evil.html",  # what data producers write
        "alpha__drift_check/quarantine/landing/evil-0a1b.html",
        "alpha__drift_check/raw/k/batch.parquet",
        "alpha__drift_check/curated/k/batch.parquet",
        "alpha__drift_check/quarantine/20130101T0000Z_20130108T0000Z/abc123/batch.parquet",
        "alpha__drift_check/landing_index.json",
        "alpha__drift_check/gx/great_expectations.yml",
        "alpha__drift_check/gx/uncommitted/config_variables.yml",
        "beta__drift_check/drift/run1/report.html",  # exists, but this user may not read that DAG
        "beta__train/drift/run1/report.html",  # may read beta__train, but the drift check produced it
        "alpha__ingest/gx/uncommitted/data_docs/local_site/validations/alpha_outcomes_suite/w1/t/b.html",
        "gamma__drift_check/drift/run1/report.html",  # no such pipeline
        "alpha__nope/drift/run1/report.html",  # no such DAG of alpha
        "alpha/drift/run1/report.html",  # not a DAG id
        "alpha__drift_check/drift/run1/absent.html",
    ],
)
def test_everything_else_is_404_alike(client, path):
    r = client.get(f"/files/{path}")
    assert (r.status_code, r.json()) == (404, {"detail": "Not Found"}), path


def test_confinement_is_a_pure_function(site):
    data = site.data_root
    assert viewable_file(data, "alpha", "drift/run1/report.html") == data / "alpha/drift/run1/report.html"
    for rel in ("../secret.json", "drift/../../secret.json", "/etc/passwd", "drift/run1/report.html\x00",
                "drift\\..\\..\\secret.json", "", ".", "drift/./run1/report.html", "drift/out.html"):  # fmt: skip
        assert viewable_file(data, "alpha", rel) is None, rel
    assert viewable_file(data, "..", "secret.json") is None


def test_the_vendored_assets_are_served_to_sandboxed_pages(client):
    """Public, like the CDNs they replace: a sandboxed page has no cookie to send."""
    r = client.get("/static/jquery-3.7.1/jquery.min.js")
    assert r.status_code == 200 and r.headers["x-content-type-options"] == "nosniff"
    assert client.get("/static/../manifest.json").status_code == 404
    assert client.get("/static/%2e%2e/ct_loop_plugin.py").status_code == 404


def test_the_viewer_authorizes_by_the_dag_that_produced_the_file(site):
    """A user who may read only alpha__train gets no drift report, Data Docs or quarantine report
    of alpha, whatever DAG id the URL names; the reader of the drift check gets its report."""
    from airflow.api_fastapi.core_api.security import get_user
    from fastapi.testclient import TestClient

    def as_reader_of(*dags):
        app = plugin().create_app(lambda: site, authorize=lambda user, dag_id: dag_id in dags)
        app.dependency_overrides[get_user] = lambda: "reader"
        return TestClient(app)

    train_only = as_reader_of("alpha__train")
    for path in ("drift/run1/report.html", "gx/uncommitted/data_docs/local_site/index.html",
                 "quarantine/20130101T0000Z_20130108T0000Z/abc123/validation_result.json"):  # fmt: skip
        for dag in ("alpha__train", "alpha__drift_check", "alpha__ingest"):
            assert train_only.get(f"/files/{dag}/{path}").status_code == 404, (dag, path)
    drift_reader = as_reader_of("alpha__drift_check")
    assert drift_reader.get("/files/alpha__train/drift/run1/report.html").status_code == 200
    assert (
        drift_reader.get(
            "/files/alpha__drift_check/gx/uncommitted/data_docs/local_site/index.html"
        ).status_code
        == 404
    )


def test_a_quarantine_report_opens_as_a_readable_escaped_page(site, client):
    report = site.data_root / "alpha/quarantine/20130101T0000Z_20130108T0000Z/abc123/validation_result.json"
    original = report.read_text()
    report.write_text(json.dumps({
        "partition": "20130101T0000Z_20130108T0000Z", "part": "inputs", "rows": 120,
        "statistics": {"evaluated_expectations": 12, "unsuccessful_expectations": 1},
        "failures": [{"expectation": "expect_column_values_to_be_between", "column": "x",
                      "kwargs": {"min_value": 0}, "observed_value": None, "unexpected_count": 3,
                      "partial_unexpected_list": ["<script>alert(1)</script>"], "why": ""}],
    }))  # fmt: skip
    try:
        r = client.get(
            "/files/alpha__ingest/quarantine/20130101T0000Z_20130108T0000Z/abc123/validation_result.json"
        )
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        assert (
            "Quarantined batch 20130101T0000Z_20130108T0000Z" in r.text
            and "expect_column_values_to_be_between" in r.text
        )
        assert "<script>alert" not in r.text and "&lt;script&gt;" in r.text  # escaped, and sandboxed
        assert r.headers["content-security-policy"].startswith("sandbox")
        raw = client.get(
            "/files/alpha__ingest/quarantine/20130101T0000Z_20130108T0000Z/abc123/validation_result.json?raw=1"
        )
        assert raw.json()["rows"] == 120
    finally:
        report.write_text(original)


def test_a_failed_validation_links_its_quarantine_report_by_that_name(tmp_path, monkeypatch):
    monkeypatch.setenv("CT_DATA_ROOT", str(tmp_path))
    report = (
        tmp_path / "p" / "quarantine" / "20130101T0000Z_20130108T0000Z" / "abc" / "validation_result.json"
    )
    report.parent.mkdir(parents=True)
    report.write_text("{}")
    links = plugin().task_links("p__ingest", "validate", {"report": str(report)}, Settings.from_env())
    assert list(links) == ["Quarantine report"] and links["Quarantine report"].endswith(
        "validation_result.json"
    )
