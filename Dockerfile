# The project's image: the official Airflow image at the version pinned in requirements.txt,
# plus the pinned libraries and the project's code. No secrets are baked in: every secret comes
# from the environment at run time (see .env.example).
FROM apache/airflow:3.3.2-python3.11

USER root
RUN apt-get update \
 && apt-get install -y --no-install-recommends curl \
 && rm -rf /var/lib/apt/lists/*
# Every volume mount point exists in the image, owned by the run user (50000:0), so that Docker
# copies that ownership into a new named volume (otherwise it is root's and tasks cannot write).
RUN mkdir -p /opt/airflow/data /opt/airflow/logs /opt/airflow/config /mlflow/artifacts /mlflow/auth \
 && chown -R 50000:0 /opt/airflow/data /opt/airflow/logs /opt/airflow/config /mlflow \
 && chmod -R 775 /opt/airflow/data /opt/airflow/logs /opt/airflow/config /mlflow
USER airflow

COPY --chown=airflow:root requirements.txt /opt/airflow/requirements.txt
RUN pip install --no-cache-dir -r /opt/airflow/requirements.txt

COPY --chown=airflow:root dags/ /opt/airflow/dags/
COPY --chown=airflow:root plugins/ /opt/airflow/plugins/
COPY --chown=airflow:root include/ /opt/airflow/include/

ENV PYTHONPATH=/opt/airflow \
    AIRFLOW__CORE__LOAD_EXAMPLES=False \
    MLFLOW_DISABLE_TELEMETRY=true \
    GX_ANALYTICS_ENABLED=False
