#!/usr/bin/env bash
# Airflow (api-server + UI, scheduler, dag-processor, triggerer) and the MLflow UI on the
# project's local state. Ctrl-C (or SIGTERM) stops them all. The components are started one by
# one rather than through `airflow standalone`, whose children are orphaned by SIGTERM and which
# cannot be stopped at all when SIGINT was ignored by whatever started it.
set -euo pipefail
: "${AIRFLOW_HOME:?run through make up}"
mkdir -p "$AIRFLOW_HOME" "$CT_HOME/mlflow/artifacts"
export AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="${AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION:-True}"
export AIRFLOW__API__HOST="${AIRFLOW__API__HOST:-127.0.0.1}"
export AIRFLOW__API__PORT="${AIRFLOW__API__PORT:-8080}"
MLFLOW_PORT="${CT_MLFLOW_PORT:-5000}"
# Every link the loop writes or shows (task extra links, registry tags, mails) is built from
# these: the ports this run serves on, unless set explicitly.
export CT_AIRFLOW_UI_URL="${CT_AIRFLOW_UI_URL:-http://localhost:$AIRFLOW__API__PORT}"
export CT_MLFLOW_UI_URL="${CT_MLFLOW_UI_URL:-http://localhost:$MLFLOW_PORT}"
# And every URL a component calls: the task processes reach the Execution API on the port served
# here (Airflow's default is localhost:8080 whatever port the api-server listens on).
export AIRFLOW__API__BASE_URL="${AIRFLOW__API__BASE_URL:-http://localhost:$AIRFLOW__API__PORT}"
export AIRFLOW__CORE__EXECUTION_API_SERVER_URL="${AIRFLOW__CORE__EXECUTION_API_SERVER_URL:-http://127.0.0.1:$AIRFLOW__API__PORT/execution/}"
# Per-home secrets (never in git), stable across restarts so logins survive.
# Files Airflow writes here (its generated admin password above all) are for this user only.
umask 077
for name in jwt_secret api_secret_key; do
  f="$AIRFLOW_HOME/.$name"
  [ -s "$f" ] || python -c "import secrets;print(secrets.token_urlsafe(64))" > "$f"
done
export AIRFLOW__API_AUTH__JWT_SECRET="$(cat "$AIRFLOW_HOME/.jwt_secret")"
export AIRFLOW__API__SECRET_KEY="$(cat "$AIRFLOW_HOME/.api_secret_key")"
MLFLOW_URI="${MLFLOW_TRACKING_URI:-sqlite:///$CT_HOME/mlflow/mlflow.db}"
LOGS="$AIRFLOW_HOME/up-logs"
mkdir -p "$LOGS"

echo "Migrating the Airflow metadata DB ($AIRFLOW_HOME) ..."
airflow db migrate > "$LOGS/db-migrate.log" 2>&1 || { cat "$LOGS/db-migrate.log"; exit 1; }

pids=()
start() {  # name, command...  Each component leads its own process group, so that stopping it
  local name=$1; shift  # also stops what it forked (the LocalExecutor's workers, log servers).
  setsid "$@" > "$LOGS/$name.log" 2>&1 &
  pids+=($!)
}
signal_all() { for p in "${pids[@]}"; do kill "-$1" -- "-$p" 2>/dev/null || true; done; }
stop() {
  # a second Ctrl-C while stopping kills at once instead of leaving components behind
  trap 'signal_all KILL' INT TERM
  echo; echo "Stopping Airflow and MLflow ..."
  signal_all TERM
  for _ in $(seq 1 30); do
    alive=0; for p in "${pids[@]}"; do kill -0 -- "-$p" 2>/dev/null && alive=1; done
    [ $alive = 0 ] && break; sleep 1 || true  # a second Ctrl-C interrupts the sleep, not the stop
  done
  signal_all KILL
  echo "Stopped."
  exit 0
}
trap stop INT TERM

start api-server airflow api-server
# One machine, one log folder: the api-server reads task logs from the files, so the scheduler's
# and triggerer's log servers (ports 8793/8794, which Airflow binds to every interface) stay off.
start scheduler airflow scheduler --skip-serve-logs
start dag-processor airflow dag-processor
start triggerer airflow triggerer --skip-serve-logs
MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false start mlflow mlflow server --backend-store-uri "$MLFLOW_URI" \
  --artifacts-destination "$CT_HOME/mlflow/artifacts" --host 127.0.0.1 --port "$MLFLOW_PORT" --workers 1

echo "Starting Airflow (logs: $LOGS) ..."
for _ in $(seq 1 180); do
  curl -sf "http://127.0.0.1:$AIRFLOW__API__PORT/api/v2/monitor/health" 2>/dev/null | grep -q '"scheduler":{"status":"healthy"' && break
  for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null || { echo "a component exited; see $LOGS"; stop; }; done
  sleep 1
done
pw_file="$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated"
pw=$(python -c "import json;print(json.load(open('$pw_file'))['admin'])" 2>/dev/null || echo "see $pw_file")
cat <<MSG

  Airflow UI  http://localhost:$AIRFLOW__API__PORT   user: admin   password: $pw
  MLflow UI   http://localhost:$MLFLOW_PORT/#/models?workflowType=machine_learning   (the model registry, in its model-training mode)
  DAGs start paused: unpause them in the UI, or trigger a run with the ▶ button and its params form.

  Ctrl-C stops everything.
MSG
while :; do sleep 1 & wait $! || true; done
