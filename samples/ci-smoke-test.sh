#!/bin/sh
# CI smoke test against a RingCentral sandbox with two extensions, as one
# command: device B (the callee) registers and answers, device A (the caller)
# calls it, each plays tones and DTMF to the other and checks what it heard
# (frequency, duration, order, every digit once, latency, loss, jitter), then
# A hangs up and B must see the BYE. The table goes to stdout; JUnit XML, an
# HTML report and both recordings go to $SMOKE_OUT for the CI's artifacts.
#
# Exit status: 0 every check passed, 1 a check failed (named in the output),
# 2 configuration (a missing or invalid file, the same device twice, a bad target).
#
#   CALLER_SIP_INFO=A.json CALLEE_SIP_INFO=B.json sh samples/ci-smoke-test.sh
#
# Make the two files once, each with the JWT of its own extension:
#   rc-softphone provision --out A.json    # extension A
#   rc-softphone provision --out B.json    # extension B
# and keep them (they hold the device's instance id: reusing it keeps
# RingCentral from piling up registrations, see README "603 Too Many Contacts").
#
# Optional: SMOKE_TARGET (what A dials; default B's number at its domain),
# SMOKE_TIMEOUT (seconds, default 90), SMOKE_OUT (default ./smoke-out),
# SMOKE_ARGS (more flags, e.g. "--max-latency-ms 300 --media-ip 203.0.113.7").
set -eu
out=${SMOKE_OUT:-smoke-out}
mkdir -p "$out"
# SMOKE_ARGS is split into words on purpose.
# shellcheck disable=SC2086
exec rc-softphone smoke \
  --caller "${CALLER_SIP_INFO:-A.json}" \
  --callee "${CALLEE_SIP_INFO:-B.json}" \
  ${SMOKE_TARGET:+--target "$SMOKE_TARGET"} \
  --timeout "${SMOKE_TIMEOUT:-90}" \
  --junit "$out/junit.xml" \
  --report "$out/report" \
  --keep-recordings "$out/recordings" \
  ${SMOKE_ARGS:-}
