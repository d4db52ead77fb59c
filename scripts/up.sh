#!/usr/bin/env bash
# Airflow (api-server + UI, scheduler, dag-processor, triggerer) and the MLflow UI on the
# project's local state. Ctrl-C stops both cleanly (standalone needs SIGINT, not SIGTERM).
set -euo pipefail
: "${AIRFLOW_HOME:?run through make up}"
mkdir -p "$AIRFLOW_HOME" "$CT_HOME/mlflow/artifacts"
export AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="${AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION:-True}"
export AIRFLOW__API__HOST="${AIRFLOW__API__HOST:-127.0.0.1}"
# A per-home secret (not in git): stable across restarts so sessions survive.
secret_file="$AIRFLOW_HOME/.jwt_secret"
[ -s "$secret_file" ] || python -c "import secrets;print(secrets.token_urlsafe(64))" > "$secret_file"
export AIRFLOW__API_AUTH__JWT_SECRET="$(cat "$secret_file")"
MLFLOW_URI="${MLFLOW_TRACKING_URI:-sqlite:///$CT_HOME/mlflow/mlflow.db}"

set -m   # background jobs get their own process group and keep SIGINT
airflow standalone > "$AIRFLOW_HOME/standalone.log" 2>&1 &
af=$!
MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false mlflow server --backend-store-uri "$MLFLOW_URI" \
  --artifacts-destination "$CT_HOME/mlflow/artifacts" --host 127.0.0.1 --port 5000 --workers 1 \
  > "$CT_HOME/mlflow/server.log" 2>&1 &
ml=$!
set +m

stop() {
  echo; echo "Stopping Airflow and MLflow ..."
  kill -INT "$af" 2>/dev/null || true
  kill -TERM -- "-$ml" 2>/dev/null || kill -TERM "$ml" 2>/dev/null || true
  wait "$af" "$ml" 2>/dev/null || true
  echo "Stopped."
}
trap stop INT TERM

echo "Starting Airflow (logs: $AIRFLOW_HOME/standalone.log) ..."
for _ in $(seq 1 180); do
  curl -sf http://127.0.0.1:8080/api/v2/monitor/health 2>/dev/null | grep -q '"scheduler":{"status":"healthy"' && break
  kill -0 "$af" 2>/dev/null || { echo "Airflow exited; see $AIRFLOW_HOME/standalone.log"; exit 1; }
  sleep 1
done
pw_file="$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated"
pw=$(python -c "import json;print(json.load(open('$pw_file'))['admin'])" 2>/dev/null || echo "see $pw_file")
cat <<MSG

  Airflow UI  http://localhost:8080   user: admin   password: $pw
  MLflow UI   http://localhost:5000
  DAGs start paused: unpause them in the UI (or trigger a run with the ▶ button and its params form).

  Ctrl-C stops everything.
MSG
wait "$af"
