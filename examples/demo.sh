#!/bin/sh
# The offline demo in one command: the daemon on the simulated market for about three minutes,
# with `autoretrainctl status` every 30 seconds, then a clean stop. DEMO_SECONDS=600 runs it longer.
set -eu
here=$(CDPATH= cd -- "$(dirname -- "$0")/.." && pwd)
config="$here/examples/demo.yaml"
seconds="${DEMO_SECONDS:-180}"
rm -rf "$here/var/demo"  # the demo's own state: every run starts from the same simulated market

"$here/bin/autoretraind" --config "$config" &
daemon=$!
trap 'kill -TERM "$daemon" 2>/dev/null; wait "$daemon" 2>/dev/null' INT TERM
elapsed=0
while [ "$elapsed" -lt "$seconds" ] && kill -0 "$daemon" 2>/dev/null; do
  sleep 30
  elapsed=$((elapsed + 30))
  echo "---------------------------------------- autoretrainctl status (after ${elapsed} s)" >&2
  "$here/bin/autoretrainctl" --config "$config" status >&2 || true
done
kill -TERM "$daemon" 2>/dev/null || true
wait "$daemon"
