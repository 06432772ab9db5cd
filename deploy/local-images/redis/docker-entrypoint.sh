#!/usr/bin/env bash
# Runs redis-server as `redis` with upstream's defaults: no config file, protected mode off
# (Debian's build turns it on, which refuses other containers), arguments after it as given.
set -euo pipefail
if [ "${1#-}" != "${1:-}" ]; then set -- redis-server "$@"; fi
if [ "${1:-}" != redis-server ]; then exec "$@"; fi
shift
if [ "$(id -u)" = 0 ]; then
  chown redis:redis /data 2>/dev/null || true
  exec setpriv --reuid=redis --regid=redis --init-groups redis-server --protected-mode no "$@"
fi
exec redis-server --protected-mode no "$@"
