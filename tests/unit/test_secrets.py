"""Secrets stay secret: a password planted in a tracking URI reaches no message, tag, XCom or
mail the project writes, and every secret file is the owner's alone from the moment it exists."""

from __future__ import annotations

import logging
import os
import socket
import stat
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from include.foundation.redaction import env_secrets, redact, redact_value, write_private

ROOT = Path(__file__).resolve().parents[2]
PLANTED = "Pl4nted-s3cret"


@pytest.mark.parametrize(
    ("text", "clean"),
    [
        (f"http://ct:{PLANTED}@mlflow:5000/api", "http://***@mlflow:5000/api"),
        (f"API request to https://user:{PLANTED}@host/x failed", "API request to https://***@host/x failed"),
        (
            f"postgresql+psycopg2://airflow:{PLANTED}@db:5432/airflow",
            "postgresql+psycopg2://***@db:5432/airflow",
        ),
        (f"redis://:{PLANTED}@127.0.0.1:6379/0", "redis://***@127.0.0.1:6379/0"),
        ("http://localhost:5000/#/models/m", "http://localhost:5000/#/models/m"),
        ("mail me at ml@example.com", "mail me at ml@example.com"),
    ],
)
def test_credentials_in_any_uri_are_redacted(text, clean):
    assert redact(text) == clean
    assert redact_value({"a": [text], "b": 3}) == {"a": [clean], "b": 3}


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_planted_password_reaches_no_message(monkeypatch, caplog):
    from airflow.sdk._shared.secrets_masker.secrets_masker import _secrets_masker
    from mlflow import MlflowClient

    from include.foundation.logging_config import install_redaction
    from include.foundation.settings import Settings
    from include.foundation.tracking import TrackingServerUnavailable
    from include.orchestration.notifications import failure_message
    from include.orchestration.task_door import stage_call
    from include.stages.registry import _write_decision

    uri = f"http://ct:{PLANTED}@127.0.0.1:{closed_port()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    assert PLANTED in env_secrets()
    settings = Settings.from_env()
    assert PLANTED not in repr(settings)
    assert settings.mlflow_ui_url == f"http://127.0.0.1:{uri.rsplit(':', 1)[1]}"  # links: no credentials

    @stage_call
    def talk_to_mlflow():
        MlflowClient(tracking_uri=uri).get_registered_model("m")

    with pytest.raises(TrackingServerUnavailable) as err:  # the outage message: logs, mails
        talk_to_mlflow()
    assert "http://***@127.0.0.1" in str(err.value) and PLANTED not in str(err.value)
    assert PLANTED not in _secrets_masker().redact(f"whatever Airflow logs: {uri}")  # task logs: masked

    @stage_call
    def returns_a_uri():
        return {"source": uri}

    assert returns_a_uri() == {"source": uri.replace(f"ct:{PLANTED}", "***")}  # XCom

    handler = logging.StreamHandler(stream := __import__("io").StringIO())
    logging.getLogger().addHandler(handler)
    try:
        install_redaction()
        logging.getLogger("include.test").warning("could not reach %s", uri)  # every log record
    finally:
        logging.getLogger().removeHandler(handler)
    assert "http://***@127.0.0.1" in stream.getvalue() and PLANTED not in stream.getvalue()

    facts = {"exception": err.value.__cause__, "dag_id": "d", "task_id": "t", "run_id": "r", "log_url": "u"}
    _, subject, body = failure_message("p", facts)  # mails and chat
    assert PLANTED not in subject + body

    tags: dict[str, str] = {}
    client = SimpleNamespace(
        set_model_version_tag=lambda m, v, k, val: tags.__setitem__(k, val),
        update_model_version=lambda m, v, description: tags.__setitem__("(description)", description),
        get_model_version=lambda m, v: SimpleNamespace(run_id=None),
    )
    _write_decision(client, "m", "1", {"outcome": "promoted", "reason": f"data from {uri}", "run_link": uri})
    assert tags and not [
        v for v in tags.values() if PLANTED in v
    ]  # MLflow tags and the version's description
    assert "data from http://***@127.0.0.1" in tags["(description)"]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_secret_files_are_private_from_the_start(tmp_path, monkeypatch):
    created: list[int] = []
    real = os.replace

    def spy(src, dst):  # the mode the file had before it got its name
        created.append(stat.S_IMODE(os.stat(src).st_mode))
        return real(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    write_private(tmp_path / "s" / "secret", "x")
    assert created == [0o600] and mode(tmp_path / "s" / "secret") == 0o600
    monkeypatch.setattr(os, "replace", real)

    sys.path.insert(0, str(ROOT))
    from include.orchestration.local_airflow import home_secret

    old = os.umask(0o022)
    try:
        home_secret(tmp_path, "jwt_secret")
    finally:
        os.umask(old)
    assert mode(tmp_path / ".jwt_secret") == 0o600

    env = tmp_path / ".env"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "gen_env.py"), "--write", str(env)], check=True)
    assert mode(env) == 0o600 and "AIRFLOW_JWT_SECRET=" in env.read_text()
    again = subprocess.run([sys.executable, str(ROOT / "scripts" / "gen_env.py"), "--write", str(env)],
                           capture_output=True, text=True)  # fmt: skip
    assert again.returncode != 0 and "exists" in again.stderr  # secrets in use are never replaced


@pytest.mark.parametrize(
    "password",
    ["p@ss", "p@ss/w#rd", "a:b@c", "@@@", "ends-with-@"],
    ids=["at", "at-slash-hash", "colon", "ats", "tail"],
)
def test_a_password_with_any_characters_is_redacted_whole(password):
    from include.foundation.redaction import redact

    text = f"connect to postgresql+psycopg2://loader:{password}@db.internal:5432/warehouse failed"
    clean = redact(text)
    assert clean == "connect to postgresql+psycopg2://***@db.internal:5432/warehouse failed", clean
    assert password not in clean


def test_a_password_no_uri_pattern_can_delimit_is_redacted_by_its_value(monkeypatch):
    from include.foundation.redaction import redact

    monkeypatch.setenv("AIRFLOW_CONN_CT_WAREHOUSE", "postgresql://loader:pa ss'w@rd@db:5432/w")
    text = "cannot connect: postgresql://loader:pa ss'w@rd@db:5432/w refused"
    clean = redact(text)
    assert "pa ss'w@rd" not in clean and "pa ss" not in clean, clean
