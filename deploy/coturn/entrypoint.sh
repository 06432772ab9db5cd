#!/bin/sh
# Starts coturn for local use with the TURN REST API secret from the environment. The secret goes
# into a config file readable by this user only, not onto the command line, where `ps` would show it.
set -eu
: "${TURN_SECRET:?set TURN_SECRET: the same secret as the signaling nodes (docs/deployment.md)}"
conf="${TMPDIR:-/tmp}/turnserver.conf"
umask 077
cat > "$conf" <<CONF
use-auth-secret
static-auth-secret=$TURN_SECRET
realm=${TURN_REALM:-signaling.local}
listening-port=${TURN_PORT:-3478}
min-port=${TURN_MIN_PORT:-49160}
max-port=${TURN_MAX_PORT:-49200}
fingerprint
no-cli
no-tls
no-dtls
no-multicast-peers
no-software-attribute
log-file=stdout
pidfile=${TMPDIR:-/tmp}/turnserver.pid
userdb=${TMPDIR:-/tmp}/turndb
CONF
exec turnserver -c "$conf" "$@"
