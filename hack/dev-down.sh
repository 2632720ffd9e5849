#!/usr/bin/env bash
# make dev-down: stops the local stack and everything it started.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dev="$root/.dev"

pid=$(cat "$dev/devstack.pid" 2>/dev/null || true)
if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
	kill -TERM "$pid"
	deadline=$((SECONDS + 60))
	while kill -0 "$pid" 2>/dev/null; do
		if [ $SECONDS -ge $deadline ]; then
			echo "dev stack did not stop within 60s; killing it" >&2
			kill -KILL "$pid" 2>/dev/null || true
			break
		fi
		sleep 0.2
	done
	echo "dev stack stopped"
else
	echo "dev stack not running"
fi
rm -f "$dev/devstack.pid" "$dev/ready"

# Components die with their supervisor (parent-death signal); anything still
# holding the state directory is a leftover of an earlier crash.
leftover=$(pgrep -f -- "$dev/" || true)
if [ -n "$leftover" ]; then
	echo "killing leftover processes: $leftover" >&2
	kill -KILL $leftover 2>/dev/null || true
fi
