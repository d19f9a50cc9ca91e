#!/usr/bin/env bash
# A Docker engine for local image builds and runs, started only when none answers, changing nothing in the
# machine's network: no iptables rules, no IP forwarding, no bridge (containers run with --network none,
# as SageMaker's network isolation does; builds use --network host).
#
#   eval "$(containers/engine.sh start)"   # prints the exports (DOCKER_HOST, DOCKER_BUILDKIT) to use it
#   containers/engine.sh stop              # stops the engine only if `start` started it
#   containers/engine.sh status            # exit 0 when an engine answers
#
# State lives in CXR_DOCKER_DIR (default /var/tmp/cxr-docker), outside the clone, so the layer cache
# (the base image and pip's layers) survives between runs and CI jobs on one machine.
set -euo pipefail

DIR="${CXR_DOCKER_DIR:-/var/tmp/cxr-docker}"
SOCK="$DIR/docker.sock"
PIDFILE="$DIR/dockerd.pid"
# The legacy builder: Debian's engine 20.10 has no buildx, and a newer client would otherwise insist on it.
EXPORTS="export DOCKER_BUILDKIT=0"

answers() { DOCKER_BUILDKIT=0 docker ${1:+-H "$1"} info > /dev/null 2>&1; }

# docker-compose (1.29, Python) is what the SageMaker SDK's local mode runs (tests/test_sagemaker_local_mode.py).
install_packages() {
  command -v dockerd > /dev/null && command -v debootstrap > /dev/null && command -v docker-compose > /dev/null \
    && return 0
  if [ "$(id -u)" != 0 ]; then
    echo "engine.sh: dockerd, debootstrap or docker-compose is missing; install docker.io, debootstrap and" \
      "docker-compose (as root)" >&2
    return 1
  fi
  echo "engine.sh: installing docker.io, debootstrap and docker-compose (Debian packages)" >&2
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io debootstrap docker-compose > /dev/null
}

start() {
  if [ -n "${DOCKER_HOST:-}" ] && answers "$DOCKER_HOST"; then
    echo "$EXPORTS DOCKER_HOST=$DOCKER_HOST"
    return 0
  fi
  if answers "unix://$SOCK"; then
    echo "$EXPORTS DOCKER_HOST=unix://$SOCK"
    return 0
  fi
  install_packages
  if [ "$(id -u)" != 0 ]; then
    echo "engine.sh: starting dockerd needs root; start a Docker engine and set DOCKER_HOST" >&2
    return 1
  fi
  mkdir -p "$DIR/data" "$DIR/exec"
  dockerd --iptables=false --ip-forward=false --bridge=none --data-root "$DIR/data" --exec-root "$DIR/exec" \
    --pidfile "$PIDFILE" -H "unix://$SOCK" > "$DIR/dockerd.log" 2>&1 &
  for _ in $(seq 60); do
    if answers "unix://$SOCK"; then
      echo "$EXPORTS DOCKER_HOST=unix://$SOCK"
      return 0
    fi
    sleep 0.5
  done
  echo "engine.sh: dockerd did not answer within 30 s; see $DIR/dockerd.log" >&2
  tail -5 "$DIR/dockerd.log" >&2 || true
  return 1
}

stop() {
  [ -f "$PIDFILE" ] || return 0
  local pid
  pid="$(cat "$PIDFILE")"
  kill "$pid" 2> /dev/null || true
  for _ in $(seq 40); do
    kill -0 "$pid" 2> /dev/null || break
    sleep 0.5
  done
  rm -f "$PIDFILE"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) answers "${DOCKER_HOST:-unix://$SOCK}" ;;
  *)
    echo "usage: containers/engine.sh start|stop|status" >&2
    exit 2
    ;;
esac
