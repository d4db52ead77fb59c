#!/usr/bin/env bash
# A local Docker engine for the container test (tests/container/test_compose_up.py).
#
#   scripts/docker_engine.sh start   # install docker.io, docker-compose, debootstrap (Debian, as root) if
#                                    # missing, then start dockerd (overlay2, else vfs) unless one answers
#   scripts/docker_engine.sh stop    # stop the dockerd this script started (by its PID file)
#
# Users with Docker already running need neither: the test uses whatever engine `docker info` reaches.
set -euo pipefail
STATE=${CT_DOCKER_STATE:-/var/tmp/ct-dockerd}
PIDFILE=$STATE/dockerd.pid
LOG=$STATE/dockerd.log
DOCKER=/usr/bin/docker  # Debian's client matches Debian's engine (API 1.41)

engine_up() { [ -x "$DOCKER" ] && timeout 10 "$DOCKER" info >/dev/null 2>&1; }

start() {
  if engine_up; then echo "docker engine already running"; exit 0; fi
  if [ "$(id -u)" != 0 ]; then echo "not root: start a Docker engine yourself" >&2; exit 1; fi
  missing=()
  for pkg in docker.io:dockerd docker-compose:docker-compose debootstrap:debootstrap; do
    command -v "${pkg#*:}" >/dev/null 2>&1 || [ -x "/usr/sbin/${pkg#*:}" ] || missing+=("${pkg%%:*}")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "installing ${missing[*]} from Debian ..."
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    # the package's own service start is refused by policy-rc.d in containers: started below instead
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      "${missing[@]}" iptables ca-certificates >/dev/null
  fi
  mkdir -p "$STATE"
  for driver in overlay2 vfs; do
    echo "starting dockerd (storage driver $driver) ..."
    nohup dockerd --storage-driver="$driver" --data-root="$STATE/data-$driver" \
      --pidfile="$STATE/dockerd-own.pid" > "$LOG" 2>&1 &
    echo $! > "$PIDFILE"
    for _ in $(seq 1 60); do
      engine_up && { echo "docker engine up ($driver); log: $LOG"; exit 0; }
      kill -0 "$(cat "$PIDFILE")" 2>/dev/null || break
      sleep 1
    done
    stop_engine
    echo "dockerd with $driver did not come up:"; tail -5 "$LOG"
  done
  exit 1
}

stop_engine() {
  [ -f "$PIDFILE" ] || return 0
  pid=$(cat "$PIDFILE")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  pkill -f "containerd --config /var/run/docker/containerd" 2>/dev/null || true
  rm -f "$PIDFILE"
}

case "${1:-}" in
  start) start ;;
  stop) stop_engine; echo "docker engine stopped" ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
