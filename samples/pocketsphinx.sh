#!/bin/sh
# Live transcription of every call with CMU PocketSphinx (Debian: pocketsphinx,
# pocketsphinx-en-us). rc-softphone writes each call's audio to this script's
# stdin as signed 16-bit little-endian PCM, 8 kHz, mono ($RC_SAMPLE_RATE,
# $RC_ENCODING, $RC_CHANNELS); the en-us model wants 16 kHz, so sox upsamples.
# Every line printed on stdout becomes a `call.engine` event.
#
#   rc-softphone listen --pipe ./samples/pocketsphinx.sh
#
# Phone audio is narrowband: a grammar (or a keyphrase) makes recognition far
# more reliable than the open vocabulary. Point GRAMMAR at your own JSGF file.
set -eu
GRAMMAR="${GRAMMAR:-$(dirname "$0")/commands.gram}"

sox -q -t raw -r "${RC_SAMPLE_RATE:-8000}" -e signed -b 16 -c 1 - \
    -t raw -r 16000 -e signed -b 16 -c 1 - |
  pocketsphinx_continuous -infile /dev/stdin -jsgf "$GRAMMAR" -logfn /dev/null 2>/dev/null |
  while IFS= read -r text; do
    # One JSON object per utterance: rc-softphone parses it into the event.
    printf '{"call":"%s","text":"%s"}\n' "$RC_CALL_ID" "$text"
  done
