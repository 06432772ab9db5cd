#!/usr/bin/env bash
# Makes sure a Docker engine answers and docker-compose and debootstrap are installed: installs
# Debian's docker.io, docker-compose (v1) and debootstrap when missing, and starts dockerd when
# none runs, with overlay2 storage and without iptables or the default bridge (user-defined
# networks still work; builds use --network host). Its log goes to $DOCKERD_LOG.
set -euo pipefail
DOCKERD_LOG=${DOCKERD_LOG:-/var/log/dockerd-signaling.log}

log() { printf '== %s\n' "$*" >&2; }

missing=()
command -v dockerd >/dev/null || missing+=(docker.io)
command -v docker-compose >/dev/null || docker compose version >/dev/null 2>&1 || missing+=(docker-compose)
command -v debootstrap >/dev/null || missing+=(debootstrap)
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq "${missing[@]}" >/dev/null
fi

if docker info >/dev/null 2>&1; then exit 0; fi
log "starting dockerd (log: $DOCKERD_LOG)"
nohup dockerd --storage-driver=overlay2 --iptables=false --bridge=none >>"$DOCKERD_LOG" 2>&1 &
for _ in $(seq 1 60); do
  docker info >/dev/null 2>&1 && exit 0
  sleep 0.5
done
echo "dockerd did not come up; see $DOCKERD_LOG" >&2
exit 1
