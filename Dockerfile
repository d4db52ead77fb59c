# The project's image: Python 3.11 on Debian 12, the exact pins of requirements.txt (Airflow
# included) in one venv, and the project's code. Starting from python:3.11-slim-bookworm rather
# than apache/airflow keeps requirements.txt the single lock: on the Airflow image the pins would
# replace its preinstalled packages, and the image would no longer be what the tests ran.
# No secrets are baked in: every secret comes from the environment at run time (.env.example).
#
# Build with BuildKit (docker compose does). Where pip reaches its index through a TLS proxy,
# pass that proxy's CA bundle as a build secret (never a build arg, never stored in a layer):
#   DOCKER_BUILDKIT=1 docker build --secret id=cabundle,src=/etc/ssl/certs/ca-certificates.crt .
ARG BASE_IMAGE=python:3.11-slim-bookworm
FROM ${BASE_IMAGE}

USER root
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends curl dumb-init \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --uid 50000 --gid 0 --home-dir /home/airflow --create-home --shell /bin/bash airflow
# Every volume mount point exists in the image, owned by the run user (50000:0), so that Docker
# copies that ownership into a new named volume (otherwise it is root's and tasks cannot write).
RUN mkdir -p /opt/airflow/dags /opt/airflow/data /opt/airflow/logs /opt/airflow/config \
             /opt/airflow/ct-home /mlflow/artifacts /mlflow/auth /opt/venv \
 && chown -R 50000:0 /opt/airflow /mlflow /opt/venv \
 && chmod -R 775 /opt/airflow /mlflow

USER airflow
ENV PATH=/opt/venv/bin:$PATH \
    AIRFLOW_HOME=/opt/airflow \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python3 -m venv /opt/venv
COPY --chown=airflow:root requirements.txt /opt/airflow/requirements.txt
RUN --mount=type=secret,id=cabundle,uid=50000 \
    if [ -s /run/secrets/cabundle ]; then export PIP_CERT=/run/secrets/cabundle; fi \
 && pip install --quiet --upgrade pip \
 && pip install --quiet -r /opt/airflow/requirements.txt

COPY --chown=airflow:root dags/ /opt/airflow/dags/
COPY --chown=airflow:root plugins/ /opt/airflow/plugins/
COPY --chown=airflow:root include/ /opt/airflow/include/

WORKDIR /opt/airflow
ENV PYTHONPATH=/opt/airflow \
    AIRFLOW__CORE__DAGS_FOLDER=/opt/airflow/dags \
    AIRFLOW__CORE__PLUGINS_FOLDER=/opt/airflow/plugins \
    AIRFLOW__CORE__LOAD_EXAMPLES=False \
    MLFLOW_DISABLE_TELEMETRY=true \
    MLFLOW_CONFIGURE_LOGGING=false \
    GX_ANALYTICS_ENABLED=False
# like the official Airflow image: `docker run IMAGE scheduler` runs `airflow scheduler`
ENTRYPOINT ["/usr/bin/dumb-init", "--", "airflow"]
CMD ["version"]
