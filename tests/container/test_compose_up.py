"""`docker-compose up`, for real: the project's Dockerfile and docker-compose.yaml on a Docker engine.

Builds the project's image from its own Dockerfile (BuildKit; the host's CA bundle as a build
secret), starts the compose file with two Celery workers, waits until every service is healthy,
runs three ingestion weeks and a training run of the demo pipeline through the authenticated REST
API, and checks the ``champion`` alias through the MLflow server's API (with and without login,
and with a foreign Host header), and reads the stack's PostgreSQL through the SQL source's adapter
(an Airflow connection, the image's postgres provider). ``docker-compose down -v`` at the end; nothing is left behind.
Faults (a worker killed mid-task, the tracking server or the scheduler stopped) are exercised on
the same topology by ``tests/scaleout/test_celery_stack.py``, which needs no image build.

Where no registry is reachable the base images are built locally (``tests/container/images.py``).
What differs from a user's run is only what the test must change: the images of postgres and
redis (stand-ins unless the official ones are present), no published ports (the host may use
them), a small copy of the demo pipeline (three weeks are enough to train), shorter fault
detection. Needs a Docker engine: ``scripts/docker_engine.sh start`` (as root on Debian) gives
one; without it the test is skipped, unless ``CT_REQUIRE_DOCKER=1`` (CI) makes that a failure.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests
import yaml

from include.orchestration.local_airflow import AirflowApi
from tests.container import images
from tests.factories import demo_yaml

ROOT = Path(__file__).resolve().parents[2]
PIPELINE = "flights_container"
IMAGE = "airflow-ct-loop:test"
pytestmark = [pytest.mark.container, pytest.mark.e2e]


def engine_running() -> bool:
    try:
        return subprocess.run([images.DOCKER, "info"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.fixture(scope="module")
def phases(request):
    timings: dict[str, float | str] = {}
    yield timings
    reporter = request.config.pluginmanager.get_plugin("capturemanager")
    with reporter.global_and_fixture_disabled():
        print("\n[container] " + ", ".join(f"{k} {v:.0f}s" if isinstance(v, float) else f"{k}: {v}"
                                          for k, v in timings.items()), flush=True)  # fmt: skip


class Phase:
    def __init__(self, timings: dict, name: str):
        self.timings, self.name = timings, name

    def __enter__(self):
        self.t0 = time.monotonic()

    def __exit__(self, *exc):
        self.timings[self.name] = time.monotonic() - self.t0
        return False


def absolute(volume: str) -> str:
    """``./docker/x.sh:/dest:ro`` -> ``<repo>/docker/x.sh:/dest:ro`` (the derived file lives elsewhere)."""
    src, rest = volume.split(":", 1)
    return f"{ROOT / src[2:]}:{rest}" if src.startswith("./") else volume


class Compose:
    def __init__(self, tmp: Path, service_images: dict[str, str]):
        sys.path.insert(0, str(ROOT / "scripts"))
        from gen_env import generate

        self.tmp = tmp
        self.project = f"ctloop_test_{uuid.uuid4().hex[:8]}"
        self.secrets = {**generate(), "AIRFLOW_IMAGE_NAME": IMAGE}
        (tmp / ".env").write_text("".join(f"{k}={v}\n" for k, v in self.secrets.items()))
        self.file = tmp / "docker-compose.yaml"
        self.file.write_text(yaml.safe_dump(self.derive(service_images), sort_keys=False))

    def derive(self, service_images: dict[str, str]) -> dict:
        """The project's compose file with only what the test must change (see module docstring)."""
        spec = yaml.safe_load((ROOT / "docker-compose.yaml").read_text())
        pipelines = self.tmp / "pipelines"
        pipelines.mkdir()
        raw = demo_yaml()
        raw["name"] = PIPELINE
        raw["schedule"].update(ingest=None, drift_check=None, train=None)
        raw["training"].update(train_days=14, holdout_days=7, min_train_rows=1000)
        (pipelines / f"{PIPELINE}.yaml").write_text(yaml.safe_dump(raw))
        for name, svc in spec["services"].items():
            svc.pop("ports", None)
            svc.pop("build", None)
            svc["volumes"] = [absolute(v) for v in svc.get("volumes", [])]
            if name in service_images:
                svc["image"] = service_images[name]
            env = svc.get("environment") or {}
            if "AIRFLOW__CORE__EXECUTOR" in env:  # the Airflow services
                env.update(
                    CT_PIPELINES_DIR="/opt/airflow/test-pipelines",
                    CT_RETRY_DELAY_SECONDS="10",
                    AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT="30",
                    AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL="5",
                )
                svc["volumes"].append(f"{pipelines}:/opt/airflow/test-pipelines:ro")
        return spec

    def __call__(self, *args: str, timeout: float = 600) -> str:
        cmd = ["docker-compose", "--env-file", str(self.tmp / ".env"), "-p", self.project,
               "-f", str(self.file), "--project-directory", str(ROOT), *args]  # fmt: skip
        return images.run(*cmd, timeout=timeout).stdout

    def containers(self, service: str | None = None) -> list[str]:
        return self("ps", "-q", *([service] if service else [])).split()

    def inspect(self, cid: str) -> dict:
        return json.loads(images.run(images.DOCKER, "inspect", cid).stdout)[0]

    def ip(self, service: str) -> str:
        nets = self.inspect(self.containers(service)[0])["NetworkSettings"]["Networks"]
        return next(iter(nets.values()))["IPAddress"]

    def wait_healthy(self, timeout: float = 420) -> dict[str, str]:
        deadline = time.monotonic() + timeout
        while True:
            states = {}
            for cid in self.containers():
                info = self.inspect(cid)
                name = info["Config"]["Labels"]["com.docker.compose.service"] + "_" + cid[:6]
                health = (info["State"].get("Health") or {}).get("Status")
                if health:
                    states[name] = health
                elif info["State"]["Status"] == "exited":
                    states[name] = "exited0" if info["State"]["ExitCode"] == 0 else "FAILED"
                else:
                    states[name] = info["State"]["Status"]
            if "FAILED" in states.values():
                raise AssertionError(f"a service failed: {states}\n{self('logs', '--tail', '40')[-6000:]}")
            if len(states) >= 10 and all(s in ("healthy", "exited0") for s in states.values()):
                return states
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"not healthy after {timeout}s: {states}\n{self('logs', '--tail', '30')[-6000:]}"
                )
            time.sleep(3)

    def leftovers(self) -> list[str]:
        label = f"label=com.docker.compose.project={self.project}"
        found = []
        for kind in ("ps -a", "network ls", "volume ls"):
            out = images.run(images.DOCKER, *kind.split(), "-q", "--filter", label).stdout.split()
            found += [f"{kind.split()[0]} {x}" for x in out]
        return found


@pytest.fixture(scope="module")
def stack(tmp_path_factory, phases):
    required = os.environ.get("CT_REQUIRE_DOCKER") == "1"
    if not engine_running():
        if required:
            pytest.fail(
                "CT_REQUIRE_DOCKER=1 but no Docker engine answers: run scripts/docker_engine.sh start"
            )
        pytest.skip(
            "no Docker engine: run `sudo scripts/docker_engine.sh start` (Debian) to enable this test"
        )
    with Phase(phases, "base image"):
        base = images.ensure_base()
    with Phase(phases, "postgres/redis images"):
        service_images = images.ensure_service_images(base)
    with Phase(phases, "project image (Dockerfile)"):
        images.build(IMAGE, ROOT, base)
    compose = Compose(tmp_path_factory.mktemp("compose"), service_images)
    try:
        with Phase(phases, "stack healthy"):
            compose("up", "-d", "--no-build", "--scale", "airflow-worker=2", timeout=900)
            compose.states = compose.wait_healthy()
        yield compose
    finally:
        with Phase(phases, "down -v"):
            compose("down", "-v", "--remove-orphans", "--timeout", "20", timeout=300)
        left = compose.leftovers()
        assert not left, f"left behind: {left}"


def test_compose_up_runs_the_pipeline_on_the_celery_workers(stack, phases):
    """Two worker containers come up healthy; every task instance ran in one of them (its
    hostname is the container's), never in the scheduler or API server. Which worker takes which
    task is Celery's choice: the split is printed, not asserted."""
    compose = stack
    assert sum(1 for s in compose.states if s.startswith("airflow-worker")) == 2, compose.states
    api = AirflowApi(f"http://{compose.ip('airflow-apiserver')}:8080", compose.secrets["AIRFLOW_ADMIN_PASSWORD"],
                     diagnose=lambda: compose("logs", "--tail", "40", "airflow-scheduler"))  # fmt: skip
    ingest, train = f"{PIPELINE}__ingest", f"{PIPELINE}__train"
    deadline = time.monotonic() + 180
    # every DAG the test unpauses, each parsed on its own in the dag-processor's order
    while any(api.get(f"/dags/{dag_id}").status_code != 200 for dag_id in (ingest, train)):
        assert time.monotonic() < deadline, compose("logs", "--tail", "40", "airflow-dag-processor")
        time.sleep(3)
    for dag_id in (ingest, train):
        api.unpause(dag_id)

    with Phase(phases, "4 ingest runs + 1 training"):
        for day in ("01", "08", "15"):
            run = api.trigger(ingest, f"week_{day}", {"batch_start": f"2013-01-{day}"})
            assert api.wait_run(ingest, run) == "success", api.tis(ingest, run)
        assert (
            api.wait_run(train, api.trigger(train, "first_training", {"reason": "container test"}))
            == "success"
        )

    workers = {compose.inspect(cid)["Config"]["Hostname"] for cid in compose.containers("airflow-worker")}
    ran_on = [ti["hostname"] for dag_id, run in [*((ingest, f"week_{d}") for d in ("01", "08", "15")),
                                                  (train, "first_training")]
              for ti in api.tis(dag_id, run).values() if ti["state"] == "success"]  # fmt: skip
    assert len(workers) == 2 and set(ran_on) <= workers, (ran_on, workers)
    phases["task instances per worker"] = ", ".join(f"{w} ran {ran_on.count(w)}" for w in sorted(workers))

    # the server accepts only its own names (--allowed-hosts): speak as the published port would
    ml, host = f"http://{compose.ip('mlflow')}:5000/api/2.0/mlflow", {"Host": "localhost:5000"}
    login = ("admin", compose.secrets["MLFLOW_ADMIN_PASSWORD"])
    query = {"params": {"name": f"{PIPELINE}_model"}, "headers": host, "timeout": 30}
    model = requests.get(f"{ml}/registered-models/get", auth=login, **query)
    assert model.status_code == 200, model.text
    assert "champion" in {a["alias"] for a in model.json()["registered_model"].get("aliases", [])}, model.text
    assert requests.get(f"{ml}/registered-models/get", **query).status_code == 401  # no login, no registry
    foreign = requests.get(f"{ml}/registered-models/get", auth=login, **{**query, "headers": {}})
    assert foreign.status_code in (400, 403), foreign.text  # an unknown Host header is refused

    # source.kind sql on the compose stack's PostgreSQL: the image's providers and the adapter
    # (the connection is made inside the worker from its own database URL: no password here)
    probe = (
        "import os; from include.orchestration.connections import read_sql; "
        "os.environ['AIRFLOW_CONN_CT_COMPOSE_PG'] = os.environ['AIRFLOW__DATABASE__SQL_ALCHEMY_CONN']"
        ".replace('postgresql+psycopg2://', 'postgresql://'); "
        "print(read_sql('ct_compose_pg', 'SELECT n FROM generate_series(1, 9) AS n WHERE n >= :lo AND n < :hi', "
        "{'lo': 3, 'hi': 6})['n'].tolist())"
    )
    out = stack("exec", "-T", "airflow-worker", "python", "-c", probe, timeout=120)
    assert out.strip().splitlines()[-1] == "[3, 4, 5]", out
