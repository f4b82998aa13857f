#!/usr/bin/env bash
# Agent benchmark (issue: agent): idle RSS and CPU of `modelslot agent` with an
# MQTT broker and metrics on, and the rate at which it drains a backlog of
# queued events to mosquitto, beside `mosquitto_pub -q 1 -l` publishing the
# same events from one connection (the baseline), in the same run.
set -euo pipefail
cd "$(dirname "$0")/.."
EVENTS=${EVENTS:-5000}
IDLE=${IDLE:-10}
command -v mosquitto_pub >/dev/null || { echo "needs mosquitto and mosquitto-clients (apt-get install mosquitto mosquitto-clients)"; exit 1; }

work=$(mktemp -d /var/tmp/modelslot-bench-agent.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
CGO_ENABLED=0 go build -o "$work/modelslot" ./cmd/modelslot

port=$((20000 + RANDOM % 20000))
printf 'listener %d 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest none\n' "$port" >"$work/mosquitto.conf"
/usr/sbin/mosquitto -c "$work/mosquitto.conf" & pids+=($!)
sleep 0.5
cat >"$work/modelslot.toml" <<TOML
device_id = "bench"
state_root = "$work/state"
[platform]
mqtt_url = "mqtt://127.0.0.1:$port"
[agent]
metrics_addr = "127.0.0.1:$((port + 1))"
[[model]]
name = "demo"
TOML
export MODELSLOT_CONFIG="$work/modelslot.toml"

# A backlog, as after a long time offline: event files in the outbox format.
outbox="$work/state/demo/outbox"
mkdir -p "$outbox"
for i in $(seq 1 "$EVENTS"); do
	printf '{"event":"model_update_status","device_id":"bench","timestamp":"2026-01-01T00:00:00Z","status":"success","current_version":"v1","target_version":"v2","failure_reason":"","rollback_timestamp":null,"logs":[],"event_id":"%032d","model":"demo","sequence":%d}\n' "$i" "$i" >"$outbox/$(printf '%020d' "$i").json"
done
echo "$EVENTS" >"$outbox/seq"
cat "$outbox"/0*.json >"$work/events.jsonl"

now() { date +%s.%N; }
t0=$(now)
"$work/modelslot" agent 2>"$work/agent.log" & agent=$!; pids+=($agent)
while ls "$outbox"/0*.json >/dev/null 2>&1; do sleep 0.05; done
t1=$(now)
mosquitto_pub -p "$port" -t bench/baseline -q 1 -l <"$work/events.jsonl"
t2=$(now)

sleep 2 # let the drain settle, then measure idle
read -r u0 s0 < <(awk '{print $14, $15}' "/proc/$agent/stat")
sleep "$IDLE"
read -r u1 s1 < <(awk '{print $14, $15}' "/proc/$agent/stat")
rss=$(awk '/VmRSS/ {print $2}' "/proc/$agent/status")
hz=$(getconf CLK_TCK)
awk -v t0="$t0" -v t1="$t1" -v t2="$t2" -v n="$EVENTS" -v rss="$rss" -v cpu=$(( (u1 + s1) - (u0 + s0) )) -v hz="$hz" -v idle="$IDLE" 'BEGIN {
	a = n / (t1 - t0); b = n / (t2 - t1)
	printf "drain %d queued events to mosquitto: modelslot agent %7.0f events/s (from start)  |  mosquitto_pub -q 1 -l %7.0f events/s  |  ratio %.2f\n", n, a, b, a / b
	printf "agent idle: RSS %.1f MiB (goal <= 20 MiB), CPU %.2f%% over %ds (goal ~0)\n", rss / 1024, 100 * cpu / hz / idle, idle
}'
