#!/usr/bin/env bash
# The multi-node Ray test's cluster, run by test_ray_multinode.py as
#   unshare -n -p -f --mount-proc bash ray_multinode.sh OUT PYTHON
# In that network namespace loopback is the only interface, so a two-node cluster
# (RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=1) talks over 127.0.0.1 only; in that pid namespace every
# process ends with this script. A token in $HOME/.ray/auth_token turns token authentication on
# (as after any local ray.init()); the driver joins by HOST:PORT with nothing else set.
# Steps: head (2 CPUs) + worker node (1 CPU); the search starts; the worker node is killed once a
# trial started on it; once its trial was started again (retried on the head) and two more
# trials started, the driver is killed; started again, it finishes; trials to OUT/result.json.
# Last, a short search joins the same cluster through Ray Client (ray://).
set -euo pipefail
OUT=$1
PY=$2
RAY=$(dirname "$PY")/ray
HERE=$(cd "$(dirname "$0")" && pwd)
PORT=6379
ip link set lo up
export RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=1 HOME=$OUT/home PYTHONUNBUFFERED=1
unset RAY_AUTH_MODE RAY_AUTH_TOKEN RAY_AUTH_TOKEN_PATH RAY_ADDRESS
mkdir -p "$HOME/.ray" "$OUT/marks"
"$PY" -c "import secrets; print(secrets.token_hex(32), end='')" > "$HOME/.ray/auth_token"
trap '"$RAY" stop --force > /dev/null 2>&1 || true' EXIT

starts() { ls "$OUT/marks" | wc -l; }
nodes() { ls "$OUT/marks" | cut -d- -f3 | sort -u | wc -l; }
retried() { ls "$OUT/marks" | cut -d- -f2 | sort | uniq -d | wc -l; }  # trials started again
wait_for() {  # wait_for COUNTER N SECONDS: until COUNTER (starts, nodes) reaches N
  for _ in $(seq "$3"); do [ "$($1)" -ge "$2" ] && return 0; sleep 1; done
  echo "timed out waiting for $2 $1" >&2; return 1
}

"$RAY" start --head --port=$PORT --num-cpus=2 --node-ip-address=127.0.0.1 \
  --include-dashboard=false --disable-usage-stats > "$OUT/head.log" 2>&1
setsid env RAY_AUTH_MODE=token "$RAY" start --address=127.0.0.1:$PORT --num-cpus=1 \
  --node-ip-address=127.0.0.1 --disable-usage-stats --block > "$OUT/worker.log" 2>&1 &
WORKER=$!
for _ in $(seq 180); do
  [ "$(RAY_AUTH_MODE=token "$RAY" status --address=127.0.0.1:$PORT 2>/dev/null | grep -c ' node_')" -ge 2 ] && break
  sleep 1
done

DRIVER_ARGS=(127.0.0.1:$PORT "$OUT/s.db" "$OUT/marks" 30)
"$PY" "$HERE/ray_cluster_driver.py" "${DRIVER_ARGS[@]}" > "$OUT/driver1.log" 2>&1 &
DRIVER=$!
wait_for nodes 2 300  # a trial started on each node
kill -9 -- -"$WORKER"  # the worker node: its raylet and everything it started
wait_for retried 1 240  # Ray noticed the lost node; its trial runs again on the head
wait_for starts $(($(starts) + 2)) 240
kill -9 "$DRIVER"
wait "$DRIVER" || true
echo "driver killed after $(starts) trial starts" > "$OUT/steps.txt"
"$PY" "$HERE/ray_cluster_driver.py" "${DRIVER_ARGS[@]}" > "$OUT/driver2.log" 2>&1
echo "resumed run finished" >> "$OUT/steps.txt"
# The same cluster through Ray Client (ray://), token found the same way.
"$PY" "$HERE/ray_cluster_driver.py" ray://127.0.0.1:10001 "$OUT/client.db" "$OUT/client_marks" 3 \
  --no-hold > "$OUT/client.log" 2>&1
echo "ray client run finished" >> "$OUT/steps.txt"
"$PY" - "$OUT" <<'PYEOF'
import json, sys
from nasforge.experiment import SQLiteStorage
out = sys.argv[1]
trials = SQLiteStorage(f"{out}/s.db", readonly=True).trials()
json.dump([{"number": t.number, "status": t.status.value, "node": t.info.get("node"),
            "worker": t.info.get("worker"), "attempts": t.info.get("attempts", 1),
            "lost_attempts": t.info.get("lost_attempts", []),
            "error": t.error} for t in trials], open(f"{out}/result.json", "w"), indent=1)
client = SQLiteStorage(f"{out}/client.db", readonly=True).trials()
json.dump([t.status.value for t in client], open(f"{out}/client.json", "w"))
PYEOF
