#!/bin/sh
# CI smoke test against a RingCentral sandbox: register, wait for one call
# (placed by another job or a person), check the recording, exit with its status.
set -eu
out=$(mktemp -d)
timeout 600 rc-softphone listen --sip-info "${SIP_INFO_FILE:-sip-info.json}" \
  --record-dir "$out" --exit-after 1 --log-format json > "$out/events.jsonl"
grep '"event":"call.ended"' "$out/events.jsonl"
ls -l "$out"/*.wav
