#!/usr/bin/env bash
# make dev: starts the local stack in the background, or reports that it runs.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dev="$root/.dev"
mkdir -p "$dev/logs"

running_pid() {
	local pid
	pid=$(cat "$dev/devstack.pid" 2>/dev/null) || return 1
	kill -0 "$pid" 2>/dev/null || return 1
	echo "$pid"
}

next_steps() {
	cat <<EOT

kube-eip dev stack is up ($(cat "$dev/ready")).
  . .dev/env                        # kubectl and the stack's tools on PATH, KUBECONFIG set
  kubectl get --raw /readyz         # ok
  kubectl version
  make dev-down                     # stop everything (state is kept in .dev/; make dev-clean wipes it)
Logs: .dev/logs/ (devstack.log, and one file per component under .dev/cluster/logs/)
EOT
}

if pid=$(running_pid) && [ -f "$dev/ready" ]; then
	echo "dev stack already running (pid $pid)"
	next_steps
	exit 0
fi
if pid=$(running_pid); then
	echo "dev stack (pid $pid) is still starting; waiting for it"
else
	rm -f "$dev/ready"
	# setsid: the stack outlives this shell and make; it stops on make dev-down.
	setsid nohup "$root/bin/devstack" -dir "$dev" -bin-dir "$root/bin" >>"$dev/logs/devstack.log" 2>&1 </dev/null &
fi

deadline=$((SECONDS + 240))
until [ -f "$dev/ready" ]; do
	if ! running_pid >/dev/null && [ $SECONDS -gt 2 ]; then
		echo "dev stack exited while starting; last lines of .dev/logs/devstack.log:" >&2
		tail -n 30 "$dev/logs/devstack.log" >&2
		exit 1
	fi
	if [ $SECONDS -ge $deadline ]; then
		echo "dev stack not ready after 240s; see .dev/logs/devstack.log" >&2
		exit 1
	fi
	sleep 0.5
done
next_steps
