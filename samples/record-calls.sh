#!/bin/sh
# Record calls into a folder, one JSON event per line, and stop after 10 calls.
# Credentials: ./sip-info.json (rc-softphone provision) or SIP_INFO_* in .env.
set -eu
mkdir -p calls
rc-softphone listen --record-dir ./calls --exit-after 10 --log-format json |
  while IFS= read -r line; do
    case "$line" in
      *'"event":"call.ended"'*) echo "recorded: $line" ;;
    esac
  done
