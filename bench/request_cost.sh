#!/usr/bin/env bash
# Instructions per POST /predict, part by part, under callgrind (bench/request_cost.py says what and why).
# usage: bench/request_cost.sh [N requests per phase, default 2000] [phases, default all]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-2000}
PHASES=${2:-full,nocap,bare,noobserve,nooffer,noremember,norecords,noput,notoken}
PY=${PYTHON:-.venv/bin/python}
command -v valgrind > /dev/null || { echo "error: needs valgrind (apt-get install -y valgrind)" >&2; exit 2; }
STORE=$("$PY" bench/request_cost.py --build-store | tail -1)
OUT=$(mktemp -d)
SYNC=$OUT/sync && mkdir "$SYNC"
valgrind --tool=callgrind --callgrind-out-file="$OUT/cg" "$PY" bench/request_cost.py "$N" "$PHASES" "$STORE" "$SYNC" \
  > "$OUT/log" 2>&1 &
PID=$!
trap 'kill $PID 2> /dev/null || true' EXIT
wait_for() { while [ ! -e "$1" ]; do kill -0 $PID 2> /dev/null || { cat "$OUT/log" >&2; exit 1; }; sleep 1; done; }
IFS=, read -ra P <<< "$PHASES"
for i in "${!P[@]}"; do
  wait_for "$SYNC/${i}a.ready"
  callgrind_control -z $PID > /dev/null 2>&1
  touch "$SYNC/${i}a.go"
  wait_for "$SYNC/${i}b.ready"
  callgrind_control -d "${P[$i]}" $PID > /dev/null 2>&1
  touch "$SYNC/${i}b.go"
done
wait $PID || true
echo "instructions per request (thousands), $N requests a phase; callgrind files in $OUT"
FULL=""
for f in $(ls -v "$OUT"/cg.*); do
  phase=$(sed -n 's/^desc: Trigger: Client Request: //p; s/^desc: Trigger: dump //p' "$f" | head -1)
  total=$(sed -n 's/^totals: //p' "$f")
  per=$((total / N / 1000))
  [ "$phase" = full ] && FULL=$per
  if [ -n "$FULL" ] && [ "$phase" != full ]; then
    printf '  %-12s %6d k   full - this: %+d k\n' "$phase" "$per" $((FULL - per))
  else
    printf '  %-12s %6d k\n' "$phase" "$per"
  fi
done
