"""Static checks of the scale-out files: safe by default, one image, nothing undeclared."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_TEXT = (ROOT / "docker-compose.yaml").read_text()
COMPOSE = yaml.safe_load(COMPOSE_TEXT)
SERVICES = COMPOSE["services"]
AIRFLOW = {n: s for n, s in SERVICES.items() if n.startswith("airflow-")}
SECRETS = {
    "POSTGRES_AIRFLOW_PASSWORD", "POSTGRES_MLFLOW_PASSWORD", "AIRFLOW_FERNET_KEY", "AIRFLOW_JWT_SECRET",
    "AIRFLOW_API_SECRET_KEY", "AIRFLOW_ADMIN_PASSWORD", "AIRFLOW_OPERATOR_PASSWORD", "AIRFLOW_VIEWER_PASSWORD",
    "MLFLOW_ADMIN_PASSWORD", "MLFLOW_SECRET_KEY",
}  # fmt: skip


def env_example() -> dict[str, str]:
    lines = (ROOT / ".env.example").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def test_dockerfile_installs_the_pin_file_on_python_311():
    """requirements.txt is the lock, Airflow included: the image starts from plain Python 3.11."""
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^ARG BASE_IMAGE=python:3\.11-slim-bookworm$", text, re.M)
    assert "FROM ${BASE_IMAGE}" in text and "apache/airflow" not in text.split("FROM")[1]
    assert "pip install --quiet -r /opt/airflow/requirements.txt" in text
    assert re.search(r"^apache-airflow==3\.3\.\d+$", (ROOT / "requirements.txt").read_text(), re.M)


def test_build_secret_only_as_a_buildkit_secret():
    """The CA bundle for pip goes in as a build secret, never an ARG (args show in docker history)."""
    text = (ROOT / "Dockerfile").read_text()
    assert "--mount=type=secret,id=cabundle" in text
    assert not re.search(r"^ARG (?!BASE_IMAGE)", text, re.M)
    rules = [r for r in (ROOT / ".dockerignore").read_text().splitlines() if r and not r.startswith("#")]
    assert rules[0] == "*"  # nothing is sent to the builder but what is allowed back in: no .env, .venv
    assert {r[1:].rstrip("/") for r in rules if r.startswith("!")} == {
        "requirements.txt",
        "dags",
        "plugins",
        "include",
    }


def test_dockerfile_bakes_in_no_secrets():
    text = (ROOT / "Dockerfile").read_text()
    assert not re.search(r"(PASSWORD|SECRET|FERNET|TOKEN)\s*=", text, re.I)
    assert "COPY --chown=airflow:root requirements.txt" in text and "pip install" in text


def test_every_airflow_service_shares_image_and_environment():
    common_env = COMPOSE["x-airflow-common"]["environment"]
    images = {s["image"] for s in AIRFLOW.values()}
    assert images == {COMPOSE["x-airflow-common"]["image"]}
    for name, svc in AIRFLOW.items():
        missing = {
            k for k in common_env if k not in svc["environment"] or svc["environment"][k] != common_env[k]
        }
        assert not missing, f"{name} differs from the common environment in {missing}"
    assert {"airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer",
            "airflow-worker", "airflow-init"} <= set(AIRFLOW)  # fmt: skip
    assert {"postgres", "redis", "mlflow"} <= set(SERVICES)


def test_every_variable_is_declared_in_env_example():
    used = set(re.findall(r"(?<!\$)\$\{([A-Z0-9_]+)", COMPOSE_TEXT))  # $${X} is a literal
    assert used <= set(env_example()), used - set(env_example())


def test_secrets_are_required_and_not_defaulted():
    for var in SECRETS:
        uses = re.findall(r"\$\{" + var + r"([^}]*)\}", COMPOSE_TEXT)
        assert uses, f"{var} unused"
        assert all(u.startswith(":?") for u in uses), f"{var} must be ${{{var}:?...}}"
        assert env_example()[var] == "", f".env.example must not ship a value for {var}"
    assert not re.search(r"airflow:airflow@|admin:admin@|_PASSWORD:-", COMPOSE_TEXT)


def test_no_docker_socket_and_ports_on_loopback():
    assert "docker.sock" not in COMPOSE_TEXT
    for name, svc in SERVICES.items():
        for port in svc.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"


def test_mlflow_server_is_protected_and_proxies_artifacts():
    cmd = SERVICES["mlflow"]["command"]
    assert "--allowed-hosts" in cmd and "--cors-allowed-origins" in cmd
    assert "--artifacts-destination" in cmd and "--no-serve-artifacts" not in cmd
    assert "--app-name basic-auth" in cmd  # every request needs a login
    env = SERVICES["mlflow"]["environment"]
    assert env["MLFLOW_BACKEND_STORE_URI"].startswith("postgresql+psycopg2://")
    assert "${MLFLOW_ADMIN_PASSWORD:?" in env["MLFLOW_AUTH_ADMIN_PASSWORD"]
    common = COMPOSE["x-airflow-common"]["environment"]
    assert (
        common["MLFLOW_TRACKING_USERNAME"]
        and "${MLFLOW_ADMIN_PASSWORD:?" in common["MLFLOW_TRACKING_PASSWORD"]
    )
    ini = (ROOT / "docker" / "mlflow_basic_auth.ini").read_text()
    assert "admin_password" not in ini.split("[mlflow]", 1)[1].replace("# ", "")  # no secret in the file


def test_no_secret_on_any_command_line():
    """Process command lines are world-readable (ps): secrets travel in the environment only."""
    for name, svc in SERVICES.items():
        cmd = svc.get("command") or ""
        text = " ".join(cmd) if isinstance(cmd, list) else cmd
        for line in text.splitlines():
            if "<<" in line or line.strip().startswith(("users", "json.dump", "path =")):
                continue  # the init script reads secrets from its environment, never argv
            assert not re.search(r"\$\{[A-Z_]*(PASSWORD|SECRET|FERNET_KEY)", line), f"{name}: {line}"


def test_volume_mount_points_exist_in_the_image_owned_by_the_run_user():
    dockerfile = (ROOT / "Dockerfile").read_text()
    mounts = {v.split(":")[1] for svc in SERVICES.values() for v in svc.get("volumes", [])
              if not v.startswith(".") and ":" in v and not v.split(":")[1].startswith("/var/lib/postgresql")}  # fmt: skip
    for point in mounts:
        assert point in dockerfile, f"{point} is mounted but not created in the image"
    assert "chown -R 50000:0" in dockerfile


@pytest.mark.parametrize(
    "svc", ["airflow-apiserver", "airflow-scheduler", "airflow-worker", "postgres", "redis", "mlflow"]
)
def test_health_checks_and_ordering(svc):
    assert "healthcheck" in SERVICES[svc]
    deps = SERVICES["airflow-worker"]["depends_on"]
    assert (
        deps["postgres"]["condition"] == "service_healthy" and deps["redis"]["condition"] == "service_healthy"
    )


def test_scheduler_serves_the_health_endpoint_its_healthcheck_calls():
    svc = SERVICES["airflow-scheduler"]
    assert "8974/health" in " ".join(svc["healthcheck"]["test"])
    assert svc["environment"]["AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK"] == "true"


def test_env_is_git_ignored():
    assert ".env" in (ROOT / ".gitignore").read_text().splitlines()
